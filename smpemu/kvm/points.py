"""Named protocol points: where tests pause a CPU and stress widens races.

Why it exists: the v3 window is a few hundred nanoseconds; a test that hopes
to hit it is flaky and a stress run that waits for it is slow.  The protocol
code calls ``ctx.point(name)`` at a few named places; a test *arms* a point so
the CPU signals a semaphore and blocks there until released (deterministic
interleavings), and ``smpemu stress`` attaches delays to points.
"""

from __future__ import annotations

import os
import time

from smpemu.errors import AckTimeout, UsageError
from smpemu.kvm.waits import try_take

POINT_NAMES = (
    "invlpg.after_set_dirty",
    "invlpg.after_zap",
    "flush.after_clear_dirty",
    "notifier.after_unlock",
    "tlb.fill",
    "ipi.after_kick",
    "fault.retry",
    # issue 19: steal time and the paravirtual flush (kvm/steal.py, kvm/shootdown.py)
    "steal.set_preempted",  # sched-out: before the store of PREEMPTED (kvm_steal_time_set_preempted)
    "steal.record",  # entry: before record_steal_time reads and clears preempted
    "steal.record.writeback",  # pv-writeback only: between the copy's xchg and the whole write-back
    "pvflush.cmpxchg",  # guest: preempted read as PREEMPTED, before the cmpxchg that adds FLUSH
    "shootdown.ipis_sent",  # guest: IPIs sent (PV notes left), before the local flush (concurrent) / the wait
)
POINT_ID = {name: i for i, name in enumerate(POINT_NAMES)}  # row index of the arena's "points" field
I_FILL = POINT_ID["tlb.fill"]


def points_in_play(pv: bool, guest_flush: str = "native", shootdowns: bool = False) -> tuple:
    """The protocol points a run of this configuration can reach.

    Coverage reports "never reached" for a window the run could have tried
    and did not; a point of a feature the run does not have (steal time
    without the PV machinery, the write-back window of another PV variant, a
    shootdown without a guest that shoots down) is not such a window, so it is
    left out rather than reported as a miss.
    """
    needs = {
        "steal.set_preempted": pv, "steal.record": pv,
        "steal.record.writeback": pv and guest_flush == "pv-writeback",
        "pvflush.cmpxchg": shootdowns and guest_flush.startswith("pv"),
        "shootdown.ipis_sent": shootdowns,
    }
    return tuple(p for p in POINT_NAMES if needs.get(p, True))


# Scheduling points: what every wait and point of the protocol code is called
# (names are what replay files record; the baton's ids are positions here).
SCHED_POINTS = (
    "start",  # before the process's body, once
    "step",  # a guest step (VCPU.periodic)
    "lock.mmu_lock", "lock.pfn_lock",  # about to take the lock
    "wait.mmu_lock", "wait.pfn_lock",  # the lock is taken: wait for its holder word to change
    "wait.ack",  # a flush request's ack is missing
    "halt",  # HLT: until the kick (or the script's event) is posted
    "wait.invalidation",  # a fault raced an mmu-notifier invalidation
    "host.idle",  # reclaim freed: no page freed since the last look (or nothing to reclaim ever)
    "host.reclaim",  # reclaim mixed: one reclaim per turn
    "script.wait", "script.spin", "script.busy",  # script events
    "point.paused",  # a script-armed protocol point, until its resume event
    "sb.drain",  # not a place to park: a store-buffer drain decision (replay format 2)
    "wait.guest_ack",  # a guest shootdown waits for its targets' acks (kvm/shootdown.py)
    "sched.preempted",  # a vCPU scheduled out while runnable, until it gets a pCPU back
) + POINT_NAMES


SLEEP_ABOVE_US = 50.0


class Points:
    def __init__(self, delays: dict | None = None, rng=None):
        self.delays = dict(delays or {})  # name -> (lo_us, hi_us)
        self.arms: dict = {}
        self.rng = rng
        self.active = bool(self.delays)

    def scheduled(self) -> None:
        """Under a schedule every point is a scheduling point (``ctx.waits``);
        delays mean nothing then."""
        self.delays = {}
        self.active = bool(self.arms)

    def arm(self, name: str, paused_sem, resume_sem, timeout: float) -> None:
        """The next time this CPU reaches ``name``: post ``paused_sem``, then
        block until ``resume_sem`` is posted (bounded by ``timeout``)."""
        self.arms[name] = (paused_sem, resume_sem, timeout)
        self.active = True

    def hit(self, ctx, name: str, poll: bool = True) -> None:
        """Called by ``ctx.waits.point`` when ``active``.  ``poll=False``: a
        point inside a page walk, where a pause acks no IPI (ctx.point)."""
        a = self.arms.pop(name, None)
        if a is not None:
            paused, resume, timeout = a
            ctx.mm.drain()  # we are about to block: make our stores visible
            paused.release()
            # 2009: IPIs are still acked while paused here (exit_poll), except
            # inside a page walk
            if not ctx.waits.wait_until(ctx, "point.paused", lambda took: took or try_take(resume),
                                        watch=ctx.poll_words if poll else (), sem=resume,
                                        poll=ctx.exit_poll if poll else None,
                                        timeout=timeout, slice_s=0.002):
                raise AckTimeout(f"cpu {ctx.pid_index}: paused at {name}, not resumed within {timeout} s")
            self.active = bool(self.arms or self.delays)
        d = self.delays.get(name)
        if d is not None:
            lo, hi = d
            us = lo if hi <= lo else self.rng.uniform(lo, hi)
            if us <= 0:
                os.sched_yield()
            elif us >= SLEEP_ABOVE_US:
                # sleep, do not spin: on an oversubscribed host the CPUs that
                # must act inside the widened window need this core
                ctx.mm.drain()
                time.sleep(us * 1e-6)
            else:
                end = time.perf_counter() + us * 1e-6
                while time.perf_counter() < end:
                    pass


def parse_delay(spec: str) -> tuple[str, tuple[float, float]]:
    """``POINT=US`` or ``POINT=LO-HI`` (microseconds; 0 means yield)."""
    if "=" not in spec:
        raise UsageError(f"bad --delay {spec!r}: expected POINT=MICROSECONDS or POINT=LO-HI")
    name, dist = spec.split("=", 1)
    if name not in POINT_NAMES:
        raise UsageError(f"unknown protocol point {name!r}; choose one of: {', '.join(POINT_NAMES)}")
    try:
        if "-" in dist:
            lo, hi = (float(x) for x in dist.split("-", 1))
        else:
            lo = hi = float(dist)
    except ValueError:
        raise UsageError(f"bad --delay {spec!r}: {dist!r} is not a number of microseconds") from None
    if lo < 0 or hi < lo:
        raise UsageError(f"bad --delay {spec!r}: need 0 <= LO <= HI")
    return name, (lo, hi)
