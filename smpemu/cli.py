"""The ``smpemu`` command line (typer).

Why it exists: one place that turns user input into a validated RunConfig,
shows progress, prints results, and maps every outcome onto the documented
exit codes (0 ok, 3 violation, 4 aborted, 2 bad usage, 1 internal, 130/143
interrupted).  User mistakes print one line, never a traceback.

May import: smpemu.search, smpemu.study, smpemu.litmus, smpemu.harness, workloads, smpemu.kvm, smpemu.memory, smpemu.errors.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smpemu import __version__
from smpemu.errors import EXIT_ABORTED, EXIT_INTERNAL, SmpemuError, UsageError
from smpemu.harness.status import Status

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Emulate SMP TLB-flush IPIs with real processes, shared memory and semaphores.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
if not out.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
    # logs and pipes: wide enough for the run tables, unless COLUMNS says
    # otherwise (rich's Console reads COLUMNS itself)
    out = Console(width=160)
err = Console(stderr=True)


NOTIFIER_HELP = ("2009 (the mmu notifier flushes after mmu_unlock, the seed's kernel) | 2012 (before it: "
                 "565f3be21746, 3.4).")
RANGE_SHARE_HELP = ("Share (0-1) of each reclaimer's invalidations that are range invalidations (munmap, "
                    "madvise(DONTNEED), balloon) of a working-set page, able to overlap another invalidation of it.")


def examples(*lines: str) -> str:
    """A command's --help epilog: one example per paragraph (rich reflows lines)."""
    return "Examples:\n\n" + "\n\n".join(lines)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"smpemu {__version__}", markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
):
    """Emulate SMP TLB-flush IPIs with real processes, shared memory and semaphores."""


