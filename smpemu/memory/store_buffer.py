"""Store-buffer memory models: ``tso`` (x86-TSO) and ``relaxed`` (ARMv8-like).

Why it exists: the host is x86, so a missing ``smp_wmb()`` never shows on it.
These models put a software store buffer in front of the shared arena, per
process, so a run can emulate hardware that delays and reorders stores:

- ``tso``: a FIFO of (address, value).  Stores enter the buffer in program
  order and reach memory in the same order, at random moments (each access
  drains the oldest entry with probability ``drain_probability``; the buffer
  never holds more than ``max_buffer`` entries).  A load sees the process's
  own latest buffered store to that address, else memory.  Store->load
  reordering (SB) is possible; store->store is not (MP is forbidden).
  ``wmb``/``rmb`` are no-ops, ``mb`` drains everything.
- ``relaxed``: the buffer drains in any order across addresses, but the
  stores to one address leave in program order (coherence).  ``wmb`` and
  ``store_release`` put a barrier in the buffer: nothing after it drains
  before everything before it.  Loads are never reordered (a store buffer
  cannot do that), so ``rmb``/``load_acquire`` need nothing, and load
  buffering (LB) outcomes can never appear.  There is one memory, so every
  store becomes visible to all other processes at once (multi-copy atomic):
  POWER's non-MCA outcomes (IRIW, WRC) are out of reach too.

Atomic words (``is_atomic(addr)``, the words something cmpxchg's or xchg's)
are buffered like any other: a plain store to one (``vcpu->mode =
IN_GUEST_MODE``, v4's ``remote_tlbs_dirty = 0``) waits in the store buffer
as it does on hardware, which is what the barriers after such stores are
for.  Only its arrival in memory is special: it happens under the striped
lock of cmpxchg/xchg (``_publish``), so it never lands between another
process's cmpxchg read and write.  cmpxchg/xchg themselves drain the whole
buffer and run under that lock (the base class does it): full barriers.

``mb()`` drains the buffer and then does the native model's real fence,
because after draining, the stores sit in the *host's* store buffer, which
x86 may still reorder with a later load.

The fast path is plain Python (a dict lookup and a deque/list append per
access, no numpy): see docs/memory-models.md for measured costs.
"""

from __future__ import annotations

from collections import deque

from smpemu.errors import UsageError
from smpemu.memory.model import MemoryModel

STORE_BUFFER_MODELS = ("tso", "relaxed")


