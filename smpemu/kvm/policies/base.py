"""The flush-policy interface, and the deferred protocol the seed adds.

Why it exists: the policies of the seed differ in three places only, and the
MMU calls exactly these:

- ``zap(ctx, mmu, slot, gfn)``: under mmu_lock, invlpg (or an rmap eviction)
  removes one spte; a policy that flushes at once (eager) flushes there,
  still under the lock, the others defer.
- ``flush_remote(ctx)``: kvm_flush_remote_tlbs().
- ``flush_cond(ctx, cond, site)``: kvm_flush_remote_tlbs_cond() at the places
  where a deferred flush must happen: ``site`` is "notifier" (host about to
  free a page) or "sync" (mmu_sync_children on a cr3 write).

``DeferredPolicy`` is deferred-v4 (the seed's v4 patch); the other deferred
policies override one step of it.  The shared flag is ``ctl[CTL_FLUSH_DIRTY]``
(kvm->remote_tlbs_dirty), accessed only through the memory-model layer.
"""

from __future__ import annotations

from smpemu.kvm import ipi


class Policy:
    name = ""
    summary = ""

    def zap(self, ctx, mmu, slot: int, gfn: int) -> None:
        raise NotImplementedError

    def flush_remote(self, ctx) -> None:
        ipi.flush_all_cpus(ctx)

    def flush_cond(self, ctx, cond: bool, site: str) -> None:
        if cond:
            self.flush_remote(ctx)


class DeferredPolicy(Policy):
    """deferred-v4: zap, smp_wmb(), dirty = true, all under mmu_lock."""

    name = "deferred-v4"
    summary = "invlpg zaps, smp_wmb(), then sets remote_tlbs_dirty; flush deferred to notifier/sync (the v4 patch)"

    def zap(self, ctx, mmu, slot, gfn):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.wmb()  # zap before dirty: pairs with wmb() in flush_remote() (dirty = 0 before the requests)
        mm.store(ctx.a_dirty, 1)
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")

    def flush_remote(self, ctx):
        mm = ctx.mm
        mm.store(ctx.a_dirty, 0)
        ctx.ev(3)
        mm.wmb()  # dirty cleared before the requests: pairs with wmb() in zap()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)

    def flush_cond(self, ctx, cond, site):
        dirty = ctx.mm.load(ctx.a_dirty)
        ctx.ev(10, dirty)
        if cond or dirty:
            self.flush_remote(ctx)
