"""Whole-run benchmarks: deferral (deferred-v4 vs eager), flush-cost scaling, the PV flush.

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


PV_VCPUS, PV_PCPUS = 16, 2  # the study's highest oversubscription (docs/pv-flush.md)


def pvflush(duration: float, repeat: int) -> dict:
    """Guest shootdowns at 8x oversubscription (16 vCPUs on 2 emulated pCPUs):
    the paravirtual flush against native IPIs, same run set (repeats alternated)."""
    rows = grid.collect(grid.SweepOptions(vcpus=[PV_VCPUS], policies=["mmu-lock"], workload="guest-shootdown",
                                          duration=duration, repeat=repeat, guest_flushes=["native", "pv"],
                                          pcpus=PV_PCPUS))
    m = {r["guest_flush"]: r for r in rows if r["kind"] == "median"}
    n, p = m["native"], m["pv"]
    print(f"pvflush: guest-shootdown, {PV_VCPUS} vCPUs on {PV_PCPUS} emulated pCPUs (--pcpus, quantum "
          f"{grid.SweepOptions(vcpus=[], policies=[]).quantum:g} ms), mmu-lock, {duration:g} s, median of {repeat}")
    print(f"  {'method':<8}{'shootdowns':>11}{'p50 us':>16}{'p99 us':>18}{'IPIs/shootdown':>16}{'preempted':>11}"
          f"{'steps/s':>11}")
    for name, r in (("native", n), ("pv", p)):
        print(f"  {name:<8}{r['shootdowns']:>11,.0f}{_us(r['shootdown_p50_us']):>16}{_us(r['shootdown_p99_us']):>18}"
              f"{r['ipis_per_shootdown']:>16.2f}{r['targets_preempted_share']:>11.0%}{r['steps_per_s']:>11,.0f}")
    base = "native IPIs, same run set"
    return {
        "pvflush.shootdown_p50_us": _entry(p["shootdown_p50_us"], "us", base, n["shootdown_p50_us"], 1.0),
        "pvflush.shootdown_p99_us": _entry(p["shootdown_p99_us"], "us", base, n["shootdown_p99_us"], 1.0),
        "pvflush.ipis_per_shootdown": _entry(p["ipis_per_shootdown"], "IPIs", base, n["ipis_per_shootdown"], 1.0),
        "pvflush.steps_per_s": _entry(p["steps_per_s"], "steps/s", base, n["steps_per_s"], 1.0, better="higher"),
    }


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
