"""eager-2.6.37: upstream before tlbs_dirty (2.6.31 to 2.6.37).

Why it exists: the race a4ee1ca4a36e (2.6.38) closed.  invlpg flushed
every remote TLB under mmu_lock (``eager``), but FNAME(sync_page) dropped an
spte whose guest pte had changed with no remote flush and no flag
(``rmap_remove()`` and a non-present spte in 2.6.31.3; ``drop_spte()`` in
2.6.37; kvm_sync_page() then flushed the local TLB only).  The notifier
finds no spte for the page, skips its flush and frees the page while a
remote TLB still maps it: the ``drop-free`` scenario.  2.6.38's comment in
sync_page says so ("kvm_mmu_notifier_invalidate_page ... detect the mapping
page isn't used by guest then tlbs are not flushed").
"""

from smpemu.kvm.policies.eager import EagerPolicy


class Eager2637Policy(EagerPolicy):
    name = "eager-2.6.37"
    summary = ("upstream 2.6.31-2.6.37: invlpg flushes under mmu_lock, but sync_page drops an spte with no "
               "remote flush and no flag")
    kernels = "2.6.31 (the seed's base) to 2.6.37"
    commits = "FNAME(sync_page) as in 2.6.31.3 and 2.6.37"
    later = "a4ee1ca4a36e (2.6.38): sync_page bumps tlbs_dirty and the notifier flushes on it (tlbs-dirty-2.6.38)"

    def zap(self, ctx, mmu, slot, gfn, site):
        if site != "sync":
            super().zap(ctx, mmu, slot, gfn, site)
            return
        mmu.zap_spte(slot, gfn)  # rmap_remove + a non-present spte; the local flush comes at re-entry
        ctx.point("invlpg.after_zap")