def _guard(fn):
    """Map smpemu errors onto exit codes with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            fn(*a, **kw)
        except SmpemuError as e:
            err.print(f"smpemu: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            raise typer.Exit(130)
        except typer.Exit as e:
            raise typer.Exit(_output_lost(e.exit_code))
        raise typer.Exit(_output_lost(0))

    return wrapper


def _output_lost(code: int) -> int:
    """A clean verdict whose output file could not be written is incomplete
    (exit 4); any other verdict keeps its code (harness/outputs.py)."""
    from smpemu.harness.outputs import lost

    files = lost()
    if files and code == 0:
        err.print(f"smpemu: incomplete: the result is clean but {', '.join(files)} was not written (exit 4)",
                  markup=False, highlight=False, soft_wrap=True)
        return EXIT_ABORTED
    return code


def _trace_out(trace_out: Optional[str], alias: Optional[str]) -> Optional[str]:
    """--trace-out FILE, or the old spelling --trace FILE (kept, hidden, for scripts)."""
    if trace_out and alias and trace_out != alias:
        raise UsageError("give --trace-out once (--trace is its old name)")
    return trace_out or alias


def _progress_run(cfg):
    from smpemu.harness.coordinator import run

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[steps]:,} steps"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    ) as prog:
        task = prog.add_task(f"{cfg.vcpus} vCPU{'s' if cfg.vcpus != 1 else ''}, {cfg.policy}", total=1.0, steps=0)
        status = Status("run", enabled=not err.is_terminal)

        def progress(f, steps):
            prog.update(task, completed=f, steps=steps)
            status(lambda: f"{f:.0%} done, {steps:,} guest steps, {cfg.vcpus} vCPU{'s' if cfg.vcpus != 1 else ''}, {cfg.policy}")

        return run(cfg, progress=progress)


@app.command(epilog=examples(
    "# the seed's test: 16 vCPU processes, 10 s\nsmpemu run --vcpus 16 --workload malloc-touch",
    "# pre-patch eager flushing, a fixed amount of work, counters as JSON\n"
    "smpemu run --vcpus 4 --policy eager --iterations 5000 --json out.json",
    "# vCPU 0 on core 0, vCPU 1 on core 1, stores drained in any order\n"
    "smpemu run --vcpus 2 --pin 0,1 --memory-model relaxed --duration 3",
    "# your own guest operations (format and this example, for 2 vCPUs or more: workloads/trace.py)\n"
    "smpemu run --workload trace --trace-file workloads/examples/ops.trace",
    "# 16 vCPUs on 2 emulated pCPUs: guest shootdowns with the paravirtual flush\n"
    "smpemu run --vcpus 16 --pcpus 2 --workload guest-shootdown --guest-flush pv",
))
@_guard
def run(
    vcpus: int = typer.Option(16, help="Number of vCPU processes."),
    workload: str = typer.Option("malloc-touch", help="Guest workload (see `smpemu list`)."),
    policy: str = typer.Option("deferred-v4", help="Flush policy (see `smpemu list`)."),
    pin: str = typer.Option("compact", help="compact | spread | none | a core list such as 0,1,3 (vCPU i on "
                            "the list's core i mod its length)."),
    cpus: Optional[str] = typer.Option(None, help="Restrict to these host cores (e.g. 0-3)."),
    memory_model: str = typer.Option("native", help="native | tso | relaxed."),
    duration: Optional[float] = typer.Option(None, help="Seconds to run (default 10 unless --iterations)."),
    iterations: Optional[int] = typer.Option(None, help="Guest steps per vCPU, instead of --duration."),
    guest_mem: str = typer.Option("64M", help="Guest memory (e.g. 64M, 1G)."),
    seed: int = typer.Option(1, help="Seed of the workload's and the host's random choices (which pages, which "
                             "reclaims). It does not fix the interleaving: the OS schedules the processes, so "
                             "counts differ between runs of one seed (a replayable interleaving: smpemu stress "
                             "--schedule pct, smpemu check)."),
    requests: str = typer.Option("modern", help="modern (mode-based waits) | 2009 (wait for every loaded vCPU)."),
    notifier: str = typer.Option("2009", help=NOTIFIER_HELP),
    ack_timeout: float = typer.Option(5.0, help="Seconds a flush waits for an ack before the run aborts."),
    spin_us: float = typer.Option(50.0, help="Microseconds a requester spins on acks before it blocks."),
    ipi_route: str = typer.Option("direct", help="direct (requesters kick, as KVM) | coordinator (it routes every kick)."),
    preempt_exit: int = typer.Option(0, help="Old name of --pcpus: N > 0 means --pcpus <the run's cores> when "
                                     "oversubscribed (N is no longer used)."),
    pcpus: int = typer.Option(0, help="The emulated host scheduler: at most P vCPUs run at once, time-sliced; a "
                              "preempted vCPU is blocked, out of guest mode, marked preempted (0: off)."),
    quantum: float = typer.Option(50.0, help="With --pcpus: the host scheduler's time slice, ms (scaled to "
                                  "smpemu's speed: docs/decisions.md)."),
    guest_flush: str = typer.Option("native", help="Guest TLB shootdowns (--workload guest-shootdown): native "
                                    "| pv | pv-writeback | pv-overwrite | pv-no-sync (see `smpemu list`)."),
    local_flush: str = typer.Option("concurrent", help="The shootdown initiator's own flush: first (<= 5.12) | "
                                    "concurrent (5.13+, 4ce94eabac16: beside the remote ones)."),
    swap_rate: float = typer.Option(1000.0, help="Host reclaims (mmu-notifier invalidations) per second, in total."),
    reclaimers: Optional[int] = typer.Option(None, help="Host reclaimer processes, each running the mmu notifier "
                                             "concurrently, as kswapd and direct reclaim (default 2, 1 with --swap-rate 0)."),
    range_share: float = typer.Option(0.0, help=RANGE_SHARE_HELP),
    tlb_size: int = typer.Option(64, help="TLB entries per vCPU."),
    rmap_size: int = typer.Option(4, help="rmap entries per guest frame (a full rmap evicts)."),
    share: float = typer.Option(0.05, help="malloc-touch: odds a step reads a sibling thread's page."),
    delay: List[str] = typer.Option([], help="Widen a race: POINT=US or POINT=LO-HI (repeatable)."),
    trace_file: Optional[str] = typer.Option(None, help="Input: the operations file of --workload trace "
                                             "(see workloads/trace.py)."),
    trace_out: Optional[str] = typer.Option(None, "--trace-out", help="Output: record protocol events and write "
                                            "the window before the first violation (or the last events) here "
                                            "as JSON."),
    trace_alias: Optional[str] = typer.Option(None, "--trace", hidden=True),
    script: Optional[str] = typer.Option(None, help="A scenario for --workload script: a JSON file of "
                                         "per-CPU operations (format in the README)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write results as JSON here."),
):
    """Run the emulator and print per-vCPU and total counters."""
    from smpemu.harness.config import RunConfig
    from smpemu.kvm.points import parse_delay
    from smpemu.harness.report import print_result, write_json
    from workloads.script import load as load_script

    trace_out = _trace_out(trace_out, trace_alias)
    delays = dict(parse_delay(d) for d in delay)
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"--share must be between 0 and 1 (got {share})")
    cfg = RunConfig(
        vcpus=vcpus, workload=workload, policy=policy, pin=pin, cpus=cpus,
        memory_model=memory_model, duration=duration, iterations=iterations,
        guest_mem=guest_mem, seed=seed, requests=requests, notifier=notifier, ack_timeout=ack_timeout,
        spin_us=spin_us, ipi_route=ipi_route, preempt_exit=preempt_exit, pcpus=pcpus, quantum=quantum,
        guest_flush=guest_flush, local_flush=local_flush,
        swap_rate=swap_rate, reclaimers=reclaimers, range_share=range_share, tlb_size=tlb_size, rmap_size=rmap_size,
        share=share,
        delays=delays, json_path=json_out, trace_file=trace_file, trace=bool(trace_out),
    )
    if trace_out:
        from smpemu.harness.config import check_writable

        check_writable(trace_out, "--trace-out")
    if preempt_exit:
        err.print(f"smpemu: note: --preempt-exit {preempt_exit} is the emulated host scheduler now: --pcpus "
                  f"<the run's cores> when oversubscribed (docs/decisions.md)", highlight=False)
    if script is not None and workload not in ("script", "malloc-touch"):
        raise UsageError(f"--script is for --workload script (not {workload})")
    if script is not None:
        cfg.workload = "script"
        cfg.script = load_script(script)
    elif workload == "script":
        raise UsageError("--workload script needs --script FILE (the scenario; format in the README)")
    result = _progress_run(cfg).as_dict()
    print_result(result, out)
    if json_out:
        write_json(result, json_out)
    if trace_out and result.get("trace"):
        write_json({"config": result["config"], **result["trace"]}, trace_out)
        if result["violations"]:
            out.print(result["trace"]["rendered"], markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(result["exit_code"])


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
@_guard
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

    trace_out = _trace_out(trace_out, trace_alias)
    from smpemu.errors import check_number
    from smpemu.harness.config import MAX_SECONDS

    check_number("--timeout", timeout, 0, MAX_SECONDS, lo_open=True)
    check_number("--round", round_s, 0, MAX_SECONDS, lo_open=True)
    if workload == "script":
        raise UsageError("stress does not run --workload script: a script is one fixed scenario; explore its "
                         "interleavings with smpemu check --scenario FILE.json, or run it with smpemu run --script")
    from smpemu.study.grid import parse_list

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


def default_replay_name(policy: str, seed: int, now: float | None = None) -> str:
    """smpemu-replay-POLICY-sSEED-YYYYmmdd-HHMMSS.json, never an existing file's name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"smpemu-replay-{policy}-s{seed}-{stamp}"
    path, k = f"{base}.json", 2
    while os.path.exists(path):
        path, k = f"{base}-{k}.json", k + 1
    return path


