"""What KVM does when the guest flushes its whole TLB under shadow paging.

Why it exists: with shadow paging a guest TLB flush is the moment KVM learns
that the guest changed its page tables.  One page (invlpg) traps into
FNAME(invlpg) (``VCPU.invlpg``, ``MMU.invlpg``: the spte is zapped).  A full
flush (the guest reloads cr3; or the paravirtual flush's KVM_VCPU_FLUSH_TLB,
honoured at entry) must sync the shadow pages: an spte whose guest pte
changed is dropped (FNAME(sync_page)'s drop, through the policy's ``zap``),
then ``MMU.sync_children`` write-protects the unsync page tables and flushes
as the policy says.  b53e84eed08b (5.13, "Unload MMU on guest TLB flush if
TDP disabled to force MMU sync") made the paravirtual flush do this
(``kvm_vcpu_flush_tlb_guest``: ``kvm_mmu_unload``, so that the next
``kvm_mmu_load`` syncs); before it, the flush at entry only flushed the
hardware TLB (``pv-no-sync``).

The drop compares every present spte of the vCPU's current guest process
with its guest pte, unsync page or not: a guest pte write to a
write-protected page table traps in KVM (``kvm_mmu_pte_write`` zaps the
spte at once), but smpemu's guest writes a pte in two steps (a write access
to the page table, then the store, ``GuestKernel.set_gpte``), so a sync can
land between them and leave a changed pte on a page it just write-protected:
the drop removes that spte as the trap would have.

Only the guest flushes of issue 19 call this (the shootdown handler's full
flush, the PV flush at entry): ``VCPU.write_cr3`` and the scenarios of
``smpemu check`` keep exactly the schedules they had.  (The timeline issue
models sync_page's drop inside ``MMU.sync_children`` for every sync; once it
is there, ``drop_changed`` finds nothing left to drop.)
"""

from __future__ import annotations

import numpy as np

from smpemu.kvm import spte as S


def _pt_gfns(cpu):
    L = cpu.spec.guest
    return L.pt_gfns_of_table(cpu.table or L.home_table(cpu.me))


def drop_changed(cpu, pt_gfns) -> int:
    """FNAME(sync_page)'s drop, under mmu_lock: zap (through the policy) every
    spte of these page tables whose guest pte no longer maps its gfn.
    Outside guest mode.  Returns how many it dropped."""
    ctx = cpu.ctx
    mm = ctx.mm
    mmu = cpu.mmu
    W = mmu.W
    L = cpu.spec.guest
    sptes = ctx.arena.np["spte"]
    dropped = 0
    ctx.mmu_lock()
    try:
        for pt in pt_gfns:
            r = L.slots_of_pt(pt)
            # the present ones (a vector scan; sptes change only under the
            # mmu_lock we hold), then each one through the memory model
            for k in np.flatnonzero(sptes[r.start:r.stop] & S.PRESENT):
                slot = r.start + int(k)
                s = mm.load(mmu.a_spte + slot)
                if s & S.PRESENT and W[mmu.a_gpte + slot] - 1 != S.gfn_of(s):
                    ctx.policy.zap(ctx, mmu, slot, S.gfn_of(s))
                    dropped += 1
    finally:
        ctx.mmu_unlock()
    return dropped


def sync_roots(cpu) -> None:
    """kvm_mmu_load after kvm_mmu_unload: sync the current guest process's
    page tables (drop changed sptes, write-protect, the policy's flush)."""
    pts = _pt_gfns(cpu)
    drop_changed(cpu, pts)
    cpu.mmu.sync_children(pts)


def flush_tlb_guest(cpu) -> None:
    """kvm_vcpu_flush_tlb_guest() with b53e84eed08b, shadow paging: sync, then
    flush this vCPU's TLB.  Outside guest mode (at entry)."""
    sync_roots(cpu)
    cpu.flush_tlb()


def reload_cr3(cpu) -> None:
    """The guest's full TLB flush (native flush_tlb_local: a cr3 reload): it
    traps; KVM syncs the shadow pages and flushes the non-global entries."""
    pts = _pt_gfns(cpu)
    cpu.exit_guest()
    drop_changed(cpu, pts)
    cpu.write_cr3(cpu.table or cpu.spec.guest.home_table(cpu.me), pts)


__all__ = ["drop_changed", "sync_roots", "flush_tlb_guest", "reload_cr3"]
