"""``smpemu replay FILE``: run a recorded schedule again and compare.

Why it exists: ``smpemu stress --schedule pct`` writes, with each violation
it finds, a replay file (smpemu version, the full configuration, the seed,
every scheduling decision).  This command runs the same configuration under
those decisions, prints the violation and its interleaving as ``stress``
does, and says whether it is the recorded one: same kind, vcpu, slot and pfn,
found at the same protocol point of the last decision.  Exit codes as
everywhere: 3 a violation (matching or not; the text says which), 0 none, 4
aborted, including a replay that diverged from the recording or a file that
holds fewer decisions than it recorded (cut short: "incomplete"), 2 a replay
file that is not one (wrong version, malformed decisions).
"""

from __future__ import annotations

from typing import Optional

from smpemu.errors import EXIT_ABORTED


def _recorded_decisions(doc: dict) -> int | None:
    """How many decisions the recording made (its last one's index + 1), if it says."""
    last = (doc.get("schedule") or {}).get("last") or {}
    n = last.get("decision")
    return n + 1 if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


def register(app, out, err, guard) -> None:
    import typer

    @app.command("replay", epilog="Examples:\n\n"
                                  "# check's counterexample (v3's lost flush), then the same interleaving on real "
                                  "processes, results as JSON\n"
                                  "smpemu check --policy deferred-v3 --scenario one-flusher --replay-out r.json\n"
                                  "smpemu replay r.json --json replayed.json\n\n"
                                  "# a file written by smpemu stress (its name is printed; a new one each run)\n"
                                  "smpemu replay smpemu-replay-deferred-v3-s1-20261201-230501.json")
    @guard
    def replay(
        file: str = typer.Argument(..., help="A replay file written by `smpemu stress` (--schedule pct, "
                                  "the default) or `smpemu check --replay-out`."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write the run's results here."),
    ):
        """Replay a recorded controlled schedule and check that it reproduces."""
        # imported when the command runs, not when the CLI starts (numpy, the harness)
        from smpemu.harness.config import check_writable
        from smpemu.harness.report import write_json
        from smpemu.search.baton_loop import run
        from smpemu.search.replay_file import MATCH_KEYS, describe_last, identity, load_replay
        from smpemu.search.strategies import who

        if json_out:
            check_writable(json_out, "--json")
        cfg, doc = load_replay(file)
        want = doc.get("violation")
        out.print(f"replay {file}: smpemu {doc['smpemu_version']}, policy {cfg.policy}, workload {cfg.workload}, "
                  f"{cfg.vcpus} vCPUs, {cfg.reclaimers} reclaimer(s), memory model {cfg.memory_model}, requests {cfg.requests}, "
                  f"notifier {cfg.notifier}{f', range share {cfg.range_share:g}' if cfg.range_share else ''}, "
                  f"{len(cfg.replay):,} decisions recorded ({describe_last(doc)})")
        from smpemu.harness.status import Status

        status = Status("replay", enabled=not err.is_terminal)
        r = run(cfg, progress=lambda f, steps: status(f"{f:.0%} of the recorded decisions, {steps:,} guest steps"))
        d = r.as_dict()
        got = identity(r)
        if r.violations:
            v = r.violations[0]
            out.print(f"[red]VIOLATION[/red] {v['kind']}: vcpu {v['vcpu']} slot {v['slot']} gfn {v['gfn']} "
                      f"pfn {v['pfn']} gen {v['entry_gen']}->{v['cur_gen']}, seen by "
                      f"{who(v['reporter'], cfg.vcpus, cfg.reclaimers)}, "
                      f"decision {r.schedule['last']['decision']} resumed "
                      f"{who(got['cpu'], cfg.vcpus, cfg.reclaimers)} at {got['point']}")
            tr = r.trace
            if tr:
                out.print("the interleaving that led to it (focused trace, one column per CPU):")
                out.print(tr["rendered"], markup=False, highlight=False, soft_wrap=True)
        if r.schedule and r.schedule.get("divergence"):
            out.print(f"[red]{r.schedule['divergence']}[/red]")
        elif want is not None and got is not None:
            diff = [k for k in MATCH_KEYS if want.get(k) != got.get(k)]
            if not diff:
                out.print(f"[bold]reproduced[/bold]: the recorded violation ({', '.join(f'{k} {got[k]}' for k in MATCH_KEYS)})")
            else:
                out.print("[red]a different violation[/red] than recorded: "
                          + "; ".join(f"{k} {got.get(k)} (recorded {want.get(k)})" for k in diff))
            d["replay"] = {"file": file, "recorded": want, "matches": not diff}
        elif want is not None:
            out.print(f"[red]not reproduced[/red]: no violation after {r.schedule['decisions'] if r.schedule else 0} "
                      f"decisions; recorded {want['kind']} of vcpu {want['vcpu']} at {want['point']}")
            d["replay"] = {"file": file, "recorded": want, "matches": False}
        recorded = _recorded_decisions(doc)
        if recorded is not None and len(cfg.replay) < recorded and not r.violations:
            # the file was cut: running out of decisions proves nothing either way
            out.print(f"[red]incomplete[/red]: {file} holds {len(cfg.replay):,} of the {recorded:,} decisions it "
                      f"recorded; the replay ran out of decisions before the recorded end")
            d["replay"] = {**d.get("replay", {"file": file}), "incomplete": True,
                           "decisions_in_file": len(cfg.replay), "decisions_recorded": recorded}
            if json_out:
                write_json(d, json_out)
            raise typer.Exit(EXIT_ABORTED)
        elif want is None and got is not None:
            out.print("the recording had no violation")
        if r.aborted and not (r.schedule and r.schedule.get("divergence")):
            out.print(f"[red]aborted:[/red] {r.aborted}")
        if json_out:
            write_json(d, json_out)
        raise typer.Exit(r.exit_code)
