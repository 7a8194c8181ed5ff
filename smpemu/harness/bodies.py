"""What each forked process runs: a vCPU's workload, or the host.

Why it exists: the kernel model (``smpemu.kvm``) knows nothing of guest
workloads, which sit above it; this is where a process picks the workload
(or the script) its run's config names and drives the kernel model with it.
"""

from __future__ import annotations

import workloads
from smpemu.errors import AbortError
from smpemu.harness.hostsched import HostSched
from smpemu.harness.worker import hist_bucket
from smpemu.kvm.host import reclaim
from smpemu.kvm.shootdown import attach as attach_shootdowns
from smpemu.sched import preempt
from smpemu.kvm.mmu import MMU
from smpemu.kvm.vcpu import StopRun, build_vcpu
from workloads.script import run_host


def vcpu_body(ctx, spec) -> None:
    """What a vCPU process runs: the workload on the shared guest."""
    cfg = spec.cfg
    cpu, guest = build_vcpu(ctx, spec)
    wl = workloads.get(cfg.workload)
    hs = _attach_pv(cpu, guest, spec)
    try:
        if hs is not None:
            hs.start(cpu)  # a pCPU first (it may wait for one)
        cpu.load()
        cpu.enter_guest()
        wl.run(cpu, guest, ctx.rng, cfg)
    except StopRun:
        pass
    finally:
        try:
            if cpu.pv is not None:
                cpu.pv.shootdowns.finish()
                _publish(ctx, cpu.pv.shootdowns.lat_ns)
            cpu.finish()
            if hs is not None:
                hs.finish(cpu)
        except AbortError:
            pass


def _attach_pv(cpu, guest, spec):
    """Issue 19: steal time and guest shootdowns when the run has them; the
    host scheduler when it runs (returned)."""
    cfg = spec.cfg
    if not spec.layout.geometry.pv:
        return None
    pv = attach_shootdowns(cpu, guest, cfg)
    preempt.attach(cpu.ctx, cpu)  # sched.out / sched.in decisions (smpemu check, replay)
    if not cfg.host_scheduled:
        return None
    pv.host_sched = HostSched(cpu, spec)
    return pv.host_sched


def _publish(ctx, lat_ns) -> None:
    """Shootdown latencies into this vCPU's histogram row (as ack latencies: worker.process_main)."""
    row = ctx.arena.np["ghist"][ctx.pid_index]
    for ns in lat_ns:
        row[hist_bucket(ns)] += 1


def host_body(ctx, spec) -> None:
    """What a host process (reclaimer ``ctx.host_index``) runs: its script
    ops, or reclaim alongside the other reclaimers."""
    mmu = MMU(ctx, spec.guest)
    if spec.cfg.script is not None:
        run_host(ctx, mmu, spec)
        return
    reclaim(ctx, mmu, spec)
