"""mmu-lock: remote_tlbs_dirty protected by mmu_lock, flush under the lock.

Marcelo's suggestion in the seed.  Mutual exclusion: invlpg cannot zap
between the clear and the requests, and no two of its flushes overlap (one
flusher's clear cannot be trusted by another before its IPIs landed), at
the cost of holding mmu_lock for the whole IPI round trip: every fault and
invlpg waits behind a flush.  Under ``--notifier 2009`` the notifier zaps,
releases mmu_lock and retakes it to flush, so a second invalidation of the
same page (a range invalidation: no host pte lock) can find no spte and
free the page in between (the ``range-overlap`` scenario); ``--notifier
2012`` flushes under the lock the notifier holds (docs/timeline.md).  What
it survives, under which settings: ``smpemu verdicts`` (docs/verdicts.md).
"""

from smpemu.kvm import events as ev
from smpemu.kvm import ipi
from smpemu.kvm.policies.base import DeferredPolicy


class MmuLockPolicy(DeferredPolicy):
    name = "mmu-lock"
    summary = "remote_tlbs_dirty protected by mmu_lock, the flush under the lock (contention)"
    kernels = "none: Marcelo Tosatti's suggestion in the seed's review (2009), never merged"
    commits = "the v4 thread: \"What about protecting remote_tlbs_dirty with mmu_lock?\""
    later = "-"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        ctx.mm.store(ctx.a_dirty, 1)  # under mmu_lock: ordered by the lock
        ctx.ev(ev.SET_DIRTY, 1)
        ctx.point("invlpg.after_set_dirty")

    def _flush_locked(self, ctx):
        ctx.mm.store(ctx.a_dirty, 0)
        ctx.ev(ev.FLUSH_CLEARED)
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
