"""deferred-v4-nowmb: v4 without the smp_wmb() between zap and dirty.

Under ``--memory-model relaxed`` the dirty store can become visible before
the zap (the stores reorder where nothing orders them); under tso and native
stores stay in order.  Its verdicts under each memory model: ``smpemu
verdicts`` (docs/verdicts.md).
"""

from smpemu.kvm import events as ev
from smpemu.kvm.policies.base import DeferredPolicy


class DeferredV4NoWmbPolicy(DeferredPolicy):
    name = "deferred-v4-nowmb"
    summary = "v4 without smp_wmb() between the zap and the dirty store (they may reorder under relaxed)"
    kernels = "none: the seed's v4 without its barrier (the review's question about it)"
    commits = "a one-line variant of the v4 patch"
    later = "-"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        ctx.mm.store(ctx.a_dirty, 1)  # no wmb(): may pass the zap on weak hardware
        ctx.ev(ev.SET_DIRTY, 1)
        ctx.point("invlpg.after_set_dirty")
