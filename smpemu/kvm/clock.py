"""The clock the protocol state reads: one object in the context, never patched.

Why it exists: the oracle's write-protect check compares times, a TLB
entry's fill time with the sync's write-protect time, and a violation
record carries a time.  Those times are state: whoever runs the protocol
code must be able to choose where they come from (real processes: the
monotonic clock; the in-process explorer of ``smpemu check``: a logical
clock, so that a run is a function of its decisions and two equivalent
schedules end in the same state).  So the protocol code never reads a clock
itself; it asks ``ctx.clock``, with one operation per use:

``clock.fill() -> int``
    the time of a TLB fill (``VCPU._walk``, before the spte load): a read;
``clock.sync() -> int``
    the write-protect time of a sync (``MMU.sync_children``, before any spte
    is write-protected): a later fill must read a larger value;
``clock.stamp() -> int``
    the time of an oracle record, and the steal time a vCPU spent preempted
    (kvm/steal.py) and a guest shootdown's latency (kvm/shootdown.py): reports only, never compared.

``WallClock`` (the default of every context) answers all three with
``time.monotonic_ns()``.  Latency measurements (``ipi``'s perf_counter),
the stress delays of ``points`` and the host's reclaim pacing are not
state and read their own clocks (``tests/test_architecture.py`` lists them).
"""

from __future__ import annotations

import time


class Clock:
    """The interface (module docstring)."""

    def fill(self) -> int:
        raise NotImplementedError

    def sync(self) -> int:
        raise NotImplementedError

    def stamp(self) -> int:
        raise NotImplementedError


class WallClock(Clock):
    """CLOCK_MONOTONIC for every use: real processes share it."""

    fill = sync = stamp = staticmethod(time.monotonic_ns)


WALL = WallClock()

__all__ = ["Clock", "WallClock", "WALL"]
