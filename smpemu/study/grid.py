"""A sweep's grid: its options, its points, one run of a point and its row.

Why it exists: a scaling study is a grid (vCPUs x policies x pinnings,
repeated) of ``coordinator.run`` calls; this is the part every way of running
the grid shares (in this process, on dask workers, or from bench/): the
options, their validation before the first run starts, the config of a
point, the flattened row of a finished run, and the sweep's exit code.
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field

import workloads
from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_VIOLATION, UsageError
from smpemu.harness.config import RunConfig, check_writable
from smpemu.harness.coordinator import plan, run
from smpemu.study.csvlog import RowLog
from smpemu.study.plot import check_plot_format, require_matplotlib
from smpemu.study.remote import require_dask


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
    notifier: str = "2009"
    range_share: float = 0.0
    swap_rate: float = 1000.0
    reclaimers: int | None = None  # None: 2 when the host reclaims (swap_rate > 0), else 1
    guest_mem: str = "64M"
    preempt_exit: int = 0
    ipi_route: str = "direct"
    guest_flushes: list = field(default_factory=lambda: ["native"])  # --guest-flush: one more axis
    pcpus: int = 0  # the emulated host scheduler (0: off)
    quantum: float = 50.0
    local_flush: str = "concurrent"
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
    guest_flush: str = "native"


def points(o: SweepOptions) -> list[Point]:
    """Repeats outermost, so a noisy moment of the host spreads over all points."""
    return [Point(p, pin, v, r, g) for r in range(o.repeat) for v in o.vcpus
            for p in o.policies for pin in o.pins for g in o.guest_flushes]


def reclaimers_of(o: SweepOptions) -> int:
    """The number of host reclaimers of every run (RunConfig's default rule)."""
    if o.reclaimers is not None:
        return o.reclaimers
    return 2 if o.swap_rate > 0 else 1


def config_of(o: SweepOptions, pt: Point) -> RunConfig:
    cfg = RunConfig(vcpus=pt.vcpus, workload=o.workload, policy=pt.policy, pin=pt.pin,
                    memory_model=o.memory_model, duration=o.duration, iterations=o.iterations,
                    guest_mem=o.guest_mem, seed=o.seed + pt.repeat, requests=o.requests, notifier=o.notifier,
                    range_share=o.range_share, swap_rate=o.swap_rate, reclaimers=reclaimers_of(o),
                    preempt_exit=o.preempt_exit, ipi_route=o.ipi_route, pcpus=o.pcpus, quantum=o.quantum,
                    guest_flush=pt.guest_flush, local_flush=o.local_flush)
    if o.trace_file:  # absolute: a --scheduler worker runs `smpemu run` in another directory
        cfg.trace_file = os.path.abspath(o.trace_file)
    return cfg


def validate(o: SweepOptions) -> list[Point]:
    """Every check that can fail, before the first run starts."""
    if o.repeat < 1:
        raise UsageError(f"--repeat must be >= 1 (got {o.repeat})")
    if any(v < 1 for v in o.vcpus):
        raise UsageError(f"--vcpus: every count must be at least 1 (got {o.vcpus})")
    if o.duration is not None and o.iterations is not None:
        raise UsageError("give --duration or --iterations, not both")
    if o.workload == "script":
        raise UsageError("sweep does not run --workload script (a script is one scenario, not a grid): "
                         "use smpemu run --workload script --script FILE")
    if o.trace_file and o.workload != "trace":
        raise UsageError(f"--trace-file is for --workload trace (not {o.workload})")
    if o.resume and not o.csv_path:
        raise UsageError("--resume needs --csv: the CSV is what it resumes from")
    for path, opt in ((o.csv_path, "--csv"), (o.json_path, "--json"), (o.plot_path, "--plot")):
        if path:
            check_writable(path, opt)
    if o.plot_path:
        require_matplotlib()
        check_plot_format(o.plot_path)
    if o.scheduler:
        require_dask()
    pts = points(o)
    for pt in pts[: len(pts) // o.repeat]:  # one repeat covers every distinct config
        cfg = config_of(o, pt)
        guest, _, _ = plan(cfg)
        check = getattr(workloads.get(cfg.workload), "validate_config", None)
        if check is not None:
            check(cfg, guest)
    return pts


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
            "memory_model": o.memory_model, "requests": o.requests, "notifier": o.notifier,
            "range_share": o.range_share, "swap_rate": o.swap_rate,
            "reclaimers": reclaimers_of(o), "guest_mem": o.guest_mem, "duration": o.duration,
            "iterations": o.iterations, "preempt_exit": o.preempt_exit, "ipi_route": o.ipi_route,
            "guest_flush": pt.guest_flush, "pcpus": o.pcpus, "quantum": o.quantum, "local_flush": o.local_flush}


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
    if "oversubscription" in result:  # issue 19's runs (harness/guest_report.py)
        row["oversubscription"] = result["oversubscription"]
        sd = t.get("shootdowns") or 0
        row["shootdowns_per_s"] = round(sd / wall, 1) if wall else 0.0
    row["aborted"] = result.get("aborted") or ""
    row["exit_code"] = result.get("exit_code", EXIT_OK)
    return row


def exit_code(rows: list[dict]) -> int:
    runs = [r for r in rows if r.get("kind") == "run"]
    if any((r.get("violations") or 0) > 0 for r in runs):
        return EXIT_VIOLATION
    if any(r.get("aborted") for r in runs):
        return EXIT_ABORTED
    return EXIT_OK


# -- running points in this process ------------------------------------------------------
class Interrupted(Exception):
    pass


def run_local(cfg: RunConfig, progress=None) -> dict:
    """One point in this process; Ctrl-C during it -> Interrupted (its row is dropped)."""
    res = run(cfg, progress=progress)
    if res.interrupted:
        raise Interrupted(res.interrupted)
    return res.as_dict()


def collect(o: SweepOptions) -> list[dict]:
    """Run a grid in this process, quietly, and return its rows (for bench/)."""
    pts = validate(o)
    log = RowLog(None, False)
    for pt in pts:
        log.add(run_row(o, pt, run_local(config_of(o, pt))))
    log.add_medians(o.repeat)
    return log.rows