@app.command("list", epilog=examples("# every name the other commands accept\nsmpemu list"))
@_guard
def list_cmd():
    """List flush policies, workloads, memory models, guest flush methods and protocol points."""
    import workloads
    from smpemu.kvm import policies
    from smpemu.memory.model import MODELS
    from smpemu.kvm.points import POINT_NAMES

    t = Table(title="policies (their kernels: docs/timeline.md; what each survives, under which settings: "
                    "smpemu verdicts, docs/verdicts.md)", header_style="bold")
    t.add_column("policy")
    t.add_column("what it does")
    t.add_column("kernels")
    t.add_column("from")
    t.add_column("later")
    for name, cls in policies.POLICIES.items():
        t.add_row(name + (" (default)" if name == policies.DEFAULT else ""), cls.summary, cls.kernels, cls.commits,
                  cls.later)
    out.print(t)
    t = Table(title="workloads", header_style="bold")
    t.add_column("workload")
    t.add_column("what it models")
    for name, doc in workloads.describe().items():
        t.add_row(name, doc)
    out.print(t)
    out.print("memory models: " + ", ".join(MODELS))
    from smpemu.kvm.steal import DESCRIBE

    t = Table(title="guest flush methods (--guest-flush)", header_style="bold")
    t.add_column("method")
    t.add_column("what it is")
    for name, doc in DESCRIBE.items():
        t.add_row(name + (" (default)" if name == "native" else ""), doc)
    out.print(t)
    out.print("protocol points: " + ", ".join(POINT_NAMES))


