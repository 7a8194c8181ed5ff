"""``smpemu bench`` (and ``python -m bench``): every benchmark, each against a baseline measured in the same run.

Why it exists: the design's performance targets are ratios on one machine in
one session; this runs them all and prints one table (value, baseline,
ratio, target, met), and ``--json FILE`` writes
``{name: {"value", "unit", "baseline", "baseline_value", "ratio", ...}}``.

    ipi_running, ipi_halted    ipi_latency.py (flush round trips vs ping-pongs)
    guest_steps                guest_steps.py (vCPU.access vs a bare loop)
    deferral.*                 runs.py (malloc-touch, 16 vCPUs, deferred-v4 / eager)
    scaling.*                  runs.py (eager invlpg-storm, 1..16 vCPUs)
    pvflush.*                  runs.py (guest-shootdown, 16 vCPUs on 2 pCPUs: pv / native)

``--quick`` keeps the whole thing under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os

from smpemu.study.bench import guest_steps, ipi_latency, runs

ALL = ("ipi", "guest_steps", "deferral", "scaling", "pvflush")
SIZES = {  # quick, full
    "steps": (200_000, 1_000_000),
    "deferral_iterations": (2000, 10000),
    "deferral_repeat": (3, 3),  # a single pair of 16-vCPU runs is too noisy to judge
    "scaling_iterations": (1000, 3000),
    "scaling_repeat": (1, 3),
    "pvflush_duration": (4.0, 8.0),  # seconds per run: a native shootdown at 8x takes ~0.4 s
    "pvflush_repeat": (1, 3),
}


def _size(name: str, quick: bool):
    return SIZES[name][0 if quick else 1]


def bench_ipi(quick: bool) -> dict:
    res = ipi_latency.main(["--quick"] if quick else [])
    for k in ("ipi_running", "ipi_halted"):
        res[k]["better"] = "lower"
    return {k: res[k] for k in ("ipi_running", "ipi_halted")}


def bench_guest_steps(quick: bool) -> dict:
    m = guest_steps.measure(_size("steps", quick))
    print(f"guest_steps: vCPU.access {m['vcpu']:,.0f} steps/s, bare loop {m['bare']:,.0f} steps/s "
          f"(one core, {guest_steps.PAGES} mapped pages, TLB hits)")
    return {"guest_steps": {"value": m["vcpu"], "unit": "steps/s",
                            "baseline": "bare python loop, same lookups", "baseline_value": m["bare"],
                            "ratio": m["vcpu"] / m["bare"], "target": 0.5, "better": "higher"}}


def bench_deferral(quick: bool, iterations: int | None) -> dict:
    return runs.deferral(iterations or _size("deferral_iterations", quick), _size("deferral_repeat", quick))


def bench_pvflush(quick: bool) -> dict:
    return runs.pvflush(_size("pvflush_duration", quick), _size("pvflush_repeat", quick))


def bench_scaling(quick: bool) -> dict:
    res = runs.scaling(_size("scaling_iterations", quick), _size("scaling_repeat", quick))
    res.pop("_note", None)
    return res


def met(e: dict) -> str:
    t, r = e.get("target"), e.get("ratio")
    if t is None or r is None:
        return "-"
    ok = r <= t if e.get("better", "lower") == "lower" else r >= t
    return "yes" if ok else "NO"


def _num(v) -> str:
    return "-" if v is None else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def print_table(res: dict) -> None:
    print()
    print(f"{'benchmark':<30}{'value':>14} {'unit':<10}{'baseline':<34}{'baseline':>12}{'ratio':>8}{'target':>10}  met")
    from smpemu.harness.report import fmt_latency

    for k, e in res.items():
        t = e.get("target")
        tgt = "-" if t is None else ("<= " if e.get("better", "lower") == "lower" else ">= ") + f"{t:.2f}"
        r = e.get("ratio")
        # ack latencies are histogram buckets (8 per power of two): print the bucket, and the ratio coarsely
        bucket = ".ack_" in k or "_us" in k  # histogram buckets
        num = fmt_latency if bucket else _num
        ratio = "-" if r is None else f"{r:.2g}" if bucket else f"{r:.3f}"
        print(f"{k:<30}{num(e['value']):>14} {e['unit']:<10}{e['baseline']:<34}{num(e['baseline_value']):>12}"
              f"{ratio:>8}{tgt:>10}  {met(e)}")


def check_options(only: str, json_path: str | None) -> list[str]:
    """The benchmarks to run; a bad --only or --json is a UsageError."""
    from smpemu.errors import UsageError
    from smpemu.harness.config import check_writable

    names = [x.strip() for x in str(only).split(",") if x.strip()]
    bad = [x for x in names if x not in ALL]
    if bad or not names:
        raise UsageError(f"--only: unknown benchmark(s) {', '.join(bad) or repr(only)}; choose from {', '.join(ALL)}")
    if json_path:
        check_writable(json_path, "--json")
    return names


def run_all(only: list[str], quick: bool = False, json_path: str | None = None,
            iterations: int | None = None) -> dict:
    """Run the benchmarks, print their table, write --json; returns the results."""
    res: dict = {}
    print(f"host load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cpus)")
    for name in only:
        print(f"== {name}", flush=True)
        if name == "ipi":
            res.update(bench_ipi(quick))
        elif name == "guest_steps":
            res.update(bench_guest_steps(quick))
        elif name == "deferral":
            res.update(bench_deferral(quick, iterations))
        elif name == "pvflush":
            res.update(bench_pvflush(quick))
        else:
            res.update(bench_scaling(quick))
    print_table(res)
    print(f"host load average at end: {os.getloadavg()[0]:.1f}; ratios on a busy host are noisy", flush=True)
    if json_path:
        from smpemu.harness.outputs import write_json_file

        write_json_file({k: {**e, "met": met(e)} for k, e in res.items()}, json_path)
    return res


def main(argv=None) -> int:
    """``python -m bench``: argparse front end of run_all (``smpemu bench`` is the typer one)."""
    from smpemu.errors import UsageError

    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short version (under a minute)")
    ap.add_argument("--json", help="write {name: {value, unit, baseline, baseline_value, ratio}} here")
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--iterations", type=int, help="deferral: guest steps per vCPU (both policies)")
    a = ap.parse_args(argv)
    try:
        only = check_options(a.only, a.json)
    except UsageError as e:
        ap.error(str(e))
    run_all(only, a.quick, a.json, a.iterations)
    return 0
