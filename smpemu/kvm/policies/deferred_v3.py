"""deferred-v3: the racy first version.  dirty is set *before* the zap.

A flush that clears dirty and sends its requests between the two stores, while
another TLB re-fills from the still-present spte, loses the flush of that
spte: the seed's CPU0/CPU1 diagram.
"""

from smpemu.kvm.policies.base import DeferredPolicy


class DeferredV3Policy(DeferredPolicy):
    name = "deferred-v3"
    summary = "the v3 patch: sets remote_tlbs_dirty before zapping the spte: loses a flush with one flusher"

    def zap(self, ctx, mmu, slot, gfn, site):
        ctx.mm.store(ctx.a_dirty, 1)
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
