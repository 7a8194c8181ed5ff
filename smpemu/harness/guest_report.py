"""What a run reports of issue 19: preemptions, guest shootdowns, oversubscription.

Why it exists: the emulated host scheduler and the guest shootdowns keep
their own counters (``gstats``, ``ghist``: kvm/layout.py); this turns them
into the keys of ``run --json`` and of the run's tables, per vCPU and in
total, next to the counters every run has (harness/coordinator.py).
"""

from __future__ import annotations

from smpemu.kvm.layout import C, G

# gstats counters reported as they are (kvm/layout.py GSTAT_NAMES), per vCPU and summed
SUMMED = ("shootdowns", "shootdown_targets", "shootdown_ipis", "shootdown_ipis_avoided", "targets_preempted",
          "flushes_skipped", "flushes_partial", "flushes_full", "pv_flushes", "irqs", "shootdowns_preempted")


def _row(counters, stats, hist, percentiles) -> dict:
    d = {"preemptions": int(counters[C["preempt_exits"]]),
         "preempted_ms": round(int(stats[G["preempted_ns"]]) / 1e6, 3)}
    d.update({k: int(stats[G[k]]) for k in SUMMED})
    d["shootdown_us"] = percentiles(hist)
    return d


def gather(arena, result, percentiles) -> None:
    """Add issue 19's keys to ``result`` (a RunResult whose rows are gathered)."""
    g = arena.layout.geometry
    N = g.n_vcpus
    cnt = arena.counters
    stats = arena.gstats.copy()
    hist = arena.ghist.copy()
    for i in range(N):
        result.vcpus[i].update(_row(cnt[i], stats[i], hist[i], percentiles))
    t = _row(cnt[:N].sum(axis=0), stats.sum(axis=0), hist.sum(axis=0), percentiles)
    sd = t["shootdowns"]
    t["ipis_per_shootdown"] = round(t["shootdown_ipis"] / sd, 3) if sd else None
    t["targets_preempted_share"] = (round(t["targets_preempted"] / t["shootdown_targets"], 4)
                                    if t["shootdown_targets"] else None)
    result.totals.update(t)
    cfg = result.config
    cores = {c for v in result.vcpus for c in v.get("cpus", [])}
    pcpus = cfg.get("pcpus") if cfg.get("pcpus") and not cfg.get("schedule") else 0
    result.pv = {"pcpus": pcpus, "oversubscription": round(N / (pcpus or max(1, len(cores))), 3),
                 "guest_flush": cfg.get("guest_flush")}


__all__ = ["gather", "SUMMED"]
