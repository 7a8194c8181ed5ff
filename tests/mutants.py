"""Protocol mutants: one-line changes of correct code that ``smpemu check`` must catch.

Each policy mutant is a Policy subclass registered in ``policies.POLICIES``
for the test (forked replay processes inherit the registration); the vCPU
entry mutant patches ``VCPU.enter_guest`` in the test process, before the
explorer runs and before the replay forks.  ``MUTANTS`` is the table the
tests run: each is caught on the ``default`` scenario under the memory model
where its change matters, and its counterexample replays on real processes.

One mutant of the issue's list is equivalent, in smpemu and in Linux: "v4
without the flush-side wmb".  ``kvm_make_request()`` starts with its own
smp_wmb() (2009's make_all_cpus_request used test_and_set_bit, a full
barrier), so ``dirty = 0`` is ordered before the request either way;
smpemu's ``ipi.make_request`` has that wmb, and the mutant's barriers are
then the same as v4's.  ``test_check.py`` shows it explores cleanly where v4
does (one-flusher, relaxed).
"""

from __future__ import annotations

import contextlib
import inspect
import textwrap
from dataclasses import dataclass

from smpemu.kvm import events as ev
from smpemu.kvm import ipi, policies
from smpemu.kvm.policies.base import DeferredPolicy
from smpemu.kvm.policies.eager import EagerPolicy
from smpemu.kvm.policies.tlbs_dirty import TlbsDirtyPolicy
from smpemu.kvm.vcpu import VCPU


class EagerAfterUnlock(EagerPolicy):
    """eager, flushing after mmu_unlock instead of under it (docs/decisions.md)."""

    name = "mutant-eager-after-unlock"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        return True  # mutant: the caller flushes after mmu_unlock


class TlbsDirtyPlainStore(TlbsDirtyPolicy):
    """tlbs-dirty clearing the counter with a plain store instead of cmpxchg(seen, 0)."""

    name = "mutant-tlbs-dirty-store"

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = mm.load_acquire(ctx.a_dirty)
        ctx.ev(ev.COUNT_READ, seen)
        mm.mb()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        mm.store(ctx.a_dirty, 0)  # mutant: a bump since 'seen' is lost
        ctx.ev(ev.FLUSH_CLEARED)


class V4NoZapWmb(DeferredPolicy):
    """v4 without the zap-side smp_wmb() (what deferred-v4-nowmb ships as a policy)."""

    name = "mutant-v4-no-zap-wmb"

    def zap(self, ctx, mmu, slot, gfn, site):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.store(ctx.a_dirty, 1)  # mutant: no wmb() before it
        ctx.ev(ev.SET_DIRTY, 1)
        ctx.point("invlpg.after_set_dirty")
        return False


class V4NoFlushWmb(DeferredPolicy):
    """v4 without the flush-side smp_wmb(): an equivalent mutant (see above)."""

    name = "mutant-v4-no-flush-wmb"

    def flush_remote(self, ctx):
        mm = ctx.mm
        mm.store(ctx.a_dirty, 0)
        ctx.ev(ev.FLUSH_CLEARED)
        ctx.point("flush.after_clear_dirty")  # mutant: no wmb() before the requests
        ipi.flush_all_cpus(ctx)


def drop_line(func, needle: str):
    """``func`` recompiled without the one source line containing ``needle``."""
    src = textwrap.dedent(inspect.getsource(func)).splitlines(keepends=True)
    hits = [i for i, line in enumerate(src) if needle in line]
    assert len(hits) == 1, (func.__qualname__, needle, hits)
    del src[hits[0]]
    ns = {}
    exec(compile("".join(src), inspect.getsourcefile(func), "exec"), func.__globals__, ns)
    return ns[func.__name__]


@contextlib.contextmanager
def patched(owner, name: str, needle: str):
    """Patch ``owner.name`` (a module or class) with the one-line mutant."""
    saved = getattr(owner, name)
    setattr(owner, name, drop_line(saved, needle))
    try:
        yield
    finally:
        setattr(owner, name, saved)


def entry_without_mb():
    """The vCPU entry without its mb() between mode = IN_GUEST_MODE and the request load."""
    return patched(VCPU, "enter_guest", "mm.mb()  # mode before requests")


def request_without_mb():
    """kvm_make_all_cpus_request without the mb() between the request flags
    and the mode loads (the requester's side of the entry's pairing)."""
    return patched(ipi, "make_request", "mm.mb()  # flag before mode load")


@contextlib.contextmanager
def registered(cls):
    policies.POLICIES[cls.name] = cls
    try:
        yield cls.name
    finally:
        policies.POLICIES.pop(cls.name, None)


@contextlib.contextmanager
def _entry_mutant(base: str = "tlbs-dirty"):
    with entry_without_mb():
        yield base


@dataclass(frozen=True)
class Mutant:
    id: str
    apply: object  # () -> context manager yielding the policy name to check
    model: str  # the memory model where the change matters
    replay_on: str  # the scenario whose counterexample the tests replay on real processes


MUTANTS = [
    Mutant("eager-after-unlock", lambda: registered(EagerAfterUnlock), "native", "one-flusher"),
    # default: host1's flush of M (mapped) overlaps the invlpg's bump
    Mutant("tlbs-dirty-plain-store", lambda: registered(TlbsDirtyPlainStore), "native", "default"),
    Mutant("v4-no-zap-wmb", lambda: registered(V4NoZapWmb), "relaxed", "one-flusher"),
    # the mode store waits in the store buffer while the entry loads the request flag (SB)
    Mutant("entry-no-mb", _entry_mutant, "tso", "one-flusher"),
]
