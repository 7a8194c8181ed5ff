"""The explorer's tracked stand-ins: shared state that records who touched it.

Why it exists: the explorer of ``smpemu check`` (search/explore.py) prunes
a schedule only where two steps commute, so every step must say what shared
state it read and wrote: its *footprint*.  The protocol code is the real
one and knows nothing of footprints; it runs over these stand-ins, which
record each access into the running step's footprint (``TrackedWords.r``
and ``.w``, fresh sets per step) and otherwise behave as the real objects:

- ``TrackedWords``: the arena's words (``arena.words``, ``ctx.W``, what the
  memory models load and store);
- ``TrackedSem``: a semaphore the protocol posts, takes or waits for (a
  kick, an ack doorbell, a lock, a script event: role "protocol" of
  ``harness.semaphores``), as its pseudo-location ``loc``; it never blocks
  (the explorer decides who runs); ``LocalSem``: the others (fences, atomic
  stripes, the baton's), recording nothing;
- ``Mirror``: the TLB mirrors the vCPUs write (numpy rows);
- ``TrackedOracle``: the oracle, its scan at a free recorded as reads of
  everything it looks at;
- ``LogicalClock``: every actor's ``ctx.clock`` (kvm/clock.py): a TLB fill
  reads it, a sync advances it (writes), the oracle's records are stamped 0;
  deterministic, so equivalent schedules end in the same state.

Pseudo-locations (``sched.choices.Loc``) name what is not an arena word.
The explorer's own reads (is a semaphore posted, did a watched word change:
``sched.conds``) go around the recording: ``TrackedSem.v`` and the raw
memoryview.
"""

from __future__ import annotations

import posix_ipc

from smpemu.kvm.clock import Clock
from smpemu.kvm.oracle import Oracle
from smpemu.sched.choices import CLOCK


class TrackedWords:
    """The arena words, recording every access into the running step's footprint."""

    __slots__ = ("mv", "r", "w")

    def __init__(self, mv):
        self.mv = mv
        self.r = set()
        self.w = set()

    def __getitem__(self, a):
        self.r.add(a)
        return self.mv[a]

    def __setitem__(self, a, v):
        self.w.add(a)
        self.mv[a] = v

    def __len__(self):
        return len(self.mv)


class TrackedSem:
    """A counting semaphore stand-in that never blocks; its accesses are
    recorded as accesses of its pseudo-location ``loc``.  ``v``: its posts,
    read without recording (the explorer's own reads)."""

    __slots__ = ("v", "loc", "tw")

    def __init__(self, v, loc, tw):
        self.v = v
        self.loc = loc
        self.tw = tw

    @property
    def value(self):
        self.tw.r.add(self.loc)
        return self.v

    def acquire(self, timeout=None):
        tw = self.tw
        tw.r.add(self.loc)
        if self.v > 0:
            tw.w.add(self.loc)
            self.v -= 1
            return
        raise posix_ipc.BusyError("explorer: semaphore taken")

    def release(self):
        self.tw.w.add(self.loc)
        self.v += 1


class LocalSem:
    """A semaphore no wait condition watches and no footprint records (the
    mb() fences, the atomic-word lock stripes, the baton's: ``loc`` None): as
    TrackedSem, without the recording (the memory models take one at every
    barrier and atomic store)."""

    __slots__ = ("v",)
    loc = None

    def __init__(self, v):
        self.v = v

    @property
    def value(self):
        return self.v

    def acquire(self, timeout=None):
        if self.v > 0:
            self.v -= 1
            return
        raise posix_ipc.BusyError("explorer: semaphore taken")

    def release(self):
        self.v += 1


class _Row:
    """A TLB mirror row: writes recorded, then done on the numpy row."""

    __slots__ = ("row", "base", "tw")

    def __init__(self, row, base, tw):
        self.row = row
        self.base = base
        self.tw = tw

    def __setitem__(self, i, v):
        if isinstance(i, slice):
            self.tw.w.update(range(self.base, self.base + len(self.row)))
        else:
            self.tw.w.add(self.base + i)
        self.row[i] = v

    def __getitem__(self, i):
        self.tw.r.add(self.base + i)
        return self.row[i]


class Mirror:
    """What the vCPU side sees of a TLB mirror field: tracked rows."""

    __slots__ = ("arr", "field", "tw", "rows")

    def __init__(self, arr, field, tw):
        self.arr = arr
        self.field = field
        self.tw = tw
        self.rows = {}  # v -> its _Row (stateless): every world's build_vcpu asks for it

    def __getitem__(self, v):
        row = self.rows.get(v)
        if row is None:
            row = self.rows[v] = _Row(self.arr[v], self.field.addr(v, 0), self.tw)
        return row


class TrackedOracle(Oracle):
    """The oracle, its scan at host free recorded as reads of what it looks at."""

    def __init__(self, ctx, scanned):
        super().__init__(ctx)
        self.scanned = scanned

    def check_free(self, pfn, gfn):
        self.ctx.W.r.update(self.scanned)
        super().check_free(pfn, gfn)


class LogicalClock(Clock):
    """``ctx.clock`` of every actor of a world: fills read it, syncs advance
    it (t_wp), the oracle's record times are 0; as footprints, a fill reads
    the CLOCK pseudo-location and a sync writes it.  ``t = 0`` per world."""

    __slots__ = ("tw", "t")

    def __init__(self, tw):
        self.tw = tw
        self.t = 0

    def fill(self) -> int:
        self.tw.r.add(CLOCK)
        return 2 * self.t + 1

    def sync(self) -> int:
        self.tw.w.add(CLOCK)
        self.t += 1
        return 2 * self.t

    def stamp(self) -> int:
        return 0


__all__ = ["TrackedWords", "TrackedSem", "LocalSem", "Mirror", "TrackedOracle", "LogicalClock"]
