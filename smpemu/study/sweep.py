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
130 interrupted (the rows already finished stay in the CSV).

The grid is ``grid``, the CSV log ``csvlog``, dask ``remote``, the figure
``plot``.
"""

from __future__ import annotations

import json
from typing import Optional

from smpemu.errors import EXIT_SIGINT
from smpemu.study.csvlog import RowLog, run_key
from smpemu.study.grid import (Interrupted, SweepOptions, config_cols, config_of, exit_code, parse_list,
                               run_local, run_row, validate)
from smpemu.study.plot import plot, title_of
from smpemu.study.remote import connect, sweep_remote


SUMMARY = (("ipis_sent", "ipis"), ("remote_flushes", "remote flushes"), ("ipis_per_s", "ipis/s"),
           ("steps_per_s", "steps/s"), ("ack_latency_p50_us", "ack p50 us"),
           ("ack_latency_p99_us", "ack p99 us"), ("wall_s", "wall s"), ("violations", "violations"),
           ("aborted", "aborted"))


def summary_table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="sweep: median of repeats", header_style="bold")
    for c in ("vcpus", "policy", "pin"):
        t.add_column(c, justify="right" if c == "vcpus" else "left")
    for _, name in SUMMARY:
        t.add_column(name, justify="right")
    meds = sorted((r for r in rows if r.get("kind") == "median"),
                  key=lambda r: (int(r["vcpus"]), str(r["policy"]), str(r["pin"])))
    for r in meds:
        cells = [r.get(c) for c, _ in SUMMARY]
        t.add_row(str(r["vcpus"]), str(r["policy"]), str(r["pin"]),
                  *("-" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int)
                    else str(v) for v in cells))
    return t


def write_json(o: SweepOptions, rows: list[dict], path: str) -> None:
    opts = {k: v for k, v in o.__dict__.items() if not k.endswith("_path")}
    with open(path, "w") as f:
        json.dump({"options": opts, "rows": rows}, f, indent=1)
        f.write("\n")


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
    try:
        with prog:
            task = prog.add_task("sweep", total=len(todo))
            finished = [0]

            def on_done(pt):
                finished[0] += 1
                prog.update(task, completed=finished[0])
                log.add_medians(o.repeat)

            if o.scheduler and todo:
                def on_result(pt, res):
                    log.add(run_row(o, pt, res))
                    on_done(pt)

                sweep_remote([(pt, config_of(o, pt)) for pt in todo], on_result, connect(o.scheduler))
            for pt in ([] if o.scheduler else todo):
                prog.update(task, description=f"{pt.vcpus} vCPUs {pt.policy} {pt.pin} r{pt.repeat + 1}/{o.repeat}")
                base = finished[0]
                res = run_local(config_of(o, pt),
                                progress=lambda f, _s, b=base: prog.update(task, completed=b + f))
                log.add(run_row(o, pt, res))
                on_done(pt)
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    finally:
        log.close()
    if o.json_path:
        write_json(o, log.rows, o.json_path)
    if interrupted:
        err.print(f"smpemu sweep: interrupted; {sum(r['kind'] == 'run' for r in log.rows)} finished run(s) kept"
                  + (f" in {o.csv_path} (--resume to go on)" if o.csv_path else ""), highlight=False)
        return EXIT_SIGINT
    if out is not None:
        out.print(summary_table(log.rows))
    if o.plot_path:
        plot(log.rows, o.plot_path, title_of(o))
    return exit_code(log.rows)


def register(app, out, err, guard) -> None:
    import typer

    @app.command("sweep")
    @guard
    def sweep(
        vcpus: str = typer.Option("1,2,4,8,16", help="vCPU counts, comma-separated."),
        policy: str = typer.Option("eager,deferred-v4", help="Flush policies, comma-separated."),
        workload: str = typer.Option("malloc-touch", help="Guest workload (see `smpemu list`)."),
        pin: str = typer.Option("compact", help="Pinnings, comma-separated: compact, spread, none."),
        repeat: int = typer.Option(3, help="Runs of each point (the CSV gets their median too)."),
        duration: Optional[float] = typer.Option(None, help="Seconds per run (default 2 unless --iterations)."),
        iterations: Optional[int] = typer.Option(None, help="Guest steps per vCPU per run, instead of --duration."),
        seed: int = typer.Option(1, help="Seed of the first repeat; repeat r uses seed + r."),
        memory_model: str = typer.Option("native", help="native | tso | relaxed."),
        requests: str = typer.Option("modern", help="modern | 2009."),
        swap_rate: float = typer.Option(1000.0, help="Host reclaims per second."),
        guest_mem: str = typer.Option("64M", help="Guest memory (e.g. 64M)."),
        preempt_exit: int = typer.Option(0, help="Oversubscribed vCPUs leave guest mode every N steps (0: off)."),
        ipi_route: str = typer.Option("direct", help="direct | coordinator (see smpemu run --help)."),
        trace_file: Optional[str] = typer.Option(None, help="Trace file of the trace workload."),
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
            workload=workload, pins=parse_list(pin, "--pin"), repeat=repeat, duration=duration,
            iterations=iterations, seed=seed, memory_model=memory_model, requests=requests,
            swap_rate=swap_rate, guest_mem=guest_mem, preempt_exit=preempt_exit, ipi_route=ipi_route,
            trace_file=trace_file, csv_path=csv_out,
            json_path=json_out, plot_path=plot_out, resume=resume, scheduler=scheduler,
        )
        raise typer.Exit(execute(o, err=err, out=out))


__all__ = ["register", "execute"]
