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


POINT_NAMES = (
    "invlpg.after_set_dirty",
    "invlpg.after_zap",
    "flush.after_clear_dirty",
    "notifier.after_unlock",
    "tlb.fill",
    "ipi.after_kick",
    "fault.retry",
)
POINT_ID = {name: i for i, name in enumerate(POINT_NAMES)}  # row index of the arena's "points" field
I_FILL = POINT_ID["tlb.fill"]


SLEEP_ABOVE_US = 50.0


class Points:
    def __init__(self, delays: dict | None = None, rng=None):
        self.delays = dict(delays or {})  # name -> (lo_us, hi_us)
        self.arms: dict = {}
        self.rng = rng
        self.active = bool(self.delays)
        self.sched = None  # schedule.ProcSched: every point is a scheduling point

    def scheduled(self, sched) -> None:
        """Make every point a scheduling point; delays mean nothing then."""
        self.sched = sched
        self.delays = {}
        self.active = True

    def arm(self, name: str, paused_sem, resume_sem, timeout: float) -> None:
        """The next time this CPU reaches ``name``: post ``paused_sem``, then
        block until ``resume_sem`` is posted (bounded by ``timeout``)."""
        self.arms[name] = (paused_sem, resume_sem, timeout)
        self.active = True

    def hit(self, ctx, name: str, poll: bool = True) -> None:
        """``poll=False``: inside a page walk, a pause acks no IPI (ctx.point)."""
        if self.sched is not None:
            return self.sched.hit(ctx, self.arms.pop(name, None), name, poll)
        a = self.arms.pop(name, None)
        if a is not None:
            paused, resume, timeout = a
            ctx.mm.drain()  # we are about to block: make our stores visible
            paused.release()
            # 2009: IPIs are still acked while paused here (wait_sem polls
            # them), except inside a page walk
            ctx.wait_sem(resume, timeout, f"paused at {name}, not resumed", poll=poll)
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
    from smpemu.errors import UsageError

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
