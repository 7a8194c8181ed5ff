"""Protocol mutants: one-line changes of correct code that ``smpemu check`` must catch.

Each policy mutant is a Policy subclass registered in ``policies.POLICIES``
for the test (forked replay processes inherit the registration); the vCPU
entry mutant patches ``VCPU.enter_guest`` in the test process, before the
explorer runs and before the replay forks.

Not in the table: "v4 without the flush-side wmb" and "tlbs-dirty without its
zap-side wmb" are equivalent mutants in smpemu's memory models: the dirty word
is an atomic word, never buffered (a plain store to it first drains what is
before the last barrier and goes straight to memory; cmpxchg drains
everything), so no later store can become visible before it and the barrier
orders nothing that could move.  ``test_check.py`` shows it.
"""

from __future__ import annotations

import contextlib

from smpemu.kvm import ipi, policies
from smpemu.kvm.layout import IN_GUEST_MODE, OUTSIDE_GUEST_MODE
from smpemu.kvm.policies.base import DeferredPolicy
from smpemu.kvm.policies.eager import EagerPolicy
from smpemu.kvm.policies.tlbs_dirty import TlbsDirtyPolicy
from smpemu.kvm.vcpu import VCPU


class EagerAfterUnlock(EagerPolicy):
    """eager, flushing after mmu_unlock instead of under it (docs/decisions.md)."""

    name = "mutant-eager-after-unlock"

    def zap(self, ctx, mmu, slot, gfn):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        return True  # mutant: the caller flushes after mmu_unlock


class TlbsDirtyPlainStore(TlbsDirtyPolicy):
    """tlbs-dirty clearing the counter with a plain store instead of cmpxchg(seen, 0)."""

    name = "mutant-tlbs-dirty-store"

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = mm.load_acquire(ctx.a_dirty)
        ctx.ev(3, seen)
        mm.mb()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        mm.store(ctx.a_dirty, 0)  # mutant: a bump since 'seen' is lost


class V4NoZapWmb(DeferredPolicy):
    """v4 without the zap-side smp_wmb() (what deferred-v4-nowmb ships as a policy)."""

    name = "mutant-v4-no-zap-wmb"

    def zap(self, ctx, mmu, slot, gfn):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.store(ctx.a_dirty, 1)  # mutant: no wmb() before it
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")
        return False


class V4NoFlushWmb(DeferredPolicy):
    """v4 without the flush-side smp_wmb(): an equivalent mutant here (see above)."""

    name = "mutant-v4-no-flush-wmb"

    def flush_remote(self, ctx):
        mm = ctx.mm
        mm.store(ctx.a_dirty, 0)
        ctx.ev(3)
        ctx.point("flush.after_clear_dirty")  # mutant: no wmb() before the requests
        ipi.flush_all_cpus(ctx)


def _enter_guest_no_mb(self) -> None:
    mm = self.mm
    while True:
        self.serve()
        mm.store(self.a_mode, IN_GUEST_MODE)
        # mutant: no mb() between the mode store and the request load
        if not mm.load(self.a_flag):
            break
        mm.store(self.a_mode, OUTSIDE_GUEST_MODE)
    self.in_guest = True


@contextlib.contextmanager
def entry_without_mb():
    saved = VCPU.enter_guest
    VCPU.enter_guest = _enter_guest_no_mb
    try:
        yield
    finally:
        VCPU.enter_guest = saved


@contextlib.contextmanager
def registered(cls):
    policies.POLICIES[cls.name] = cls
    try:
        yield cls.name
    finally:
        policies.POLICIES.pop(cls.name, None)


# (mutant, base policy for the entry mutant, memory model where it matters)
POLICY_MUTANTS = [
    (EagerAfterUnlock, "native"),
    (TlbsDirtyPlainStore, "native"),
    (V4NoZapWmb, "relaxed"),
]
