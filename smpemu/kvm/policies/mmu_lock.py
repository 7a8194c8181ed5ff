"""mmu-lock: remote_tlbs_dirty protected by mmu_lock, flush under the lock.

Marcelo's suggestion in the seed.  Correct by mutual exclusion (invlpg cannot
zap between the clear and the requests, and no two flushes overlap: one
flusher's clear cannot be trusted by another before its IPIs landed), with
any number of reclaimers, at the cost of holding mmu_lock for the whole IPI
round trip: every fault and invlpg waits behind a flush.
"""

from smpemu.kvm import ipi
from smpemu.kvm.policies.base import DeferredPolicy


class MmuLockPolicy(DeferredPolicy):
    name = "mmu-lock"
    summary = ("remote_tlbs_dirty protected by mmu_lock, the flush under the lock: correct with any number "
               "of flushers (contention)")

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        ctx.mm.store(ctx.a_dirty, 1)  # under mmu_lock: ordered by the lock
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")

    def _flush_locked(self, ctx):
        ctx.mm.store(ctx.a_dirty, 0)
        ctx.ev(3)
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)

    def flush_remote(self, ctx):
        ctx.mmu_lock()
        try:
            self._flush_locked(ctx)
        finally:
            ctx.mmu_unlock()

    def flush_cond(self, ctx, cond, site):
        ctx.mmu_lock()
        try:
            self.flush_cond_locked(ctx, cond, site)
        finally:
            ctx.mmu_unlock()

    def flush_cond_locked(self, ctx, cond, site):
        # the caller holds mmu_lock (the sync path): taking it again would
        # deadlock on the non-recursive semaphore
        if cond or ctx.mm.load(ctx.a_dirty):
            self._flush_locked(ctx)
