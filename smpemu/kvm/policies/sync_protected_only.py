"""sync-protected-only: v4, but mmu_sync_children ignores remote_tlbs_dirty.

The question of the seed's review (Marcelo: dirty "is not pertinent to
mmu_sync_children"; Andrea: a TLB entry for an spte invlpg zapped can still be
writable on a remote CPU when the cr3 write syncs).  The oracle's
write-protect check catches the result: after the sync returns, a vCPU
writing a guest page table through a stale writable TLB entry (the ``sync``
scenario shows it).  Its sync rule is upstream's (2.6.31 to today); with
sync_page's drops taking sptes out of the rmap unflushed, upstream had the
same hole until 5.15 (``sync-drop``, docs/timeline.md).  Its verdicts:
``smpemu verdicts`` (docs/verdicts.md).
"""

from smpemu.kvm.policies.base import DeferredPolicy


class SyncProtectedOnlyPolicy(DeferredPolicy):
    name = "sync-protected-only"
    summary = "v4, but mmu_sync_children flushes on 'protected' alone (ignores dirty)"
    kernels = "none: v4's deferral with upstream's sync rule (2.6.31 to today: flush if protected)"
    commits = "Marcelo's position in the v4 review; mmu_sync_children as in 2.6.31.3"
    later = "-"

    def flush_cond(self, ctx, cond, site):
        if site == "sync":
            if cond:
                self.flush_remote(ctx)
            return
        super().flush_cond(ctx, cond, site)
