"""``smpemu stress``: attack a policy with real processes until the oracle fires.

Why it exists: the command-line side of search/stress.py (rounds of real
vCPU and host processes, under a seeded controlled schedule by default):
its options, header, per-round lines, the violation's trace and replay
file, and the exit codes (3 a violation, 0 none, 4 aborted, 130/143
interrupted).  Registered by cli.py as the other extensions are.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import List, Optional

from smpemu.errors import UsageError
from smpemu.harness.clihelp import (NOTIFIER_HELP, RANGE_SHARE_HELP, default_replay_name, examples, parse_list,
                                    trace_out_option)
from smpemu.harness.status import Status


def register(app, out, err, guard) -> None:
    import typer

    @app.command(epilog=examples(
        "# find the seed's lost flush (one reclaimer: the seed's setting); show the interleaving, write its events\n"
        "smpemu stress --policy deferred-v3 --reclaimers 1 --seed 31 --trace-out t.json",
        "# attack the fix for 60 s with one reclaimer (flushes never overlap), cycling vCPU counts\n"
        "smpemu stress --policy deferred-v4 --reclaimers 1 --vcpus 2,4,8",
        "# with the default two reclaimers, two flushes overlap and v4 loses one (docs/protocol.md)\n"
        "smpemu stress --policy deferred-v4 --vcpus 2",
        "# a controlled schedule; a violation writes a file for `smpemu replay FILE`\n"
        "smpemu stress --policy deferred-v3 --vcpus 2 --schedule pct --seed 1",
        "# with one reclaimer, the missing smp_wmb() loses a flush under a relaxed memory model, in round 31 (12 s "
        "idle, 55 s at load average 12: raise --timeout on a busy host); native and tso: nothing (README's table)\n"
        "smpemu stress --policy deferred-v4-nowmb --reclaimers 1 --memory-model relaxed",
        "# the 2009 notifier race: range invalidations meet another reclaimer's (none with --notifier 2012)\n"
        "smpemu stress --policy eager --range-share 0.5",
    ))
    @guard
    def stress(
        policy: str = typer.Option("deferred-v4", help="Flush policy to attack."),
        workload: str = typer.Option("share-unmap", help="Guest workload (share-unmap is built for races)."),
        vcpus: str = typer.Option("4", help="vCPU count, or a list to cycle across rounds (e.g. 2,4,8)."),
        pin: str = typer.Option("compact", help="Pinning (compact | spread | none | a core list such as 0,1), or "
                                "alternatives to cycle across rounds, separated by ';' (e.g. \"compact;spread;0,1\")."),
        memory_model: str = typer.Option("native", help="native | tso | relaxed."),
        requests: str = typer.Option("modern", help="modern | 2009."),
        notifier: str = typer.Option("2009", help=NOTIFIER_HELP),
        range_share: float = typer.Option(0.0, help=RANGE_SHARE_HELP),
        timeout: float = typer.Option(60.0, help="Give up after this many seconds."),
        until_violation: bool = typer.Option(True, "--until-violation/--no-until-violation",
                                             help="Stop at the first violation (default) or run the whole timeout."),
        round_s: float = typer.Option(3.0, "--round", help="Seconds per round (fresh processes each round)."),
        seed: int = typer.Option(1, help="Seed of round 0 (round k uses seed + k)."),
        delay: List[str] = typer.Option([], help="POINT=US or POINT=LO-HI (implies --schedule delays)."),
        reclaim: str = typer.Option("freed", help="Host reclaim: freed (just-freed pages at once) | mixed."),
        reclaimers: Optional[int] = typer.Option(None, help="Host reclaimer processes, each running the mmu notifier "
                                                 "concurrently (default 2)."),
        guest_mem: str = typer.Option("64M", help="Guest memory."),
        ack_timeout: float = typer.Option(5.0, help="Seconds a flush waits for an ack before aborting."),
        trace_file: Optional[str] = typer.Option(None, help="Input: the operations file of --workload trace "
                                                 "(see workloads/trace.py)."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write the stress summary here."),
        trace_out: Optional[str] = typer.Option(None, "--trace-out", help="Output: write the violation's event "
                                                "window here (JSON)."),
        trace_alias: Optional[str] = typer.Option(None, "--trace", hidden=True),
        schedule: Optional[str] = typer.Option(None, help="pct (the default: each round under a seeded controlled "
                                               "schedule, replayable, docs/schedules.md) | delays (free-running "
                                               "rounds with widened race windows; the default with --delay)."),
        max_decisions: int = typer.Option(5000, help="With --schedule: scheduling decisions per round."),
        pct_depth: int = typer.Option(3, help="With --schedule pct: d (d - 1 priority change points per epoch)."),
        pct_epoch: int = typer.Option(4, help="With --schedule pct: decisions per epoch (fresh priorities)."),
        sched_steps: int = typer.Option(8, help="With --schedule: guest steps between two scheduling points."),
        replay_out: Optional[str] = typer.Option(None, "--replay-out", help="With --schedule: write the replay file "
                                                 "here (default: smpemu-replay-POLICY-sSEED-TIME.json in the current "
                                                 "directory, a new name every run)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing --replay-out file."),
        full: bool = typer.Option(False, "--full", help="Print the violation's focused trace as one column per CPU "
                                  "(default: the events that lead to it, and what happened)."),
    ):
        """Run a policy until the lost-flush oracle fires or the timeout passes."""
        from smpemu.harness.config import RunConfig, check_writable
        from smpemu.kvm.points import parse_delay
        from smpemu.harness.report import write_json
        from smpemu.harness.report import points_line
        from smpemu.search.stress import stress as run_stress

        trace_out = trace_out_option(trace_out, trace_alias)
        from smpemu.errors import check_number
        from smpemu.harness.config import MAX_SECONDS

        check_number("--timeout", timeout, 0, MAX_SECONDS, lo_open=True)
        check_number("--round", round_s, 0, MAX_SECONDS, lo_open=True)
        if workload == "script":
            raise UsageError("stress does not run --workload script: a script is one fixed scenario; explore its "
                             "interleavings with smpemu check --scenario FILE.json, or run it with smpemu run --script")

        vlist = parse_list(vcpus, "--vcpus", int)
        from smpemu.harness.pinning import parse_pins

        plist = parse_pins(pin)
        delays = dict(parse_delay(d) for d in delay)
        if schedule == "pct" and delays:
            raise UsageError("--delay and --schedule do not mix: under a schedule one process runs at a time")
        if schedule not in (None, "pct", "delays"):
            raise UsageError(f"unknown --schedule {schedule!r}; choose pct or delays")
        # the strongest search by default: a controlled schedule (PCT) finds in
        # well under a second what random delays miss for a minute
        if schedule is None:
            schedule = "delays" if delays else "pct"
        if replay_out and schedule != "pct":
            raise UsageError("--replay-out needs --schedule pct")
        schedule = None if schedule == "delays" else schedule
        if replay_out:
            from smpemu.harness.outputs import check_new_file

            check_new_file(replay_out, "--replay-out", force)
        for path, opt in ((json_out, "--json"), (trace_out, "--trace-out")):
            if path:
                check_writable(path, opt)
        if schedule is not None and not replay_out and not os.access(os.getcwd(), os.W_OK):
            raise UsageError("--schedule writes its replay file to the current directory, which is not "
                             "writable here: pass --replay-out FILE")
        base = RunConfig(vcpus=vlist[0], workload=workload, policy=policy, pin=plist[0],
                         memory_model=memory_model, requests=requests, notifier=notifier, range_share=range_share,
                         seed=seed, guest_mem=guest_mem, ack_timeout=ack_timeout, reclaim=reclaim, reclaimers=reclaimers,
                         duration=1.0, trace_file=trace_file,
                         schedule=schedule, max_decisions=max_decisions, pct_depth=pct_depth,
                         pct_epoch=pct_epoch, sched_steps=sched_steps)
        for v in vlist:
            for p in plist:
                dataclasses.replace(base, vcpus=v, pin=p).validate()
        base.validate()  # resolves the defaults the header shows (reclaimers)
        out.print(f"stress: policy {policy}, workload {workload}, vcpus {vlist}, pin {plist}, "
                  f"memory model {memory_model}, requests {requests}, notifier {notifier}, "
                  + (f"range share {range_share:g}, " if range_share else "")
                  + f"{base.reclaimers} reclaimer(s), "
                  f"timeout {timeout} s, seed {seed}"
                  + (f", schedule {schedule} (depth {pct_depth}, epoch {pct_epoch}, {max_decisions} decisions a round)"
                     if schedule else ""))

        status = Status("stress", enabled=not err.is_terminal)
        seen = {"rounds": 0, "steps": 0}

        def on_progress(f, steps):
            status(lambda: f"round {seen['rounds']}, {seen['steps'] + steps:,} guest steps, no violation yet "
                           f"(timeout {timeout:g} s)")

        def on_round(info):
            seen["rounds"] += 1
            seen["steps"] += info["steps"]
            status(lambda: f"{seen['rounds']} round(s), {seen['steps']:,} guest steps, "
                           f"{'a violation' if info['violations'] else 'no violation yet'} (timeout {timeout:g} s)")
            verdict = f"[red]{info['violations']} violation(s)[/red]" if info["violations"] else "clean"
            how = f"{info['decisions']:,} decisions" if "decisions" in info else f"delays {info['delays']}"
            out.print(f"  round {info['round']}: seed {info['seed']}, {info['vcpus']} vCPUs, pin {info['pin']}, "
                      f"{how}: {info['steps']:,} steps in {info['wall_s']} s, {verdict}")

        t_start = time.monotonic()
        try:
            res = run_stress(base, timeout, round_s, until_violation, vlist, plist, delays or None, on_round,
                             progress=on_progress)
        except KeyboardInterrupt:  # between two rounds (inside one, the round ends and reports it)
            out.print(f"[yellow]interrupted[/yellow]: no violation in {time.monotonic() - t_start:.1f} s, "
                      f"{seen['rounds']} round(s), {seen['steps']:,} guest steps")
            raise typer.Exit(130)
        d = res.as_dict()
        if res.found:
            v = res.first["violations"][0]
            out.print(f"[red]VIOLATION[/red] {v['kind']}: vcpu {v['vcpu']} still maps pfn {v['pfn']} "
                      f"(gfn {v['gfn']}, slot {v['slot']}) after it was freed")
            out.print(f"time to first violation: {res.time_to_violation_s} s, "
                      f"guest steps to it: ~{res.steps_to_violation:,}")
            tr = res.first.get("trace")
            if tr:
                out.print("the interleaving that led to it (every event, one column per CPU):" if full else
                          "the events that led to it:")
                out.print(tr["rendered"] if full else tr.get("focused", tr["rendered"]), markup=False,
                          highlight=False, soft_wrap=True)
            if trace_out and tr:
                write_json({"config": res.first["config"], **tr}, trace_out)
            if res.replay is not None:
                from smpemu.search.replay_file import describe_last, write_doc

                path = replay_out or default_replay_name(policy, res.replay["seed"])
                if write_doc(res.replay, path):
                    out.print(f"{describe_last(res.replay)}; replay file: {path} (smpemu replay {path})")
        else:
            total = sum(r["steps"] for r in res.rounds)
            if not total and not res.interrupted and not res.aborted:
                res.aborted = "the rounds ran no guest step: nothing was explored (raise --timeout)"
            how = "[yellow]interrupted[/yellow]: no violation" if res.interrupted else (
                "[red]no verdict[/red]: no violation" if res.aborted else "[green]no violation[/green]")
            out.print(f"{how} in {res.elapsed_s:.1f} s, {len(res.rounds)} round(s), {total:,} guest steps")
        if res.points:
            out.print(points_line(res.points) + f" (all {len(res.rounds)} round(s))", markup=False,
                      highlight=False)  # wraps to the terminal's width
        if res.aborted:
            out.print(f"[red]aborted:[/red] {res.aborted}")
        if json_out:
            write_json(d, json_out)
        if res.found:
            raise typer.Exit(3)
        if res.interrupted:
            raise typer.Exit(130 if res.interrupted == "SIGINT" else 143)
        raise typer.Exit(4 if res.aborted else 0)
