"""tlbs-dirty: upstream's counter (2.6.38 - 5.14), the correct deferred
scheme for two overlapping flushes.

invlpg bumps ``kvm->tlbs_dirty`` after the zap; kvm_flush_remote_tlbs() reads
it, flushes, then ``cmpxchg(&tlbs_dirty, seen, 0)``: the counter is cleared
only *after* the flush, so a flush in progress leaves it dirty for a
concurrent notifier (the overlap that defeats v4), and a bump that raced with
the flush survives.  The counter is an atomic word.

Where smpemu differs: upstream bumped ``tlbs_dirty`` in ``sync_page`` (an
spte the unsync-page sync dropped without a remote flush), smpemu bumps it in
invlpg, the site the seed's patch defers; the protocol is the same.

What it does not survive: *three* overlapping flushes outside mmu_lock.  Two
flushers read the same count, one clears it, a new zap bumps it back to that
value, and the other's cmpxchg, whose requests predate that zap, clears the
new bump (an ABA; tests/test_oracle_scenarios.py forces it).  smpemu's
notifier flushes after mmu_unlock as 2.6.38's did; later kernels moved the
notifier's flush under mmu_lock, which rules the ABA out for it.
"""

from smpemu.kvm import ipi
from smpemu.kvm.policies.base import DeferredPolicy


class TlbsDirtyPolicy(DeferredPolicy):
    name = "tlbs-dirty"
    summary = ("upstream's tlbs_dirty: count read before the flush, cmpxchg(seen, 0) after: survives two "
               "overlapping flushes, not three outside mmu_lock (ABA)")

    def zap(self, ctx, mmu, slot, gfn, site):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.wmb()  # zap before the bump: pairs with mb() in flush_remote()
        while True:  # atomic increment through cmpxchg, as the word is atomic
            cur = mm.load(ctx.a_dirty)
            if mm.cmpxchg(ctx.a_dirty, cur, cur + 1) == cur:
                break
        ctx.ev(1, cur + 1)
        ctx.point("invlpg.after_set_dirty")

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = mm.load_acquire(ctx.a_dirty)
        ctx.ev(15, seen)
        mm.mb()  # read the count before the requests: pairs with wmb() in zap()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        found = mm.cmpxchg(ctx.a_dirty, seen, 0)  # a bump since 'seen' keeps the flag dirty
        ctx.ev(16, seen, found)
