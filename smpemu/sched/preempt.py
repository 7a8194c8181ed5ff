"""Preemption as a decision: what ``sched.out`` and ``sched.in`` do to a parked vCPU.

Why it exists: ``smpemu check`` explores where the host preempts a vCPU (the
paravirtual TLB flush and its bugs live there), and a replay must do the
same on real processes.  So the host scheduler's two calls are choices
(``sched.choices.SchedOut``, ``SchedIn``), applied to the parked vCPU's own
context by both transports (the explorer's world, the baton in each
process), and they run the very code the emulated host scheduler runs at a
tick (``harness/hostsched.py``): the tick's exit from guest mode,
``StealTime.sched_out`` (kvm_sched_out: PREEMPTED), and at sched-in
``StealTime.sched_in`` (KVM_REQ_STEAL_UPDATE); the vCPU re-enters guest mode
(``VCPU.enter_guest``: record_steal_time) at its next step, so that it may
be preempted again before it entered (8c6de56a42e0's case).

Where: a sched.out is offered only at the points where the host scheduler
ticks (``PREEMPT_POINTS``: a guest step, a guest-mode wait) and only in
guest mode, or scheduled in and not yet re-entered; so never holding
``mmu_lock`` and never inside the emulator's atomic sections, as Linux
preempts a vCPU thread.  The decision is atomic: its protocol points are
not scheduling points (``Baton.atomic``), and it ends with the context
switch's full barrier (the actor's store buffer drains).
"""

from __future__ import annotations

from smpemu.kvm.layout import C
from smpemu.kvm.points import SCHED_POINTS

# where the host's tick can preempt a vCPU (harness/hostsched.py: VCPU.periodic,
# the guest-mode waits; a script's spin is a guest spinning in guest mode)
PREEMPT_POINTS = frozenset(SCHED_POINTS.index(p) for p in ("step", "script.spin", "wait.guest_ack",
                                                            "wait.invalidation"))


def attach(ctx, cpu) -> None:
    """A vCPU with steal time (``cpu.pv``) can be preempted by a decision."""
    ctx.pv_cpu = cpu
    ctx.reenter = False  # scheduled out from guest mode: enter it again at the next step


def can_preempt(ctx, point: int) -> bool:
    """May a sched.out be applied to this vCPU, parked at ``point``?"""
    if point not in PREEMPT_POINTS:
        return False
    cpu = getattr(ctx, "pv_cpu", None)
    return cpu is not None and (cpu.in_guest or ctx.reenter)


def sched_out(ctx) -> None:
    """The tick's preemption (harness/hostsched.py ``HostSched.tick``), as one decision."""
    cpu = ctx.pv_cpu
    waits = ctx.waits
    waits.atomic = True  # one decision: no scheduling point inside it
    try:
        if cpu.in_guest:
            cpu.exit_guest()  # the tick's exit
            ctx.reenter = True
        cpu.pv.steal.sched_out()  # kvm_sched_out: PREEMPTED (or not again: O0)
        ctx.counters[C["preempt_exits"]] += 1
        ctx.mm.drain()  # the context switch is a full barrier
    finally:
        waits.atomic = False


def sched_in(ctx) -> None:
    """kvm_sched_in: KVM_REQ_STEAL_UPDATE; the entry follows at the vCPU's next step (``resume``)."""
    ctx.pv_cpu.pv.steal.sched_in()


def resume(ctx) -> None:
    """The vCPU runs again after a sched.in: back into guest mode (record_steal_time first)."""
    if getattr(ctx, "reenter", False):
        ctx.reenter = False
        ctx.pv_cpu.enter_guest()


__all__ = ["PREEMPT_POINTS", "attach", "can_preempt", "sched_out", "sched_in", "resume"]
