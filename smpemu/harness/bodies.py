"""What each forked process runs: a vCPU's workload, or the host.

Why it exists: the kernel model (``smpemu.kvm``) knows nothing of guest
workloads, which sit above it; this is where a process picks the workload
(or the script) its run's config names and drives the kernel model with it.
"""

from __future__ import annotations

import workloads
from smpemu.errors import AbortError
from smpemu.kvm.host import reclaim
from smpemu.kvm.mmu import MMU
from smpemu.kvm.vcpu import StopRun, build_vcpu
from workloads.script import run_host


def vcpu_body(ctx, spec) -> None:
    """What a vCPU process runs: the workload on the shared guest."""
    cfg = spec.cfg
    cpu, guest = build_vcpu(ctx, spec)
    wl = workloads.get(cfg.workload)
    cpu.enter_guest()
    try:
        wl.run(cpu, guest, ctx.rng, cfg)
    except StopRun:
        pass
    finally:
        try:
            cpu.finish()
        except AbortError:
            pass




def host_body(ctx, spec) -> None:
    """What a host process (reclaimer ``ctx.host_index``) runs: its script
    ops, or reclaim alongside the other reclaimers."""
    mmu = MMU(ctx, spec.guest)
    if spec.cfg.script is not None:
        run_host(ctx, mmu, spec)
        return
    reclaim(ctx, mmu, spec)