@app.command(epilog=examples("# cores, topology, and the default placement of 16 vCPUs\nsmpemu info",
                             "# where spread pinning puts 16 vCPUs\nsmpemu info --vcpus 16 --pin spread",
                             "# a core list: vCPU i on core [0, 1][i % 2]\nsmpemu info --vcpus 4 --pin 0,1"))
@_guard
def info(
    vcpus: int = typer.Option(16, help="vCPUs to place."),
    pin: str = typer.Option("compact", help="compact | spread | none | core list."),
    cpus: Optional[str] = typer.Option(None, help="Restrict to these host cores."),
):
    """Show the host's cores and where each vCPU would run."""
    import os
    import platform

    import psutil

    from smpemu.harness import pinning

    from smpemu.harness.config import MAX_VCPUS

    if vcpus < 1:
        raise UsageError(f"--vcpus must be at least 1 (got {vcpus})")
    if vcpus > MAX_VCPUS:
        raise UsageError(f"--vcpus {vcpus} is too many: at most {MAX_VCPUS} (as for run)")
    cores = pinning.allowed_cores(cpus)
    place = pinning.placement(vcpus, pin, cores)  # a bad --pin before any output
    out.print(f"smpemu {__version__}, Python {platform.python_version()}, {platform.machine()}")
    out.print(f"logical cpus: {psutil.cpu_count()}, physical cores: {psutil.cpu_count(logical=False)}, "
              f"allowed for this process: {sorted(os.sched_getaffinity(0))}")
    topo = pinning.topology(cores)
    out.print("topology (core: package/core id): " + ", ".join(f"{c}: {p}/{i}" for c, (p, i) in topo.items()))
    t = Table(title=f"--vcpus {vcpus} --pin {pin}: oversubscription "
                    f"{pinning.oversubscription(vcpus, cores):.1f}x", header_style="bold")
    t.add_column("vcpu", justify="right")
    t.add_column("cores")
    for i, p in enumerate(place):
        t.add_row(str(i), ",".join(map(str, p)))
    out.print(t)


@app.command(epilog=examples("# list what would be removed\nsmpemu clean --dry-run",
                             "# remove objects of runs whose coordinator died\nsmpemu clean"))
