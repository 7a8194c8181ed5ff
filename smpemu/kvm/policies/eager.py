"""eager: no deferral.  Every zap flushes every remote TLB at once, under mmu_lock.

As in FNAME(invlpg) before the seed's patch (2.6.31.3) and in every later
kernel, the flush runs *before* mmu_lock is released (the seed's diff
removes ``kvm_flush_remote_tlbs()`` just above
``spin_unlock(&vcpu->kvm->mmu_lock)``).  Flushing after the unlock is racy:
the host's notifier can take the lock in between, find the spte already
zapped, skip its own flush and free the page while a remote TLB still maps
it (tests/mutants.py has that variant).

Its zap at the sync site (sync_page dropping an spte whose guest pte
changed) flushes at once too: that is 5.15's sync_page (f81602958c11), not
2009's, which dropped the spte with no flush at all (``eager-2.6.37``).  With
``--notifier 2012`` eager is upstream from 5.15 on (docs/timeline.md).
What it survives: ``smpemu verdicts`` (docs/verdicts.md).
"""

from smpemu.kvm.policies.base import Policy


class EagerPolicy(Policy):
    name = "eager"
    summary = "every zap (invlpg, sync_page's drop) flushes all remote TLBs at once, under mmu_lock; IPI-heavy"
    kernels = "invlpg: 2.6.31 (the seed's base) and every later kernel; sync_page's drop: 5.15 on"
    commits = "FNAME(invlpg) as in 2.6.31.3; f81602958c11 (5.15) for the drop"
    later = "with --notifier 2012 it is upstream from 5.15 on (6bc6db000295 removed tlbs_dirty)"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        self.flush_remote(ctx)  # still under mmu_lock, as the pre-patch code
