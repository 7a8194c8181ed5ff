"""``smpemu sweep``: the command, its progress, its summary table and JSON.

Why it exists: a scaling study (vCPUs x policy x pinning, repeated) is many
``coordinator.run`` calls whose results must survive a Ctrl-C, be resumable,
and end as one table and one figure.  Every point is validated before the
first one starts; each finished run is one CSV row, written and flushed at
once; when all repeats of a point are in, a ``kind=median`` row follows.
Points run in this process (``coordinator.run`` forks the vCPUs), or, with
``--scheduler``, as ``smpemu run`` subprocesses on dask.distributed workers
(their worker processes are daemonic and may not fork children themselves).

Exit codes: 0 done, 3 a run found a violation, 4 a run aborted, 2 bad usage,
130/143 interrupted by SIGINT/SIGTERM (the rows already finished stay in the
CSV).  An output file that cannot be written (a full disk) is one
``cannot write FILE`` line; the verdict's code stays, 0 becomes 4
(harness/outputs.py).

The grid is ``grid``, the CSV log ``csvlog``, dask ``remote``, the figure
``plot``.
"""

from __future__ import annotations

from typing import Optional

from smpemu.errors import EXIT_SIGINT, EXIT_SIGTERM
from smpemu.harness.pinning import parse_pins
from smpemu.harness.report import fit_tables, fmt_latency
from smpemu.harness.status import Status
from smpemu.study.csvlog import RowLog, run_key
from smpemu.harness.clihelp import parse_list
from smpemu.study.grid import (Interrupted, SweepOptions, config_cols, config_of, exit_code,
                               reclaimers_of, run_local, run_row, validate)
from smpemu.study.plot import plot, title_of
from smpemu.study.remote import connect, sweep_remote


# (CSV / JSON column, table header): short headers, so that the table fits 80 columns
SUMMARY = (("ipis_sent", "ipis"), ("remote_flushes", "remote\nflushes"), ("ipis_per_s", "ipis/s"),
           ("steps_per_s", "steps/s"), ("ack_latency_p50_us", "ack p50\nus"),
           ("ack_latency_p99_us", "ack p99\nus"), ("wall_s", "wall s"), ("violations", "violations"),
           ("aborted", "aborted"))
# a sweep of guest shootdowns (issue 19) shows these instead
SHOOTDOWN_SUMMARY = (("oversubscription", "over-\nsub"), ("shootdowns", "shoot-\ndowns"),
                     ("shootdown_p50_us", "shootdown\np50 us"), ("shootdown_p99_us", "shootdown\np99 us"),
                     ("ipis_per_shootdown", "IPIs per\nshootdown"), ("targets_preempted_share", "targets\npreempted"),
                     ("steps_per_s", "steps/s"), ("violations", "violations"), ("aborted", "aborted"))


def _legend(summary) -> str:
    return ("medians of the repeats; columns (CSV and JSON names): " + ", ".join(
        f"{h.replace(chr(10), ' ')} = {c}" for c, h in summary if h != c)
        + "; latencies: the histogram bucket holding the percentile")


SUMMARY_LEGEND = _legend(SUMMARY)


def _summary(rows) -> tuple:
    return SHOOTDOWN_SUMMARY if any((r.get("shootdowns") or 0) > 0 for r in rows) else SUMMARY


def _cell(c: str, v) -> str:
    if v is None:
        return "-"
    if c.startswith(("ack_latency_", "shootdown_p")):
        return fmt_latency(v)
    if c == "targets_preempted_share":
        return f"{v:.0%}"
    if isinstance(v, float):
        return f"{v:,.2f}" if c == "wall_s" else f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def summary_tables(rows: list[dict], width: int = 80) -> list:
    """The median rows, split into tables that fit ``width`` columns."""
    meds = sorted((r for r in rows if r.get("kind") == "median"),
                  key=lambda r: (int(r["vcpus"]), str(r["policy"]), str(r["pin"]), str(r.get("guest_flush"))))
    lead = [("vcpus", [str(r["vcpus"]) for r in meds], "right"),
            ("policy", [str(r["policy"]) for r in meds], "left"),
            ("pin", [str(r["pin"]) for r in meds], "left")]
    if len({r.get("guest_flush") for r in meds}) > 1:
        lead.append(("guest\nflush", [str(r.get("guest_flush")) for r in meds], "left"))
    cols = [(h, [_cell(c, r.get(c)) for r in meds], "right") for c, h in _summary(meds)]
    return fit_tables(lead, cols, [None] * len(meds), width, title="sweep: median of repeats")


