"""``smpemu sweep``: run a grid of configurations, log a CSV, plot scaling.

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
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Optional

from smpemu.harness.config import RunConfig, check_writable
from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_VIOLATION, SmpemuError, UsageError

# the columns that say which run a row is; ``repeat`` and ``run_seed`` vary within a point
CONFIG_COLS = ("kind", "workload", "policy", "pin", "vcpus", "repeat", "seed", "run_seed",
               "memory_model", "requests", "swap_rate", "reclaimers", "guest_mem", "duration", "iterations",
               "preempt_exit", "ipi_route")
POINT_COLS = ("workload", "policy", "pin", "vcpus", "seed", "memory_model", "requests",
              "swap_rate", "reclaimers", "guest_mem", "duration", "iterations", "preempt_exit", "ipi_route")
NEW_COLS = ("reclaimers",)  # a CSV written before these columns existed can still be resumed
RUN_KEY_COLS = POINT_COLS + ("repeat",)
MAX_COLS = ("violations", "exit_code")  # a median row shows the worst repeat for these


# -- options and points ------------------------------------------------------------
@dataclass
class SweepOptions:
    vcpus: list
    policies: list
    workload: str = "malloc-touch"
    pins: list = field(default_factory=lambda: ["compact"])
    repeat: int = 3
    duration: float | None = None
    iterations: int | None = None
    seed: int = 1
    memory_model: str = "native"
    requests: str = "modern"
    swap_rate: float = 1000.0
    reclaimers: int | None = None  # None: 2 when the host reclaims (swap_rate > 0), else 1
    guest_mem: str = "64M"
    preempt_exit: int = 0
    ipi_route: str = "direct"
    trace_file: str | None = None
    csv_path: str | None = None
    json_path: str | None = None
    plot_path: str | None = None
    resume: bool = False
    scheduler: str | None = None


@dataclass(frozen=True)
class Point:
    policy: str
    pin: str
    vcpus: int
    repeat: int


def parse_list(text: str, opt: str, conv=str) -> list:
    """'1,2,4' -> [1, 2, 4]; empty items, bad items -> UsageError; duplicates dropped."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise UsageError(f"{opt} {text!r}: expected a comma-separated list such as "
                         f"{'1,2,4' if conv is int else 'a,b'}")
    out = []
    for t in items:
        try:
            v = conv(t)
        except ValueError:
            raise UsageError(f"{opt} {text!r}: {t!r} is not a number") from None
        if v not in out:
            out.append(v)
    return out


def points(o: SweepOptions) -> list[Point]:
    """Repeats outermost, so a noisy moment of the host spreads over all points."""
    return [Point(p, pin, v, r) for r in range(o.repeat) for v in o.vcpus
            for p in o.policies for pin in o.pins]


def reclaimers_of(o: SweepOptions) -> int:
    """The number of host reclaimers of every run (RunConfig's default rule)."""
    if o.reclaimers is not None:
        return o.reclaimers
    return 2 if o.swap_rate > 0 else 1


def config_of(o: SweepOptions, pt: Point) -> RunConfig:
    cfg = RunConfig(vcpus=pt.vcpus, workload=o.workload, policy=pt.policy, pin=pt.pin,
                    memory_model=o.memory_model, duration=o.duration, iterations=o.iterations,
                    guest_mem=o.guest_mem, seed=o.seed + pt.repeat, requests=o.requests,
                    swap_rate=o.swap_rate, reclaimers=reclaimers_of(o), preempt_exit=o.preempt_exit,
                    ipi_route=o.ipi_route)
    if o.trace_file:
        cfg.trace_file = o.trace_file  # until RunConfig has the field
    return cfg


