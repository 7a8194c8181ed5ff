"""deferred-v4-nowmb: v4 without the smp_wmb() between zap and dirty.

Correct on TSO (stores stay in order), broken where stores reorder: under
``--memory-model relaxed`` the dirty store can become visible before the zap.
"""

from smpemu.kvm.policies.base import DeferredPolicy


class DeferredV4NoWmbPolicy(DeferredPolicy):
    name = "deferred-v4-nowmb"
    summary = "v4 without smp_wmb(): correct under tso/native, loses flushes under relaxed"

    def zap(self, ctx, mmu, slot, gfn):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        ctx.mm.store(ctx.a_dirty, 1)  # no wmb(): may pass the zap on weak hardware
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")
