"""Store-buffer models: deterministic single-process tests, and atomics across
two real processes.

Two model objects over one bytearray stand for two CPUs: what one has
buffered the other cannot see.  Randomness is either off
(``drain_probability=0``) or seeded, and buffers are stepped with
``drain_one()``, so every test here is deterministic except the two-process
one, whose check (an exact count) holds for every interleaving.
"""

from __future__ import annotations

import multiprocessing
import os

import posix_ipc
import pytest

from smpemu.errors import UsageError
from smpemu.memory import MemoryModel, make_model
from smpemu.harness.resources import ResourceSet, list_objects, new_run_id
from smpemu.memory.store_buffer import RelaxedModel, TsoModel, make

X, Y, Z = 0, 1, 2
ATOMIC = 16  # an atomic word: a store reaches it under the striped lock
BUFFERED_MODELS = (TsoModel, RelaxedModel)


class FakeFence:
    """Stands in for the private fence semaphore in single-process tests."""

    def __init__(self):
        self.value = 1

    def acquire(self, timeout=None):
        assert self.value > 0
        self.value -= 1

    def release(self):
        self.value += 1


def words_of(n: int = 64):
    return memoryview(bytearray(8 * n)).cast("q")


def is_atomic(addr: int) -> bool:
    return addr == ATOMIC


def quiet(cls, words, seed=0, locks=(), **kw):
    """A model whose buffer drains only when told to (or when full)."""
    kw.setdefault("drain_probability", 0.0)
    kw.setdefault("max_buffer", 64)
    return cls(words, FakeFence(), list(locks) or [FakeFence()], is_atomic, seed=seed, **kw)


@pytest.fixture
def posix():
    """A ResourceSet, closed after the test; checks nothing leaks."""
    rs = ResourceSet(new_run_id())
    try:
        yield rs
    finally:
        rs.close()
    mine = f"smpemu-{os.getpid()}-"
    assert not [n for n, _ in list_objects() if mine in n]


def memory(words, *addrs):
    return tuple(words[a] for a in addrs)


# -- forwarding and visibility ------------------------------------------------------


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_own_store_is_forwarded_and_others_see_memory(cls):
    w = words_of()
    cpu0, cpu1 = quiet(cls, w), quiet(cls, w)
    cpu0.store(X, 1)
    cpu0.store(X, 2)
    assert cpu0.load(X) == 2  # its own latest buffered store
    assert cpu0.load_acquire(X) == 2
    assert cpu1.load(X) == 0 and w[X] == 0  # not visible yet
    assert cpu0.buffered() == 2
    cpu0.drain_one()
    assert cpu1.load(X) == 1  # oldest first: same address keeps program order
    assert cpu0.load(X) == 2  # still forwarded: a newer store is buffered
    cpu0.drain()
    assert cpu1.load(X) == 2 and cpu0.buffered() == 0


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_full_buffer_drains(cls):
    w = words_of()
    cpu = quiet(cls, w, max_buffer=2)
    cpu.store(X, 1)
    cpu.store(Y, 1)
    assert cpu.buffered() == 2
    cpu.store(Z, 1)  # overflows: one entry goes to memory at once
    assert cpu.buffered() == 2
    assert sum(memory(w, X, Y, Z)) == 1


def test_random_drain_is_seeded():
    def run(seed):
        w = words_of()
        cpu = TsoModel(w, FakeFence(), [FakeFence()], is_atomic, seed=seed)
        seen = []
        for i in range(200):
            cpu.store(i % 8, i)
            seen.append((cpu.buffered(), tuple(w[:8])))
        return seen

    assert run(5) == run(5)
    assert any(n > 0 for n, _ in run(5))  # stores do stay buffered sometimes


# -- ordering -----------------------------------------------------------------------


def drain_steps(cpu, words, addrs):
    """Memory after each drain_one() until the buffer is empty."""
    steps = []
    while cpu.buffered():
        cpu.drain_one()
        steps.append(memory(words, *addrs))
    return steps


PROGRAM = [(X, 1), (Y, 10), (X, 2), (Z, 7), (Y, 20), (X, 3)]


def test_tso_drains_in_program_order():
    for seed in range(20):
        w = words_of()
        cpu = quiet(TsoModel, w, seed=seed)
        for a, v in PROGRAM:
            cpu.store(a, v)
        expected, mem = [], {X: 0, Y: 0, Z: 0}
        for a, v in PROGRAM:
            mem[a] = v
            expected.append((mem[X], mem[Y], mem[Z]))
        assert drain_steps(cpu, w, (X, Y, Z)) == expected


