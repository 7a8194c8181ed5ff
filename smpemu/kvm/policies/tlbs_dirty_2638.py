"""tlbs-dirty-2.6.38: upstream's tlbs_dirty as merged (a4ee1ca4a36e, 2.6.38).

Why it exists: smpemu's ``tlbs-dirty`` is the seed's deferral with
upstream's counter; this is what upstream merged, so the timeline
(docs/timeline.md) can show what each later commit closed.  Checked against
the 2.6.38 sources (kernel facts 1-2, /work/notes/kernel-facts.md):

- invlpg kept its flush, under mmu_lock (FNAME(invlpg): ``if (need_flush)
  kvm_flush_remote_tlbs()`` before spin_unlock); so do smpemu's other zaps
  (a fault replacing an spte, the bounded rmap's eviction);
- FNAME(sync_page) drops an spte whose guest pte changed (site "sync") and
  does ``tlbs_dirty++``: a plain increment under mmu_lock with no barrier
  (the smp_wmb() before it came in 4.6);
- kvm_flush_remote_tlbs(): ``int dirty_count = kvm->tlbs_dirty; smp_mb();``,
  the requests, ``cmpxchg(&kvm->tlbs_dirty, dirty_count, 0)`` (the read
  became smp_load_acquire() in 4.6);
- the notifier owes a flush if ``zapped | tlbs_dirty``, read under mmu_lock,
  and flushes after spin_unlock (before it from 3.4: ``--notifier 2012``);
- mmu_sync_children flushes on ``protected`` alone.  An spte that sync_page
  dropped without a flush is no longer in the rmap, so a later
  rmap_write_protect() of its gfn finds nothing, skips the flush, and a
  remote TLB keeps the writable entry: the ``sync-drop`` scenario
  (f81602958c11, 5.15, made sync_page flush at once; eager's zap at the sync
  site is that).
"""

from smpemu.kvm import events as ev
from smpemu.kvm import ipi
from smpemu.kvm.policies.base import Policy


class TlbsDirty2638Policy(Policy):
    name = "tlbs-dirty-2.6.38"
    summary = ("upstream 2.6.38-5.14 as merged: invlpg flushes under mmu_lock; sync_page drops an spte and "
               "bumps tlbs_dirty (plain, no barrier); the sync path flushes on 'protected' only")
    kernels = "2.6.38 to 4.5 (4.6 added barriers: tlbs-dirty-4.6; the counter went in 5.15)"
    commits = "a4ee1ca4a36e (2.6.38, Xiao Guangrong)"
    later = ("4.6: smp_wmb() before the bump, smp_load_acquire() on the read; 565f3be21746 (3.4): notifier "
             "flush before mmu_unlock (--notifier 2012); f81602958c11 (5.15): sync_page flushes at once; "
             "6bc6db000295 (5.15): tlbs_dirty removed")

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        if site != "sync":
            self.flush_remote(ctx)  # FNAME(invlpg)'s flush, still under mmu_lock
            return
        self._bump(ctx)
        ctx.point("invlpg.after_set_dirty")

    def _bump(self, ctx) -> None:
        mm = ctx.mm
        n = mm.load(ctx.a_dirty) + 1
        # tlbs_dirty++ under mmu_lock: a plain load and store, no smp_wmb()
        # before it (4.6 added one, pairing with the flush's read): under a
        # relaxed memory model the bump may be seen before the drop
        mm.store(ctx.a_dirty, n)
        ctx.ev(ev.SET_DIRTY, n)

    def notifier_owes(self, ctx, zapped):
        dirty = ctx.mm.load(ctx.a_dirty)  # need_tlb_flush = zapped | kvm->tlbs_dirty, under mmu_lock
        ctx.ev(ev.NOTIFIER_DIRTY, dirty)
        return zapped or bool(dirty)

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = self._read(ctx)
        ctx.ev(ev.COUNT_READ, seen)
        mm.mb()  # the count before the requests (2.6.38's smp_mb(); the bump's side has no barrier)
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        found = mm.cmpxchg(ctx.a_dirty, seen, 0)  # a bump since 'seen' keeps it non-zero
        ctx.ev(ev.COUNT_CMPXCHG, seen, found)

    def _read(self, ctx) -> int:
        return ctx.mm.load(ctx.a_dirty)  # int dirty_count = kvm->tlbs_dirty: a plain read


class TlbsDirty46Policy(TlbsDirty2638Policy):
    """tlbs-dirty-4.6: the same, with 4.6's barriers (kernel fact 4).

    sync_page: ``smp_wmb(); tlbs_dirty++`` ("Update spte before increasing
    tlbs_dirty to make sure no tlb flush is lost after spte is zapped");
    kvm_flush_remote_tlbs: ``smp_load_acquire(&kvm->tlbs_dirty)``.  smpemu
    never reorders loads, so only the wmb changes anything, and only where
    stores reorder (``--memory-model relaxed``: on x86 hardware, which is TSO,
    only the compiler could reorder the two stores).
    """

    name = "tlbs-dirty-4.6"
    summary = "tlbs-dirty-2.6.38 with 4.6's barriers: smp_wmb() before sync_page's bump, an acquire read"
    kernels = "4.6 to 5.14"
    commits = "a4ee1ca4a36e with the 4.6 barriers (between v4.5 and v4.6; the commit is not verified)"
    later = ("f81602958c11 (5.15): sync_page flushes at once; 6bc6db000295 (5.15): tlbs_dirty removed "
             "(eager with --notifier 2012 is that kernel)")

    def _bump(self, ctx) -> None:
        ctx.mm.wmb()  # the drop before the bump: pairs with the acquire read in _read()
        super()._bump(ctx)

    def _read(self, ctx) -> int:
        return ctx.mm.load_acquire(ctx.a_dirty)  # pairs with the wmb() before the bump