def validate(o: SweepOptions) -> list[Point]:
    """Every check that can fail, before the first run starts."""
    from smpemu.harness.coordinator import plan
    import workloads

    if o.repeat < 1:
        raise UsageError(f"--repeat must be >= 1 (got {o.repeat})")
    if any(v < 1 for v in o.vcpus):
        raise UsageError(f"--vcpus: every count must be at least 1 (got {o.vcpus})")
    if o.duration is not None and o.iterations is not None:
        raise UsageError("give --duration or --iterations, not both")
    if o.workload == "script":
        raise UsageError("the script workload is driven from Python (tests); see workloads/script.py")
    if o.trace_file and o.workload != "trace":
        raise UsageError(f"--trace-file is for --workload trace (not {o.workload})")
    if o.resume and not o.csv_path:
        raise UsageError("--resume needs --csv: the CSV is what it resumes from")
    for path, opt in ((o.csv_path, "--csv"), (o.json_path, "--json"), (o.plot_path, "--plot")):
        if path:
            check_writable(path, opt)
    if o.plot_path:
        _require_matplotlib()
    if o.scheduler:
        _require_dask()
        if o.trace_file or o.workload == "trace":
            raise UsageError("--scheduler cannot run the trace workload: `smpemu run` has no trace-file option yet")
    pts = points(o)
    for pt in pts[: len(pts) // o.repeat]:  # one repeat covers every distinct config
        cfg = config_of(o, pt)
        guest, _, _ = plan(cfg)
        check = getattr(workloads.get(cfg.workload), "validate_config", None)
        if check is not None:
            check(cfg, guest)
    return pts


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install -e .[plot]") from None


def _require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError('--scheduler needs dask.distributed: pip install "dask[distributed]"') from None


# -- rows ---------------------------------------------------------------------------
def flatten(totals: dict) -> dict:
    """Totals as flat columns: ack_latency_us {p50, p99} -> ack_latency_p50_us, ..."""
    row = {}
    for k, v in totals.items():
        if isinstance(v, dict):
            base, unit = (k[:-3], "_us") if k.endswith("_us") else (k, "")
            for sub, x in v.items():
                row[f"{base}_{sub}{unit}"] = x
        else:
            row[k] = v
    return row


def config_cols(o: SweepOptions, pt: Point) -> dict:
    return {"kind": "run", "workload": o.workload, "policy": pt.policy, "pin": pt.pin,
            "vcpus": pt.vcpus, "repeat": pt.repeat, "seed": o.seed, "run_seed": o.seed + pt.repeat,
            "memory_model": o.memory_model, "requests": o.requests, "swap_rate": o.swap_rate,
            "reclaimers": reclaimers_of(o), "guest_mem": o.guest_mem, "duration": o.duration, "iterations": o.iterations,
            "preempt_exit": o.preempt_exit, "ipi_route": o.ipi_route}


def run_row(o: SweepOptions, pt: Point, result: dict) -> dict:
    t = result["totals"]
    wall = t.get("wall_s") or 0
    row = config_cols(o, pt)
    row.update(flatten(t))
    row["ipis_per_s"] = round(t["ipis_sent"] / wall, 1) if wall else 0.0
    row["remote_flushes_per_s"] = round(t["remote_flushes"] / wall, 1) if wall else 0.0
    row["steps_per_vcpu_s"] = round(t["steps"] / wall / pt.vcpus, 1) if wall else 0.0
    host = result.get("host") or {}
    row["host_reclaims"] = host.get("reclaims")
    row["host_ipis_sent"] = host.get("ipis_sent")  # the mmu notifier's share of the IPIs
    row["host_remote_flushes"] = host.get("remote_flushes")
    row["aborted"] = result.get("aborted") or ""
    row["exit_code"] = result.get("exit_code", EXIT_OK)
    return row


def _cell(v) -> str:
    return "" if v is None else str(v)


def _typed(v):
    """A CSV cell back to a number where it is one ('' -> None)."""
    if v is None or v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except (TypeError, ValueError):
            pass
    return v


def run_key(row: dict) -> tuple:
    return tuple(_cell(row.get(c)) for c in RUN_KEY_COLS)


def point_key(row: dict) -> tuple:
    return tuple(_cell(row.get(c)) for c in POINT_COLS)


def median_row(runs: list[dict]) -> dict:
    """The median of a point's repeats (aborted repeats left out if others finished)."""
    ok = [r for r in runs if not r.get("aborted")] or runs
    row = {c: runs[0].get(c) for c in CONFIG_COLS}
    row.update(kind="median", repeat=None, run_seed=None)
    for c in runs[0]:
        if c in CONFIG_COLS or c == "aborted":
            continue
        vals = [r.get(c) for r in (runs if c in MAX_COLS else ok)]
        nums = [v for v in vals if isinstance(v, (int, float))]
        if not nums:
            row[c] = None
        elif c in MAX_COLS:
            row[c] = max(nums)
        else:
            row[c] = statistics.median(nums)
    row["aborted"] = sum(1 for r in runs if r.get("aborted"))
    return row


class RowLog:
    """The rows of a sweep: kept in memory, appended to the CSV one by one."""

    def __init__(self, path: str | None, resume: bool):
        self.path = path
        self.rows: list[dict] = []
        self.header: list[str] | None = None
        self.f = None
        self.w = None
        if path and resume and os.path.exists(path) and os.path.getsize(path) > 0:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, newline="") as f:
                r = csv.DictReader(f)
                self.header = list(r.fieldnames or [])
                rows = [{k: _typed(v) for k, v in row.items()} for row in r]
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise UsageError(f"--resume: cannot read {path}: {e}") from None
        if not {"kind", *RUN_KEY_COLS} - set(NEW_COLS) <= set(self.header):
            raise UsageError(f"--resume: {path} is not a sweep CSV (no {', '.join(RUN_KEY_COLS)} columns)")
        self.rows = rows

    def done(self) -> set:
        return {run_key(r) for r in self.rows if r.get("kind") == "run"}

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if not self.path:
            return
        if self.w is None:
            self._open(row)
        self.w.writerow({k: _cell(v) for k, v in row.items()})
        self.f.flush()

    def _open(self, first: dict) -> None:
        appending = self.header is not None
        if not appending:
            self.header = list(first)
        self.f = open(self.path, "a" if appending else "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.header, extrasaction="ignore", restval="")
        if not appending:
            self.w.writeheader()

    def add_medians(self, repeat: int) -> None:
        """A median row for each point whose repeats are all in and that has none yet."""
        have = {point_key(r) for r in self.rows if r.get("kind") == "median"}
        groups: dict[tuple, list] = {}
        for r in self.rows:
            if r.get("kind") == "run":
                groups.setdefault(point_key(r), []).append(r)
        for k, runs in groups.items():
            if k not in have and len({r.get("repeat") for r in runs}) >= repeat:
                self.add(median_row(runs))

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def exit_code(rows: list[dict]) -> int:
    runs = [r for r in rows if r.get("kind") == "run"]
    if any((r.get("violations") or 0) > 0 for r in runs):
        return EXIT_VIOLATION
    if any(r.get("aborted") for r in runs):
        return EXIT_ABORTED
    return EXIT_OK


# -- running points -----------------------------------------------------------------------
class Interrupted(Exception):
    pass


def run_local(cfg: RunConfig, progress=None) -> dict:
    """One point in this process; Ctrl-C during it -> Interrupted (its row is dropped)."""
    from smpemu.harness.coordinator import run

    res = run(cfg, progress=progress)
    if res.interrupted:
        raise Interrupted(res.interrupted)
    return res.as_dict()


def cli_args(cfg: RunConfig) -> list[str]:
    """The ``smpemu run`` arguments of a config (the options a sweep varies or passes)."""
    a = ["--vcpus", cfg.vcpus, "--workload", cfg.workload, "--policy", cfg.policy, "--pin", cfg.pin,
         "--memory-model", cfg.memory_model, "--requests", cfg.requests, "--swap-rate", cfg.swap_rate,
         "--reclaimers", cfg.reclaimers if cfg.reclaimers is not None else 2 if cfg.swap_rate > 0 else 1,
         "--guest-mem", cfg.guest_mem, "--seed", cfg.seed,
         "--preempt-exit", cfg.preempt_exit, "--ipi-route", cfg.ipi_route]
    a += ["--iterations", cfg.iterations] if cfg.iterations else ["--duration", cfg.duration or 10.0]
    return [str(x) for x in a]


def run_subprocess(args: list[str], timeout: float | None = None) -> dict:
    """``python -m smpemu.cli run ARGS --json tmp`` and its JSON (a dask task body)."""
    fd, path = tempfile.mkstemp(prefix="smpemu-sweep-", suffix=".json")
    os.close(fd)
    try:
        p = subprocess.run([sys.executable, "-m", "smpemu.cli", "run", *args, "--json", path],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode in (EXIT_OK, EXIT_VIOLATION, EXIT_ABORTED) and os.path.getsize(path) > 0:
            with open(path) as f:
                return json.load(f)
        last = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise SmpemuError(f"remote run ({' '.join(args)}) failed: {last}")
    finally:
        os.unlink(path)


def _remote_timeout(cfg: RunConfig) -> float:
    return (cfg.duration or 0) * 3 + 600


def sweep_remote(o, todo, log, on_done, client) -> None:
    """Submit every point to the dask workers; rows are logged as they finish."""
    from distributed import as_completed

    futs = {}
    for pt in todo:
        cfg = config_of(o, pt)
        f = client.submit(run_subprocess, cli_args(cfg), _remote_timeout(cfg), pure=False,
                          key=f"smpemu-{pt.policy}-{pt.pin}-{pt.vcpus}-r{pt.repeat}-{os.urandom(4).hex()}")
        futs[f] = pt
    try:
        for f in as_completed(futs):
            pt = futs[f]
            log.add(run_row(o, pt, f.result()))
            on_done(pt)
    except BaseException:
        client.cancel(list(futs))
        raise


def connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {address}: cannot connect: {e}") from None


def collect(o: SweepOptions) -> list[dict]:
    """Run a grid in this process, quietly, and return its rows (for bench/)."""
    pts = validate(o)
    log = RowLog(None, False)
    for pt in pts:
        log.add(run_row(o, pt, run_local(config_of(o, pt))))
    log.add_medians(o.repeat)
    return log.rows


# -- the figure -------------------------------------------------------------------------------
PANELS = (  # column, title, log y
    ("ipis_per_s", "IPIs sent per second", True),
    ("remote_flushes_per_s", "remote flushes per second", True),
    ("steps_per_s", "guest steps per second (all vCPUs)", False),
    ("ack_latency_p50_us", "flush ack latency p50 (us)", True),
    ("ack_latency_p99_us", "flush ack latency p99 (us)", True),
    ("steps_per_vcpu_s", "guest steps per second per vCPU", False),
)


def series(rows: list[dict], metric: str, positive: bool = False) -> dict:
    """{(policy, pin): [(vcpus, median, min, max)]} over the run rows
    (``positive``: only values > 0, for a log axis)."""
    acc: dict = {}
    for r in rows:
        v = r.get(metric)
        if r.get("kind") != "run" or not isinstance(v, (int, float)) or (positive and v <= 0):
            continue
        acc.setdefault((r["policy"], r["pin"]), {}).setdefault(int(r["vcpus"]), []).append(v)
    return {k: [(n, statistics.median(xs), min(xs), max(xs)) for n, xs in sorted(d.items())]
            for k, d in acc.items()}


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")

    pins = {r["pin"] for r in rows if r.get("kind") == "run"}
    xs = sorted({int(r["vcpus"]) for r in rows if r.get("kind") == "run"})
    cores = len(os.sched_getaffinity(0))
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5), constrained_layout=True)
    for ax, (metric, label, logy) in zip(axes.flat, PANELS):
        for (policy, pin), pts in sorted(series(rows, metric, logy).items()):
            n, med, lo, hi = zip(*pts)
            name = policy if len(pins) == 1 else f"{policy} ({pin})"
            line, = ax.plot(n, med, marker="o", label=name)
            ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if xs and xs[-1] > cores:
            ax.axvline(cores, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f" {cores} host cores", (cores, 1), xycoords=("data", "axes fraction"),
                        va="top", fontsize=8, color="grey")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs or [1])
        ax.set_xticklabels([str(x) for x in xs] or ["1"])
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.set_xlabel("vCPUs")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=10)
    fig.suptitle(title + "\nline: median of repeats; band: min..max", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def title_of(o: SweepOptions) -> str:
    work = f"{o.iterations} steps/vCPU" if o.iterations else f"{o.duration} s"
    return (f"smpemu sweep: {o.workload}, {work}, {o.repeat} repeat(s), memory model {o.memory_model}, "
            f"requests {o.requests}, swap {o.swap_rate:g}/s over {reclaimers_of(o)} reclaimer(s), {len(os.sched_getaffinity(0))} host cores")


# -- output ----------------------------------------------------------------------------------------
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
                sweep_remote(o, todo, log, on_done, connect(o.scheduler))
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
        swap_rate: float = typer.Option(1000.0, help="Host reclaims per second, in total across the reclaimers."),
        reclaimers: Optional[int] = typer.Option(None, help="Host reclaimer processes, each running the mmu "
                                                 "notifier concurrently (default 2, or 1 with --swap-rate 0)."),
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
            swap_rate=swap_rate, reclaimers=reclaimers, guest_mem=guest_mem, preempt_exit=preempt_exit, ipi_route=ipi_route,
            trace_file=trace_file, csv_path=csv_out,
            json_path=json_out, plot_path=plot_out, resume=resume, scheduler=scheduler,
        )
        raise typer.Exit(execute(o, err=err, out=out))


__all__ = ["register", "execute", "collect", "SweepOptions", "parse_list", "flatten", "plot"]