class _BufferedModel(MemoryModel):
    """Forwarding table and random-drain policy shared by both models.

    ``_fwd[addr] = [latest buffered value, number of buffered entries]``:
    a load hits it before memory (store forwarding); an address leaves it
    when its last buffered entry has drained.
    """

    drain_probability = 0.2  # chance that one access drains one entry
    max_buffer = 8  # entries; a store that overflows it drains one at once

    def __init__(
        self,
        words,
        fence,
        atomic_locks,
        is_atomic,
        seed: int = 0,
        lock_timeout: float = 5.0,
        *,
        drain_probability: float | None = None,
        max_buffer: int | None = None,
    ):
        super().__init__(words, fence, atomic_locks, is_atomic, seed, lock_timeout)
        if drain_probability is not None:
            self.drain_probability = drain_probability
        if max_buffer is not None:
            if max_buffer < 1:
                raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
            self.max_buffer = max_buffer
        self._fwd: dict[int, list[int]] = {}
        self._random = self.rng.random
        self.n_buffered = 0  # entries buffered (public: an explorer tests it before asking for drain choices)

    # -- loads -----------------------------------------------------------------
    def load(self, addr: int) -> int:
        if self.n_buffered and self._random() < self.drain_probability:
            self.drain_one()
        f = self._fwd.get(addr)
        if f is not None:
            return f[0]  # own latest store to addr, not yet visible to others
        return self.words[addr]

    # A load is performed when it executes, in program order: later loads and
    # stores cannot overtake it, so acquire needs nothing more than a load.
    load_acquire = load

    # -- buffer bookkeeping ----------------------------------------------------------
    def _buffered(self, addr: int, val: int) -> None:
        """Bookkeeping after a store joined the buffer: its forwarding entry,
        then a random drain (or a forced one when the buffer is full)."""
        self.n_buffered += 1
        f = self._fwd.get(addr)
        if f is None:
            self._fwd[addr] = [val, 1]
        else:
            f[0] = val
            f[1] += 1
        if self.n_buffered > self.max_buffer or self._random() < self.drain_probability:
            self.drain_one()

    def drain_one(self) -> None:  # pragma: no cover - abstract
        """Let one buffered store reach memory, as hardware does at a random
        moment.  The buffer must not be empty.  (The models call it; tests
        call it to step a buffer.)"""
        raise NotImplementedError

    def drain(self) -> None:
        while self.n_buffered:
            self.drain_one()

    def reset(self) -> None:
        self._fence_up = False  # as MemoryModel.reset
        self.restore(())  # an empty buffer (stores dropped, not drained)

    def buffered(self) -> int:
        """Number of stores not yet visible to other processes (for tests)."""
        return self.n_buffered

    # -- controlled drains (explorers: every drain is a decision) ------------------
    def controlled(self) -> "_BufferedModel":
        """Stop draining at random: from now on a store leaves the buffer only
        when ``drain_entry`` (or a barrier, an atomic, ``drain``) says so.
        An explorer then treats each of ``drain_choices()`` as one possible
        next step of this process, so every drain point and (under relaxed)
        every drain order is a branch of its search."""
        self.drain_probability = 0.0
        self.max_buffer = 1 << 30
        return self

    def drain_choices(self) -> list:  # pragma: no cover - abstract
        """Which buffered entries may reach memory next (indices for ``drain_entry``)."""
        raise NotImplementedError

    def drain_entry(self, j: int) -> tuple:  # pragma: no cover - abstract
        """Let entry ``j`` of ``drain_choices()`` reach memory; returns (addr, value)."""
        raise NotImplementedError

    # -- explorer state: a search memoises on it and branches from it ----------------
    def snapshot(self) -> tuple:  # pragma: no cover - abstract
        """The buffer's contents as a hashable value (for ``restore``)."""
        raise NotImplementedError

    def restore(self, snap: tuple) -> None:  # pragma: no cover - abstract
        """Put the buffer back as ``snapshot()`` saw it (memory is the caller's)."""
        raise NotImplementedError

    def _refill(self, entries) -> None:
        """Rebuild the forwarding table from the entries, oldest first."""
        fwd: dict[int, list[int]] = {}
        n = 0
        for addr, val in entries:
            f = fwd.get(addr)
            if f is None:
                fwd[addr] = [val, 1]
            else:
                f[0] = val
                f[1] += 1
            n += 1
        self._fwd = fwd
        self.n_buffered = n

    def drain_choice_addrs(self) -> list:  # pragma: no cover - abstract
        """The word address of each of ``drain_choices()``, in the same order
        (a drain decision names its word, so that it means the same thing in
        the explorer and on the real processes)."""
        raise NotImplementedError

    def _forget(self, addr: int) -> None:
        """Bookkeeping after one entry for ``addr`` reached memory."""
        self.n_buffered -= 1
        f = self._fwd[addr]
        if f[1] == 1:
            del self._fwd[addr]  # nothing left to forward for addr
        else:
            f[1] -= 1

    def _publish(self, addr: int, val: int) -> None:
        """A buffered store reaches memory (atomic words under their lock)."""
        if self.is_atomic(addr):
            self._atomic_store(addr, val)  # serialised with cmpxchg/xchg on addr
        else:
            self.words[addr] = val

    # -- barriers ----------------------------------------------------------------
    def mb(self) -> None:
        self.drain()
        # the drained stores may still sit in the host's store buffer:
        MemoryModel.mb(self)  # real locked op; orders them before later loads


