"""Free-running processes: how a wait blocks when every process runs at once.

Why it exists: it is the ``kvm.waits.Waits`` implementation of ``smpemu run``,
``stress`` and ``sweep``: the protocol code says what it waits for, this says
how a real process waits for it on an oversubscribed host: spin briefly
(``--spin-us``) where the protocol asks, then block in the OS in short slices
(a semaphore acquire with a timeout, or a short sleep) so that the cores go
to the CPUs that must act, re-checking after each slice, noticing a dead
coordinator or an aborted run, and giving up after the timeout.
"""

from __future__ import annotations

import time

from smpemu.harness.router import send_ipi
from smpemu.kvm.waits import Waits, try_take


class FreeRun(Waits):
    """``ctx.waits`` of a free-running process (the default)."""

    step_every = 256

    def point(self, ctx, name: str, poll: bool = True) -> None:
        p = ctx.points
        if p is not None and p.active:
            p.hit(ctx, name, poll)  # test pauses, stress delays

    kick = staticmethod(send_ipi)  # kick(ctx, t): direct, or through the router

    def spin(self, ctx, ready, poll=None) -> bool:
        end = time.perf_counter() + ctx.params.spin_us * 1e-6
        while True:
            if poll is not None:
                poll()
            if ready(False):
                return True
            if time.perf_counter() >= end:
                return False

    def _deadline(self, ctx, timeout, timer, watch, sem, bell, optional=False):
        return None if timeout is None else time.monotonic() + timeout

    def _expired(self, ctx, deadline) -> bool:
        ctx.check_alive()
        return deadline is not None and time.monotonic() > deadline

    def _block(self, ctx, name, watch, sem, bell, slice_s, deadline) -> bool:
        if deadline is not None:
            slice_s = min(slice_s, max(0.0, deadline - time.monotonic()))
        if sem is not None:
            if slice_s <= 0:
                return try_take(sem)  # spinning
            try:
                sem.acquire(slice_s)
                return True
            except Exception:  # timed out (posix_ipc.BusyError) or a signal
                return False
        if slice_s > 0:
            time.sleep(slice_s)
        return False


__all__ = ["FreeRun"]
