"""Whole-run benchmarks: deferral (deferred-v4 vs eager) and flush-cost scaling.

Why it exists: the design's targets for the seed's workload are ratios of two
whole runs made in the same session (deferred-v4 / eager at 16 vCPUs), and
the cost of a flush as vCPUs are added is a small sweep.  Both are grids of
``coordinator.run`` calls, so they go through ``smpemu.study.grid.collect`` (runs
alternated, medians of the repeats).  Ack latencies print as the range of the
histogram bucket that holds them (8 buckets per power of two).
"""

from __future__ import annotations

from smpemu.study import grid

SCALING_VCPUS = [1, 2, 4, 8, 16]


def _medians(o: grid.SweepOptions) -> dict:
    """{(policy, vcpus): median row} of a grid."""
    return {(r["policy"], r["vcpus"]): r for r in grid.collect(o) if r["kind"] == "median"}


def _entry(value, unit, baseline, baseline_value, target=None, better="lower"):
    ratio = value / baseline_value if baseline_value else None
    return {"value": value, "unit": unit, "baseline": baseline, "baseline_value": baseline_value,
            "ratio": ratio, "target": target, "better": better}


def deferral(iterations: int, repeat: int) -> dict:
    """malloc-touch, 16 vCPUs, same iterations: deferred-v4 / eager."""
    m = _medians(grid.SweepOptions(vcpus=[16], policies=["eager", "deferred-v4"], workload="malloc-touch",
                                    iterations=iterations, repeat=repeat))
    e, d = m[("eager", 16)], m[("deferred-v4", 16)]
    base = "eager, same run set"
    res = {
        "deferral.ipis_sent": _entry(d["ipis_sent"], "IPIs", base, e["ipis_sent"], 0.1),
        "deferral.remote_flushes": _entry(d["remote_flushes"], "flushes", base, e["remote_flushes"], 0.1),
        "deferral.wall_s": _entry(d["wall_s"], "s", base, e["wall_s"], 1 / 3),
    }
    print(f"deferral: malloc-touch, 16 vCPUs, {iterations} steps/vCPU, median of {repeat}")
    print(f"  {'policy':<13}{'ipis_sent':>10}{'(by host)':>10}{'remote_flushes':>16}{'(by host)':>10}{'wall_s':>9}"
          f"{'ack p50 / p99 us':>30}{'host reclaims':>15}")
    for name, r in (("eager", e), ("deferred-v4", d)):
        print(f"  {name:<13}{r['ipis_sent']:>10.0f}{r['host_ipis_sent']:>10.0f}{r['remote_flushes']:>16.0f}"
              f"{r['host_remote_flushes']:>10.0f}{r['wall_s']:>9.2f}"
              f"{_us(r['ack_latency_p50_us']):>16} / {_us(r['ack_latency_p99_us']):<13}{r['host_reclaims']:>15.0f}")
    return res


def _us(v) -> str:
    """An ack-latency percentile as its histogram bucket's range (us): no false precision."""
    from smpemu.harness.report import fmt_latency

    return fmt_latency(v)


def scaling(iterations: int, repeat: int, workload: str = "invlpg-storm") -> dict:
    """Flush cost as vCPUs are added: eager invlpg-storm (every invlpg a remote flush)."""
    m = _medians(grid.SweepOptions(vcpus=SCALING_VCPUS, policies=["eager"], workload=workload,
                                    iterations=iterations, repeat=repeat))
    rows = [m[("eager", n)] for n in SCALING_VCPUS]
    print(f"scaling: {workload}, eager, {iterations} steps/vCPU, median of {repeat}")
    print(f"  {'vcpus':>5}{'remote flushes/s':>18}{'ipis/s':>10}{'ack p50 us':>16}{'ack p99 us':>16}{'steps/s':>11}")
    for n, r in zip(SCALING_VCPUS, rows):
        print(f"  {n:>5}{r['remote_flushes_per_s']:>18,.0f}{r['ipis_per_s']:>10,.0f}{_us(r['ack_latency_p50_us']):>16}"
              f"{_us(r['ack_latency_p99_us']):>16}{r['steps_per_s']:>11,.0f}")
    one, two, top = rows[0], rows[1], rows[-1]
    n = SCALING_VCPUS[-1]
    return {
        "scaling.remote_flushes_per_s": _entry(top["remote_flushes_per_s"], "flushes/s",
                                               "same at 1 vCPU", one["remote_flushes_per_s"], better="higher"),
        "scaling.ack_p50_us": _entry(top["ack_latency_p50_us"], "us", "same at 2 vCPUs", two["ack_latency_p50_us"]),
        "scaling.ack_p99_us": _entry(top["ack_latency_p99_us"], "us", "same at 2 vCPUs", two["ack_latency_p99_us"]),
        "_note": f"scaling values are at {n} vCPUs",
    }
