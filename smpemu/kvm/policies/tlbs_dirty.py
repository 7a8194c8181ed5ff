"""tlbs-dirty: the seed's invlpg deferral with upstream's counter, and Andrea's sync rule.

Never a kernel (upstream's are ``tlbs-dirty-2.6.38`` and ``tlbs-dirty-4.6``).
invlpg defers its flush as the seed's v4 does, but marks the deferral with
upstream's ``tlbs_dirty`` counter (a4ee1ca4a36e, 2.6.38) in its 4.6 form:
after the zap, ``smp_wmb()`` and an atomic increment;
kvm_flush_remote_tlbs() reads the count (acquire), flushes, then
``cmpxchg(&tlbs_dirty, seen, 0)``.  The counter is cleared only *after* the
flush, so a flush in progress leaves it dirty for a concurrent notifier (the
overlap that defeats v4), and a bump that raced with the flush stays.
mmu_sync_children flushes if ``protected`` or the counter is set: Andrea's
2009 rule, which upstream never had (f81602958c11 closed the same hole in
5.15 by making sync_page flush at once).  sync_page's drop goes through the
same zap.

Its race: one flush outside mmu_lock overlapping any other flush, when the
counter comes back to the value that flusher read.  Both read the same
count, the other clears it, a new zap bumps it back to that value, and the
first one's cmpxchg, whose requests predate that zap, clears the new bump
(an ABA); the next notifier finds no spte and 0 and frees the page (the
``aba`` scenario: a count of 1 at the start, one plain flush outside
mmu_lock beside a cr3 sync's under it).  Under which settings it loses and
where it is clean: ``smpemu verdicts`` (docs/verdicts.md).
"""

from smpemu.kvm import events as ev
from smpemu.kvm import ipi
from smpemu.kvm.policies.base import DeferredPolicy


class TlbsDirtyPolicy(DeferredPolicy):
    name = "tlbs-dirty"
    summary = ("the seed's invlpg deferral with upstream's counter (4.6 form: read, flush, cmpxchg(seen, 0)) "
               "and Andrea's sync rule (flush if protected or the count is set)")
    kernels = "none: the seed's deferral, upstream's counter as in 4.6-5.14, Andrea's 2009 sync rule"
    commits = "a4ee1ca4a36e's counter and flush (2.6.38) with 4.6's barriers; Andrea's v4 review mail"
    later = "6bc6db000295 (5.15) removed the counter upstream"

    def zap(self, ctx, mmu, slot, gfn, site):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.wmb()  # zap before the bump: pairs with mb() in flush_remote()
        while True:  # atomic increment through cmpxchg, as the word is atomic
            cur = mm.load(ctx.a_dirty)
            if mm.cmpxchg(ctx.a_dirty, cur, cur + 1) == cur:
                break
        ctx.ev(ev.SET_DIRTY, cur + 1)
        ctx.point("invlpg.after_set_dirty")

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = mm.load_acquire(ctx.a_dirty)
        ctx.ev(ev.COUNT_READ, seen)
        mm.mb()  # read the count before the requests: pairs with wmb() in zap()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        found = mm.cmpxchg(ctx.a_dirty, seen, 0)  # a bump since 'seen' keeps the flag dirty
        ctx.ev(ev.COUNT_CMPXCHG, seen, found)
