"""eager: the pre-patch kernel.  Every invlpg flushes every remote TLB.

As in FNAME(invlpg) before the patch, the flush runs *before* mmu_lock is
released (the seed's diff removes ``kvm_flush_remote_tlbs()`` just above
``spin_unlock(&vcpu->kvm->mmu_lock)``).  Flushing after the unlock is racy:
the host's notifier can take the lock in between, find the spte already
zapped, skip its own flush and free the page while a remote TLB still maps
it.  smpemu's oracle finds that variant under ``stress`` within seconds.
"""

from smpemu.kvm.policies.base import Policy


class EagerPolicy(Policy):
    name = "eager"
    summary = ("pre-patch KVM: invlpg flushes all remote TLBs every time, under mmu_lock: correct with any "
               "number of flushers, IPI-heavy")

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        self.flush_remote(ctx)  # still under mmu_lock, as the pre-patch code
