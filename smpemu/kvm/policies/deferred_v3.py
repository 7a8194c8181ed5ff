"""deferred-v3: the racy first version.  dirty is set *before* the zap.

A flush that clears dirty and sends its requests between the two stores, while
another TLB re-fills from the still-present spte, loses the flush of that
spte: the seed's CPU0/CPU1 diagram.
"""

from smpemu.kvm import events as ev
from smpemu.kvm.policies.base import DeferredPolicy


class DeferredV3Policy(DeferredPolicy):
    name = "deferred-v3"
    summary = "the seed's v3: sets remote_tlbs_dirty before zapping the spte (the seed's CPU0/CPU1 window)"
    kernels = "none: the seed's v3 patch (kvm list, 2009), never merged"
    commits = "[PATCH] KVM: Defer remote tlb flushes on invlpg (v3), Andrea Arcangeli"
    later = "v4 (the same thread) sets the flag after the zap"

    def zap(self, ctx, mmu, slot, gfn, site):
        ctx.mm.store(ctx.a_dirty, 1)
        ctx.ev(ev.SET_DIRTY, 1)
        ctx.point("invlpg.after_set_dirty")
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
