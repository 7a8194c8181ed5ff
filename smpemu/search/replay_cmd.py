"""``smpemu replay FILE``: run a recorded schedule again and compare.

Why it exists: ``smpemu stress --schedule pct`` writes, with each violation
it finds, a replay file (smpemu version, the full configuration, the seed,
every scheduling decision).  This command runs the same configuration under
those decisions, prints the violation and its interleaving as ``stress``
does, and says whether it is the recorded one: same kind, vcpu, slot and pfn,
found at the same protocol point of the last decision.  Exit codes as
everywhere: 3 a violation (matching or not; the text says which), 0 none, 4
aborted, including a replay that diverged from the recording, 2 a replay file
that is not one (wrong version, malformed decisions).
"""

from __future__ import annotations

from typing import Optional


def register(app, out, err, guard) -> None:
    import typer

    @app.command("replay")
    @guard
    def replay(
        file: str = typer.Argument(..., help="A replay file written by `smpemu stress --schedule pct`."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write the run's results here."),
    ):
        """Replay a recorded controlled schedule and check that it reproduces."""
        # imported when the command runs, not when the CLI starts (numpy, the harness)
        from smpemu.harness.config import check_writable
        from smpemu.harness.report import write_json
        from smpemu.search.baton_loop import run
        from smpemu.search.replay_file import MATCH_KEYS, describe_last, identity, load_replay

        if json_out:
            check_writable(json_out, "--json")
        cfg, doc = load_replay(file)
        want = doc.get("violation")
        out.print(f"replay {file}: smpemu {doc['smpemu_version']}, policy {cfg.policy}, workload {cfg.workload}, "
                  f"{cfg.vcpus} vCPUs, memory model {cfg.memory_model}, requests {cfg.requests}, "
                  f"{len(cfg.replay):,} decisions recorded ({describe_last(doc)})")
        r = run(cfg)
        d = r.as_dict()
        got = identity(r)
        if r.violations:
            v = r.violations[0]
            out.print(f"[red]VIOLATION[/red] {v['kind']}: vcpu {v['vcpu']} slot {v['slot']} gfn {v['gfn']} "
                      f"pfn {v['pfn']} gen {v['entry_gen']}->{v['cur_gen']}, seen by "
                      f"{'host' if v['reporter'] == cfg.vcpus else 'vcpu %d' % v['reporter']}, "
                      f"decision {r.schedule['last']['decision']} resumed "
                      f"{'host' if got['cpu'] == cfg.vcpus else 'vcpu %d' % got['cpu']} at {got['point']}")
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
        elif got is not None:
            out.print("the recording had no violation")
        if r.aborted and not (r.schedule and r.schedule.get("divergence")):
            out.print(f"[red]aborted:[/red] {r.aborted}")
        if json_out:
            write_json(d, json_out)
        raise typer.Exit(r.exit_code)