def write_json(o: SweepOptions, rows: list[dict], path: str) -> bool:
    from smpemu.harness.outputs import write_json_file

    opts = {k: v for k, v in o.__dict__.items() if not k.endswith("_path")}
    return write_json_file({"options": opts, "rows": rows}, path, indent=1)


def _n_vcpus(n) -> str:
    return f"{n} vCPU" if int(n) == 1 else f"{n} vCPUs"


# -- the command ---------------------------------------------------------------------------------------
def execute(o: SweepOptions, err=None, out=None) -> int:
    """Run a validated sweep; returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = err or Console(stderr=True)
    pts = validate(o)
    log = RowLog(o.csv_path, o.resume)
    done = log.done()
    todo = [pt for pt in pts if run_key(config_cols(o, pt)) not in done]
    if o.resume and len(todo) < len(pts):
        err.print(f"smpemu sweep: resuming: {len(pts) - len(todo)} of {len(pts)} runs already in {o.csv_path}",
                  highlight=False)
    interrupted = False
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, disable=not err.is_terminal)
    status = Status("sweep", enabled=not err.is_terminal)  # a log's sign of life
    try:
        with prog:
            task = prog.add_task("sweep", total=len(todo))
            finished = [0]

            def on_done(pt):
                finished[0] += 1
                prog.update(task, completed=finished[0])
                log.add_medians(o.repeat)
                status(f"{finished[0]} of {len(todo)} runs done")

            if o.scheduler and todo:
                def on_result(pt, res):
                    log.add(run_row(o, pt, res))
                    on_done(pt)

                sweep_remote([(pt, config_of(o, pt)) for pt in todo], on_result, connect(o.scheduler))
            for pt in ([] if o.scheduler else todo):
                prog.update(task, description=f"{_n_vcpus(pt.vcpus)} {pt.policy} {pt.guest_flush} {pt.pin} "
                                              f"r{pt.repeat + 1}/{o.repeat}")
                base = finished[0]

                def progress(f, _steps, b=base, pt=pt):
                    prog.update(task, completed=b + f)
                    status(lambda: f"{b} of {len(todo)} runs done; now {_n_vcpus(pt.vcpus)}, {pt.policy}, "
                                   f"pin {pt.pin}, repeat {pt.repeat + 1}/{o.repeat} ({f:.0%})")

                res = run_local(config_of(o, pt), progress=progress)
                log.add(run_row(o, pt, res))
                on_done(pt)
    except KeyboardInterrupt:
        interrupted = EXIT_SIGINT
    except Interrupted as e:  # a signal during a run: its coordinator says which
        interrupted = EXIT_SIGTERM if e.args and e.args[0] == "SIGTERM" else EXIT_SIGINT
    except SystemExit as e:  # SIGTERM between two runs (cli._terminate)
        if e.code != EXIT_SIGTERM:
            raise
        interrupted = EXIT_SIGTERM
    finally:
        log.close()
    if o.json_path and write_json(o, log.rows, o.json_path):
        err.print(f"smpemu sweep: wrote {o.json_path}", highlight=False)
    if interrupted:
        err.print(f"smpemu sweep: interrupted; {sum(r['kind'] == 'run' for r in log.rows)} finished run(s) kept"
                  + (f" in {o.csv_path} (--resume to go on)" if o.csv_path and log.written else ""),
                  highlight=False)
        return interrupted
    if out is not None:
        for t in summary_tables(log.rows, out.width):
            out.print(t)
        out.print(_legend(_summary(log.rows)), markup=False, highlight=False, style="dim")
    if o.csv_path and log.written:
        err.print(f"smpemu sweep: wrote {o.csv_path} ({log.written} row(s) this time)", highlight=False)
    if o.plot_path:
        try:
            plot(log.rows, o.plot_path, title_of(o, reclaimers_of(o)))
            err.print(f"smpemu sweep: wrote {o.plot_path}", highlight=False)
        except OSError as e:
            from smpemu.harness.outputs import report_lost

            report_lost(o.plot_path, e)
    return exit_code(log.rows)


def register(app, out, err, guard) -> None:
    import typer

    @app.command("sweep", epilog="Examples:\n\n" + "\n\n".join((
        "# the README's figure: eager against deferred-v4, 1 to 16 vCPUs, 3 repeats\n"
        "smpemu sweep --csv out.csv --plot out.png",
        "# two pinnings (';' between them) at 2 and 8 vCPUs, 5 s runs\n"
        "smpemu sweep --vcpus 2,8 --pin \"compact;spread\" --duration 5 --csv pin.csv",
        "# go on after a Ctrl-C: runs already in the CSV are skipped\n"
        "smpemu sweep --csv out.csv --resume",
        "# guest shootdowns: native against the PV flush, on 2 emulated pCPUs\n"
        "smpemu sweep --workload guest-shootdown --guest-flush native,pv --pcpus 2",
    )))
    @guard
    def sweep(
        vcpus: str = typer.Option("1,2,4,8,16", help="vCPU counts, comma-separated."),
        policy: str = typer.Option("eager,deferred-v4", help="Flush policies, comma-separated."),
        workload: str = typer.Option("malloc-touch", help="Guest workload (see `smpemu list`)."),
        pin: str = typer.Option("compact", help="Pinnings, separated by ';': compact, spread, none or a core "
                                "list such as 0,1 (e.g. \"compact;spread;0,1\")."),
        repeat: int = typer.Option(3, help="Runs of each point (the CSV gets their median too)."),
        duration: Optional[float] = typer.Option(None, help="Seconds per run (default 2 unless --iterations)."),
        iterations: Optional[int] = typer.Option(None, help="Guest steps per vCPU per run, instead of --duration."),
        seed: int = typer.Option(1, help="Seed of the first repeat; repeat r uses seed + r."),
        memory_model: str = typer.Option("native", help="native | tso | relaxed."),
        requests: str = typer.Option("modern", help="modern | 2009."),
        notifier: str = typer.Option("2009", help="2009 (the mmu notifier flushes after mmu_unlock) | 2012 "
                                     "(before it, 565f3be21746)."),
        range_share: float = typer.Option(0.0, help="Share (0-1) of the reclaimers' invalidations that are range "
                                          "invalidations of a working-set page (smpemu run --help)."),
        swap_rate: float = typer.Option(1000.0, help="Host reclaims per second, in total across the reclaimers."),
        reclaimers: Optional[int] = typer.Option(None, help="Host reclaimer processes, each running the mmu "
                                                 "notifier concurrently (default 2, or 1 with --swap-rate 0)."),
        guest_mem: str = typer.Option("64M", help="Guest memory (e.g. 64M)."),
        preempt_exit: int = typer.Option(0, help="Old name of --pcpus (see smpemu run --help)."),
        pcpus: int = typer.Option(0, help="The emulated host scheduler: at most P vCPUs run at once (0: off)."),
        quantum: float = typer.Option(50.0, help="With --pcpus: its time slice, ms."),
        guest_flush: str = typer.Option("native", help="Guest flush methods, comma-separated (another axis: "
                                        "native, pv, pv-writeback, pv-overwrite, pv-no-sync)."),
        local_flush: str = typer.Option("concurrent", help="first | concurrent (see smpemu run --help)."),
        ipi_route: str = typer.Option("direct", help="direct | coordinator (see smpemu run --help)."),
        trace_file: Optional[str] = typer.Option(None, help="Input: the operations file of --workload trace "
                                                 "(with --scheduler: at the same path on every worker)."),
        csv_out: Optional[str] = typer.Option(None, "--csv", help="Append one row per run here (flushed as it goes)."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write every row as JSON here at the end."),
        plot_out: Optional[str] = typer.Option(None, "--plot", help="Write the scaling figure (PNG) here."),
        resume: bool = typer.Option(False, help="Skip runs already in --csv."),
        scheduler: Optional[str] = typer.Option(None, help="dask.distributed scheduler address: run points there."),
    ):
        """Run a grid of vCPUs x policies x pinnings, repeated; CSV, JSON and a plot."""
        if duration is None and iterations is None:
            duration = 2.0
        o = SweepOptions(
            vcpus=parse_list(vcpus, "--vcpus", int), policies=parse_list(policy, "--policy"),
            workload=workload, pins=parse_pins(pin), repeat=repeat, duration=duration,
            iterations=iterations, seed=seed, memory_model=memory_model, requests=requests, notifier=notifier,
            range_share=range_share, swap_rate=swap_rate, reclaimers=reclaimers, guest_mem=guest_mem,
            preempt_exit=preempt_exit, ipi_route=ipi_route,
            guest_flushes=parse_list(guest_flush, "--guest-flush"), pcpus=pcpus, quantum=quantum,
            local_flush=local_flush,
            trace_file=trace_file, csv_path=csv_out,
            json_path=json_out, plot_path=plot_out, resume=resume, scheduler=scheduler,
        )
        raise typer.Exit(execute(o, err=err, out=out))


__all__ = ["register", "execute"]