@_guard
def clean(dry_run: bool = typer.Option(False, help="Only list what would be removed.")):
    """Remove shared objects left by runs whose coordinator is dead."""
    from smpemu.harness import resources

    removed, kept = resources.clean(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for n in removed:
        out.print(f"{verb} /dev/shm/{n}")
    out.print(f"{verb} {len(removed)} object(s); {len(kept)} belong to live runs and were kept")


@app.command(epilog=examples("# every .litmus file of the shipped corpus\nsmpemu litmus tests/litmus/",
                             "# one test, under TSO, 20000 instances\n"
                             "smpemu litmus tests/litmus/MP.litmus --iterations 20000 --memory-model tso"))
@_guard
def litmus(
    files: List[str] = typer.Argument(..., help="Litmus files or directories."),
    iterations: int = typer.Option(100000, help="Test instances per file."),
    memory_model: str = typer.Option("relaxed", help="native | tso | relaxed."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: random, printed)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write one row per test to this JSON file."),
):
    """Run Linux-kernel-memory-model litmus tests through the memory-model layer,
    with the model's exact verdict (every execution it allows) beside the sampled one."""
    try:
        from smpemu.litmus.command import litmus_command
    except ImportError as e:
        raise UsageError(f"litmus runner unavailable: {e}") from None
    raise typer.Exit(
        litmus_command(files, iterations=iterations, memory_model=memory_model, seed=seed, json_path=json_out)
    )


@app.command(epilog=examples(
    "# every benchmark, short version (10 s to a minute on 2 cores, as busy as the host is)\nsmpemu bench --quick",
    "# only the IPI round trips, results as JSON\nsmpemu bench --quick --only ipi --json bench.json",
))
@_guard
def bench(
    quick: bool = typer.Option(False, "--quick", help="Short version (10 s on an idle 2-core host; 48-53 s measured at load average 12)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write {name: {value, unit, baseline, "
                                           "baseline_value, ratio, ...}} here."),
    only: str = typer.Option("ipi,guest_steps,deferral,scaling,pvflush", help="Comma-separated subset of "
                             "ipi, guest_steps, deferral, scaling, pvflush."),
    iterations: Optional[int] = typer.Option(None, help="deferral: guest steps per vCPU (both policies)."),
):
    """Run the benchmarks, each against a baseline measured in the same run (as `python -m bench`)."""
    from smpemu.study.bench.main import check_options, run_all

    if iterations is not None and iterations < 1:
        raise UsageError(f"--iterations must be >= 1 (got {iterations})")
    run_all(check_options(only, json_out), quick, json_out, iterations)


EXTENSIONS = (  # commands that live in their own modules: (name, module with register(app, ...))
    ("sweep", "smpemu.study.sweep"),
    ("replay", "smpemu.search.replay_cmd"),
    ("check", "smpemu.search.check_cmd"),
    ("verdicts", "smpemu.search.verdicts"),
)


def _register_extensions() -> None:
    """Each extension registers its command; one that fails to import does not
    take the others with it, and its command stays, saying why it cannot run."""
    import importlib

    for name, module in EXTENSIONS:
        try:
            register = importlib.import_module(module).register
        except ImportError as e:
            _unavailable(name, module, e)
            continue
        register(app, out=out, err=err, guard=_guard)


def _unavailable(name: str, module: str, e: ImportError) -> None:
    why = f"{module} failed to import ({type(e).__name__}: {e})"

    @app.command(name, help=f"Unavailable: {why}.",
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def unavailable():
        err.print(f"smpemu {name}: unavailable: {why}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERNAL)


_register_extensions()


@app.command(epilog=examples("smpemu version\nsmpemu --version"))
def version():
    """Print the version."""
    out.print(__version__)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C does: every finally (object unlinking) runs
    raise SystemExit(143)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # an internal failure: say so, exit 1
        err.print(f"smpemu: internal error: {type(e).__name__}: {e}", markup=False)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
