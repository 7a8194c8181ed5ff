"""sync-protected-only: v4, but mmu_sync_children ignores remote_tlbs_dirty.

The question of the seed's review (Marcelo: dirty "is not pertinent to
mmu_sync_children"; Andrea: a TLB entry for an spte invlpg zapped can still be
writable on a remote CPU when the cr3 write syncs).  The oracle's
write-protect check shows Andrea was right: after the sync returns, a vCPU can
still write a guest page table through a stale writable TLB entry.
"""

from smpemu.kvm.policies.base import DeferredPolicy


class SyncProtectedOnlyPolicy(DeferredPolicy):
    name = "sync-protected-only"
    summary = "v4, but mmu_sync_children flushes on 'protected' alone (ignores dirty): stale writable TLBs"

    def flush_cond(self, ctx, cond, site):
        if site == "sync":
            if cond:
                self.flush_remote(ctx)
            return
        super().flush_cond(ctx, cond, site)
