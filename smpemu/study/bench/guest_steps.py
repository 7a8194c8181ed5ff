"""Guest steps per second of one vCPU on a dedicated core, against a bare loop.

Why it exists: every emulated instruction goes through ``VCPU.access`` (kick
poll, private-TLB dict lookup, the oracle's generation check); the design's
target is at least half of a bare Python loop doing the same lookups.  Both
loops run in this process, pinned to one core, over the same shared arena,
alternated, medians taken.
"""

from __future__ import annotations

import os
import statistics
import time

from smpemu.study.bench.ipi_latency import _cores, _unpin
from smpemu.harness import resources
from smpemu.harness.config import RunConfig
from smpemu.harness.context import RunParams
from smpemu.harness.coordinator import build_spec, plan
from smpemu.kvm.layout import EXITING_GUEST_MODE
from smpemu.kvm.spte import GEN_MASK
from smpemu.kvm.tlb import E_GEN, E_PFN, E_WR
from smpemu.kvm.vcpu import build_vcpu
from smpemu.harness.worker import make_context

PAGES = 4  # "a few already-mapped pages"


def _vcpu(ctx, spec) -> tuple:
    """vCPU 0 of a 1-vCPU guest, built in this process, in guest mode."""
    cpu, guest = build_vcpu(ctx, spec)
    cpu.enter_guest()
    pages = list(spec.guest.user_range(0))[:PAGES]
    for s in pages:
        guest.touch(s, True)
    return cpu, pages


def vcpu_loop(cpu, pages, n: int) -> float:
    """Steps/s of ``cpu.access`` over already-mapped pages (TLB hits, kick polls)."""
    access = cpu.access
    t0 = time.perf_counter()
    for i in range(n):
        access(pages[i & 3], False)
    return n / (time.perf_counter() - t0)


def bare_loop(cpu, pages, n: int) -> float:
    """The same work with no emulator around it, inline: step count and
    budget check, the mode-word poll, the dict lookup, the write-permission
    test, the hit count and the generation read."""
    W = cpu.W
    a_mode, a_gen = cpu.a_mode, cpu.a_gen
    tlb = cpu.tlb.map
    steps = hits = 0
    budget = n + 1
    write = False
    t0 = time.perf_counter()
    for i in range(n):
        steps += 1
        if steps >= budget:
            break
        if W[a_mode] == EXITING_GUEST_MODE:
            pass
        e = tlb.get(pages[i & 3])
        if e is not None and (write is False or e[E_WR]):
            hits += 1
            if W[a_gen + e[E_PFN]] & GEN_MASK != e[E_GEN]:
                pass
    return n / (time.perf_counter() - t0)


def measure(n: int, reps: int = 3) -> dict:
    """Median steps/s of the vCPU and of the bare loop, alternated on one core."""
    cfg = RunConfig(vcpus=1, workload="script", script={}, swap_rate=0, guest_mem="4M", pin="none").validate()
    guest, layout, placement = plan(cfg)
    rs = resources.ResourceSet(resources.new_run_id())
    try:
        spec = build_spec(rs, cfg, guest, layout, placement, RunParams())
        ctx = make_context(0, spec)
        os.sched_setaffinity(0, [_cores()[1]])
        cpu, pages = _vcpu(ctx, spec)
        vals = {"vcpu": [], "bare": []}
        for _ in range(reps):
            vals["bare"].append(bare_loop(cpu, pages, n))
            vals["vcpu"].append(vcpu_loop(cpu, pages, n))
        cpu.finish()
        ctx.arena.release()
        return {k: statistics.median(v) for k, v in vals.items()}
    finally:
        _unpin()
        rs.close()
