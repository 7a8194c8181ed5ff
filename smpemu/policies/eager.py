"""eager: the pre-patch kernel.  Every invlpg flushes every remote TLB."""

from smpemu.policies.base import Policy


class EagerPolicy(Policy):
    name = "eager"
    summary = "invlpg flushes all remote TLBs every time (pre-patch KVM): correct, IPI-heavy"

    def zap(self, ctx, mmu, slot, gfn):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        return True  # kvm_flush_remote_tlbs() after mmu_lock is dropped
