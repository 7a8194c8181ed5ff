"""The memory-model layer: every protocol word goes through here.

Why it exists: the flush protocols of the seed differ only in the order of a
few stores and loads (spte zap vs dirty flag, mode vs requests).  On this x86
host the hardware gives TSO, so a barrier bug that matters on ARM never shows.
Routing every protocol word (sptes, dirty flags, counters, requests, modes)
through one small API lets a run pick the hardware it emulates:

- ``native``: stores go straight to shared memory; ordering is the host's
  (x86-TSO).  ``mb()`` is a real locked operation (a semaphore op), because a
  numpy store followed by a numpy load is *not* ordered on x86.
- ``tso`` / ``relaxed``: store-buffer models (see the classes below).

A *word* is an index into the run's int64 arena (``smpemu.memory.arena.Arena.words``).
Words that are ever cmpxchg'd or xchg'd are *atomic words*: a store to one
reaches memory under the same striped lock as cmpxchg takes (in the
store-buffer models, when it leaves the buffer), or a plain store could slip
between cmpxchg's read and write and correct policies would look broken.

Rules common to every model (callers rely on them):
- ``drain()`` makes every buffered store visible.  Callers drain before any
  blocking wait, before taking or releasing a lock, and before the process
  finishes (``release_lock`` below does it for a release; ``kvm.locks.lock``
  and every wait of ``kvm.waits`` drain before they block).
- ``mb()``, ``cmpxchg()`` and ``xchg()`` are full barriers.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

MODELS = ("native", "tso", "relaxed")


class MemoryModel:
    """Native model, and the interface the store-buffer models implement.

    ``words``: a memoryview cast to 'q' over the arena.
    ``fence``: a posix_ipc.Semaphore private to this process (value >= 1);
    one semaphore operation is one locked instruction, i.e. a full fence.
    ``atomic_locks``: striped semaphores (value 1) shared by all processes.
    ``is_atomic``: predicate telling whether a word is an atomic word.
    """

    name = "native"

    def __init__(
        self,
        words,
        fence,
        atomic_locks: Sequence,
        is_atomic: Callable[[int], bool],
        seed: int = 0,
        lock_timeout: float = 5.0,
    ):
        self.words = words
        self.fence = fence
        self.atomic_locks = atomic_locks
        self.is_atomic = is_atomic
        self.rng = random.Random(seed)
        self.lock_timeout = lock_timeout
        self._fence_up = False
        if type(self) is MemoryModel:
            # native loads are plain memory reads: bind the C-level accessor
            # (saves a Python frame on the hottest path; subclasses keep theirs)
            self.load = words.__getitem__
            self.load_acquire = words.__getitem__

    # -- plain accesses ------------------------------------------------------
    def load(self, addr: int) -> int:
        return self.words[addr]

    def store(self, addr: int, val: int) -> None:
        if self.is_atomic(addr):
            self._atomic_store(addr, val)
        else:
            self.words[addr] = val

    def load_acquire(self, addr: int) -> int:
        # x86 loads are not reordered with later loads or stores.
        return self.words[addr]

    def store_release(self, addr: int, val: int) -> None:
        # x86 stores are not reordered with earlier loads or stores.
        self.store(addr, val)

    # -- barriers --------------------------------------------------------------
    def wmb(self) -> None:
        """smp_wmb(): a compiler barrier on x86; nothing to do natively."""

    def rmb(self) -> None:
        """smp_rmb(): a compiler barrier on x86; nothing to do natively."""

    def mb(self) -> None:
        """smp_mb(): one locked operation on the private fence semaphore.

        Alternating release/acquire keeps the value in {1, 2} and costs one
        uncontended atomic instruction (lock xadd / lock cmpxchg in glibc's
        sem_post / sem_trywait), which orders earlier stores before later
        loads, as x86's mfence or a locked add does.
        """
        if self._fence_up:
            self.fence.acquire(0)
        else:
            self.fence.release()
        self._fence_up = not self._fence_up

    def drain(self) -> None:
        """Make every buffered store visible (nothing is buffered natively)."""

    def reset(self) -> None:
        """As built: nothing buffered, the fence semaphore at its initial
        value (an explorer resets its semaphores and models per run)."""
        self._fence_up = False

    # -- atomics ---------------------------------------------------------------
    def _lock_for(self, addr: int):
        return self.atomic_locks[(addr >> 3) % len(self.atomic_locks)]

    def _atomic_store(self, addr: int, val: int) -> None:
        lock = self._lock_for(addr)
        lock.acquire(self.lock_timeout)
        try:
            self.words[addr] = val
        finally:
            lock.release()

    def cmpxchg(self, addr: int, old: int, new: int) -> int:
        """Atomically: if word == old, word = new.  Returns the value seen."""
        self.drain()
        lock = self._lock_for(addr)
        lock.acquire(self.lock_timeout)  # locked op: full barrier
        try:
            cur = self.words[addr]
            if cur == old:
                self.words[addr] = new
            return cur
        finally:
            lock.release()

    def xchg(self, addr: int, val: int) -> int:
        self.drain()
        lock = self._lock_for(addr)
        lock.acquire(self.lock_timeout)
        try:
            cur = self.words[addr]
            self.words[addr] = val
            return cur
        finally:
            lock.release()

    # -- locks -------------------------------------------------------------------
    def release_lock(self, sem) -> None:
        """Release a lock: every store made under it becomes visible first."""
        self.drain()
        sem.release()
