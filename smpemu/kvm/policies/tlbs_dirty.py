"""tlbs-dirty: upstream's counter (2.6.38 - 5.14).

invlpg bumps ``kvm->tlbs_dirty`` after the zap; kvm_flush_remote_tlbs() reads
it, flushes, then ``cmpxchg(&tlbs_dirty, seen, 0)``: a bump that raced with
the flush survives, so its flush is not lost.  The counter is an atomic word.
"""

from smpemu.kvm import ipi
from smpemu.kvm.policies.base import DeferredPolicy


class TlbsDirtyPolicy(DeferredPolicy):
    name = "tlbs-dirty"
    summary = "tlbs_dirty counter read before the flush, cmpxchg(seen, 0) after it (upstream)"

    def zap(self, ctx, mmu, slot, gfn):
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
        ctx.ev(3, seen)
        mm.mb()  # read the count before the requests: pairs with wmb() in zap()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        mm.cmpxchg(ctx.a_dirty, seen, 0)  # a bump since 'seen' keeps the flag dirty