class TsoModel(_BufferedModel):
    """x86-TSO: one FIFO store buffer per process."""

    name = "tso"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._buf: deque[tuple[int, int]] = deque()

    def store(self, addr: int, val: int) -> None:
        self._buf.append((addr, val))
        self._buffered(addr, val)

    def drain_one(self) -> None:
        addr, val = self._buf[0]  # oldest first: stores stay in order
        self._publish(addr, val)  # first: a lock timeout leaves the buffer whole
        self._buf.popleft()
        self._forget(addr)

    def drain_choices(self) -> list:
        return [0] if self._buf else []  # FIFO: only the oldest store may go

    def drain_choice_addrs(self) -> list:
        return [self._buf[0][0]] if self._buf else []

    def drain_entry(self, j: int) -> tuple:
        assert j == 0 and self._buf, "tso drains its oldest entry only"
        addr, val = self._buf[0]
        self._publish(addr, val)
        self._buf.popleft()
        self._forget(addr)
        return addr, val

    def snapshot(self) -> tuple:
        return tuple(self._buf)

    def restore(self, snap: tuple) -> None:
        self._buf = deque(snap)
        self._refill(snap)

    # wmb()/rmb(): inherited no-ops; TSO already orders store->store, load->load.


class RelaxedModel(_BufferedModel):
    """Stores drain in any order, except per address and across barriers.

    The buffer is a list of segments separated by barriers (wmb or
    store_release).  Only the oldest segment may drain; within it any entry
    may go, provided no older store to the same address is still buffered.
    """

    name = "relaxed"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Invariant: at least one segment; every segment but the last is non-empty.
        self._segs: list[list[tuple[int, int]]] = [[]]

    def store(self, addr: int, val: int) -> None:
        self._segs[-1].append((addr, val))
        self._buffered(addr, val)

    def store_release(self, addr: int, val: int) -> None:
        self.wmb()  # every earlier store is visible before this one
        self.store(addr, val)

    def wmb(self) -> None:
        """Close the current segment: later stores drain after all earlier ones."""
        if self._segs[-1]:
            self._segs.append([])

    def drain_choices(self) -> list:
        """Entries of the oldest segment with no older store to the same address."""
        seen = set()
        out = []
        for j, (addr, _) in enumerate(self._segs[0]):
            if addr not in seen:
                seen.add(addr)
                out.append(j)
        return out

    def drain_choice_addrs(self) -> list:
        seg = self._segs[0]
        return [seg[j][0] for j in self.drain_choices()]

    def drain_entry(self, j: int) -> tuple:
        segs = self._segs
        seg = segs[0]
        addr, val = seg[j]
        assert all(a != addr for a, _ in seg[:j]), "coherence: an older store to the address is buffered"
        self._publish(addr, val)
        del seg[j]
        if not seg and len(segs) > 1:
            del segs[0]  # barrier passed: the next segment may drain
        self._forget(addr)
        return addr, val

    def snapshot(self) -> tuple:
        """One tuple per segment; a trailing () is a barrier after the last store."""
        return tuple(tuple(seg) for seg in self._segs)

    def restore(self, snap: tuple) -> None:
        self._segs = [list(seg) for seg in snap] or [[]]
        self._refill(e for seg in snap for e in seg)

    def drain_one(self) -> None:
        segs = self._segs
        seg = segs[0]
        n = len(seg)
        j = 0 if n == 1 else int(self._random() * n)
        addr = seg[j][0]
        if j and self._fwd[addr][1] > 1:  # coherence: the oldest store to addr goes first
            j = 0
            while seg[j][0] != addr:
                j += 1
        val = seg[j][1]
        self._publish(addr, val)  # first: a lock timeout leaves the buffer whole
        del seg[j]
        if not seg and len(segs) > 1:
            del segs[0]  # barrier passed: the next segment may drain
        self._forget(addr)


def make(
    name: str,
    words,
    fence,
    atomic_locks,
    is_atomic,
    seed: int = 0,
    lock_timeout: float = 5.0,
) -> MemoryModel:
    """Build the store-buffer model ``name`` ("tso" or "relaxed")."""
    if name == "tso":
        cls = TsoModel
    elif name == "relaxed":
        cls = RelaxedModel
    else:
        raise UsageError(
            f"memory model {name!r} is not a store-buffer model "
            f"(choose one of {', '.join(STORE_BUFFER_MODELS)})"
        )
    return cls(words, fence, atomic_locks, is_atomic, seed=seed, lock_timeout=lock_timeout)
