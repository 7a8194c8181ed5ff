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


def focused_from_schedule(doc: dict, cfg, width: int) -> str | None:
    """A file ``smpemu check`` wrote (a scenario's schedule): its decisions run again in the
    explorer's world, in-process, for their footprints, rendered as ``check`` renders them (the
    same decision numbers).  None for another file (a stress schedule: its run's events are
    rendered instead), or if the world does not reach a violation."""
    if (doc.get("schedule") or {}).get("strategy") != "check" or not isinstance(doc.get("script"), dict):
        return None
    from smpemu.harness.counterexample import render_counterexample
    from smpemu.sched.choices import parse
    from smpemu.search.check_cmd import replay_schedule
    from smpemu.search.scenarios import SCENARIOS, Scenario, load_scenario
    from smpemu.search.world import Proto

    name = doc.get("scenario", "file")
    if name in SCENARIOS and {k: v for k, v in SCENARIOS[name].items() if k not in ("doc", "bound")} == doc["script"]:
        sc = load_scenario(name)
    else:
        sc = Scenario(str(name), doc["script"], cfg.vcpus, cfg.reclaimers)
    proto = Proto(sc, cfg.policy, cfg.memory_model, cfg.requests, cfg.notifier,
                  getattr(cfg, "guest_flush", None) or "native", getattr(cfg, "local_flush", None) or "concurrent")
    chs = [parse(d)[0] for d in doc["decisions"]]
    ce = replay_schedule(proto, chs, len(proto.setup_prefix()))
    if ce["violation"] is None:
        return None
    return render_counterexample(ce["trace"], width)


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
        full: bool = typer.Option(False, "--full", help="Print the violation's focused trace as one column per "
                                  "CPU (default: the steps that lead to it, and what happened)."),
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
        from smpemu.harness.counterexample import fit, line_width, term_width

        # the counterexample fits term_width() (COLUMNS, the terminal's, else 80); the other lines are
        # wrapped to COLUMNS or the terminal's, and stay whole in a pipe
        width, lw = term_width(), line_width()
        out.print(fit(f"replay {file}: smpemu {doc['smpemu_version']}, policy {cfg.policy}, workload {cfg.workload}, "
                  f"{cfg.vcpus} vCPUs, {cfg.reclaimers} reclaimer(s), memory model {cfg.memory_model}, requests {cfg.requests}, "
                  f"notifier {cfg.notifier}{f', range share {cfg.range_share:g}' if cfg.range_share else ''}, "
                  f"{len(cfg.replay):,} decisions recorded ({describe_last(doc)})", lw), soft_wrap=True)
        from smpemu.harness.status import Status

        status = Status("replay", enabled=not err.is_terminal)
        r = run(cfg, progress=lambda f, steps: status(f"{f:.0%} of the recorded decisions, {steps:,} guest steps"))
        d = r.as_dict()
        got = identity(r)
        if r.violations:
            v = r.violations[0]
            out.print(fit(f"[red]VIOLATION[/red] {v['kind']}: vcpu {v['vcpu']} slot {v['slot']} gfn {v['gfn']} "
                          f"pfn {v['pfn']} gen {v['entry_gen']}->{v['cur_gen']}, seen by "
                          f"{who(v['reporter'], cfg.vcpus, cfg.reclaimers)}, "
                          f"decision {r.schedule['last']['decision']} resumed "
                          f"{who(got['cpu'], cfg.vcpus, cfg.reclaimers)} at {got['point']}", lw), soft_wrap=True)
            tr = r.trace
            if tr:
                text = None
                if not full:
                    try:
                        text = focused_from_schedule(doc, cfg, width)
                    except Exception as e:  # the rendering only: the run's own events are shown instead
                        out.print(f"(the schedule did not run in-process: {type(e).__name__}: {e}; the run's "
                                  "events follow)", markup=False)
                    out.print("the steps that led to it (decision numbers as in the file):" if text else
                              "the events that led to it:")
                    text = text or tr.get("focused", tr["rendered"])
                else:
                    out.print("the interleaving that led to it (focused trace, one column per CPU):")
                    text = tr["rendered"]
                out.print(text, markup=False, highlight=False, soft_wrap=True)
        if r.schedule and r.schedule.get("divergence"):
            out.print(f"[red]{r.schedule['divergence']}[/red]")
        elif want is not None and got is not None:
            diff = [k for k in MATCH_KEYS if want.get(k) != got.get(k)]
            if not diff:
                out.print(fit(f"[bold]reproduced[/bold]: the recorded violation "
                              f"({', '.join(f'{k} {got[k]}' for k in MATCH_KEYS)})", lw), soft_wrap=True)
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