def test_relaxed_keeps_per_address_order_but_reorders_addresses():
    reordered = False
    for seed in range(100):
        w = words_of()
        cpu = quiet(RelaxedModel, w, seed=seed)
        for a, v in PROGRAM:
            cpu.store(a, v)
        steps = drain_steps(cpu, w, (X, Y, Z))
        for k, addr_values in enumerate(([0, 1, 2, 3], [0, 10, 20], [0, 7])):
            seen = [s[k] for s in steps]
            # coherence: each address only moves forward through its stores
            assert seen == sorted(seen, key=addr_values.index), (seed, steps)
        assert steps[-1] == (3, 20, 7)
        reordered |= any(y >= 10 and x == 0 for x, y, _ in steps)
    assert reordered, "relaxed never let a later store (y) overtake an earlier one (x)"


@pytest.mark.parametrize("barrier", ["wmb", "store_release"])
def test_relaxed_barrier_keeps_earlier_stores_ahead(barrier):
    for seed in range(100):
        w = words_of()
        cpu = quiet(RelaxedModel, w, seed=seed)
        cpu.store(X, 1)
        cpu.store(Z, 5)
        if barrier == "wmb":
            cpu.wmb()
            cpu.store(Y, 1)
        else:
            cpu.store_release(Y, 1)
        cpu.store(Z, 6)
        for x, y, z in drain_steps(cpu, w, (X, Y, Z)):
            if y == 1:
                assert (x, z) in ((1, 5), (1, 6)), (seed, x, y, z)


def test_relaxed_wmb_with_empty_buffer_or_twice_is_harmless():
    w = words_of()
    cpu = quiet(RelaxedModel, w)
    cpu.wmb()
    cpu.store(X, 1)
    cpu.wmb()
    cpu.wmb()
    cpu.store(Y, 1)
    assert drain_steps(cpu, w, (X, Y)) == [(1, 0), (1, 1)]


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_mb_drains_everything_and_fences(cls):
    w = words_of()
    cpu = quiet(cls, w)
    for a, v in PROGRAM:
        cpu.store(a, v)
    cpu.wmb()
    cpu.store(Z, 8)
    fence = cpu.fence
    cpu.mb()
    assert cpu.buffered() == 0
    assert memory(w, X, Y, Z) == (3, 20, 8)
    assert fence.value == 2  # the real fence ran (the native model's locked op)
    cpu.mb()
    assert fence.value == 1


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_barriers_that_need_nothing_drain_nothing(cls):
    w = words_of()
    cpu = quiet(cls, w)
    cpu.store(X, 1)
    cpu.rmb()
    if cls is TsoModel:
        cpu.wmb()
    assert cpu.buffered() == 1 and w[X] == 0


# -- atomics and locks --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["native", "tso", "relaxed"])
def test_store_to_atomic_word_reaches_memory_under_the_striped_lock(name, posix):
    w = words_of()
    locks = [posix.sem(f"alock{k}", 1) for k in range(2)]
    cpu = make_model(name, w, posix.sem("fence", 1), locks, is_atomic, seed=1, lock_timeout=0.05)
    stripe = cpu._lock_for(ATOMIC)
    stripe.acquire(0)  # someone else is inside a cmpxchg on this word
    with pytest.raises(posix_ipc.BusyError):
        cpu.store(ATOMIC, 1)  # native: at once
        cpu.drain()  # store buffers: when the store leaves the buffer
    assert w[ATOMIC] == 0
    stripe.release()
    cpu.store(ATOMIC, 2)
    cpu.drain()
    assert w[ATOMIC] == 2


def test_tso_buffers_a_store_to_an_atomic_word_in_fifo_order():
    # vcpu->mode = IN_GUEST_MODE sits in the store buffer on x86: the entry's mb() is for it
    w = words_of()
    cpu = quiet(TsoModel, w)
    cpu.store(X, 1)
    cpu.store(ATOMIC, 3)
    cpu.store(Y, 2)
    assert memory(w, X, Y, ATOMIC) == (0, 0, 0) and cpu.load(ATOMIC) == 3  # forwarded to itself
    cpu.drain_one()
    cpu.drain_one()
    assert memory(w, X, Y, ATOMIC) == (1, 0, 3)
    cpu.drain_one()
    assert memory(w, X, Y, ATOMIC) == (1, 2, 3) and cpu.buffered() == 0


def test_relaxed_store_to_an_atomic_word_may_pass_earlier_stores_not_a_barrier():
    w = words_of()
    cpu = quiet(RelaxedModel, w).controlled()
    cpu.store(X, 1)
    cpu.wmb()
    cpu.store(Y, 2)
    cpu.store(ATOMIC, 3)
    assert cpu.drain_choice_addrs() == [X]  # the barrier holds both back
    cpu.drain_entry(0)
    assert sorted(cpu.drain_choice_addrs()) == sorted([Y, ATOMIC])  # either may go first
    cpu.drain_entry(cpu.drain_choice_addrs().index(ATOMIC))
    assert memory(w, X, Y, ATOMIC) == (1, 0, 3) and cpu.buffered() == 1
    cpu.store_release(ATOMIC, 4)  # release: everything earlier goes first
    cpu.drain()
    assert memory(w, X, Y, ATOMIC) == (1, 2, 4) and cpu.buffered() == 0


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_cmpxchg_and_xchg_are_full_barriers(cls):
    w = words_of()
    cpu = quiet(cls, w)
    cpu.store(X, 1)
    assert cpu.cmpxchg(ATOMIC, 0, 5) == 0
    assert w[X] == 1 and w[ATOMIC] == 5
    assert cpu.cmpxchg(ATOMIC, 0, 6) == 5 and w[ATOMIC] == 5  # failed: no write
    cpu.store(Y, 1)
    assert cpu.xchg(ATOMIC, 7) == 5
    assert w[Y] == 1 and w[ATOMIC] == 7 and cpu.buffered() == 0


@pytest.mark.parametrize("cls", BUFFERED_MODELS)
def test_lock_release_drains(cls, posix):
    w = words_of()
    cpu = quiet(cls, w)
    lock = posix.sem("mmu_lock", 1)
    cpu.drain()  # what kvm.locks.lock() does: drain, then take the semaphore
    lock.acquire(1.0)
    cpu.store(X, 1)
    cpu.store(Y, 1)
    assert w[X] == 0
    cpu.release_lock(lock)
    assert memory(w, X, Y) == (1, 1) and lock.value == 1


def test_make_builds_store_buffer_models_and_rejects_others():
    w = words_of()
    assert isinstance(make("tso", w, FakeFence(), [FakeFence()], is_atomic), TsoModel)
    m = make_model("relaxed", w, FakeFence(), [FakeFence()], is_atomic, seed=3)
    assert isinstance(m, RelaxedModel) and isinstance(m, MemoryModel)
    with pytest.raises(UsageError, match="not a store-buffer model"):
        make("pso", w, FakeFence(), [FakeFence()], is_atomic)


# -- two real processes ----------------------------------------------------------------

ROUNDS = 1500
LOCK, COUNTER, TICKETS = ATOMIC, 3, 24  # TICKETS: another atomic word (other stripe)


def _contend(name: str, mm, fence, locks, seed: int, go, done) -> None:
    """One process: ROUNDS times, take a cmpxchg spinlock, bump a plain counter
    inside it, release it with a plain store to the lock word; and bump an
    atomic counter with a cmpxchg loop."""
    w = memoryview(mm).cast("q")
    cpu = make_model(name, w, fence, locks, lambda a: a in (LOCK, TICKETS), seed=seed, lock_timeout=5.0)
    go.acquire(10)  # pairs with go.release() in the test: start together
    for _ in range(ROUNDS):
        while cpu.cmpxchg(LOCK, 0, 1) != 0:  # acquire; pairs with store_release below
            pass
        cpu.store(COUNTER, cpu.load(COUNTER) + 1)  # protected by LOCK
        cpu.store_release(LOCK, 0)  # pairs with the cmpxchg above, in the other process
        seen = cpu.load(TICKETS)
        while (old := cpu.cmpxchg(TICKETS, seen, seen + 1)) != seen:
            seen = old
    cpu.drain()
    done.release()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["tso", "relaxed", "native"])
def test_cmpxchg_is_atomic_across_processes(name, posix):
    mm = posix.shm("arena", 8 * 64)
    locks = [posix.sem(f"alock{k}", 1) for k in range(4)]
    go, done = posix.sem("go", 0), posix.sem("done", 0)
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_contend, args=(name, mm, posix.sem(f"fence{p}", 1), locks, p, go, done))
        for p in range(2)
    ]
    try:
        for p in procs:
            p.start()
        go.release()
        go.release()
        for _ in procs:
            done.acquire(30)  # bounded: BusyError fails the test
        for p in procs:
            p.join(10)
            assert p.exitcode == 0
        w = memoryview(mm).cast("q")
        final = (w[COUNTER], w[TICKETS], w[LOCK])
        w.release()
        assert final == (2 * ROUNDS, 2 * ROUNDS, 0)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
