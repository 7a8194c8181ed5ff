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

The drop is ``MMU.sync_page`` (FNAME(sync_page), the one written for
``mmu_sync_children``), run here on every page table of the vCPU's current
guest process, unsync or not: a guest pte write to a write-protected page
table traps in KVM (``kvm_mmu_pte_write`` zaps the spte at once), but
smpemu's guest writes a pte in two steps (a write access to the page table,
then the store, ``GuestKernel.set_gpte``), so a sync can land between them
and leave a changed pte on a page it just write-protected: the drop removes
that spte as the trap would have.

Only the guest flushes of issue 19 call this (the shootdown handler's full
flush, the PV flush at entry): ``VCPU.write_cr3`` syncs the unsync page
tables only, so the scenarios of ``smpemu check`` keep their schedules.
"""

from __future__ import annotations


def _pt_gfns(cpu):
    L = cpu.spec.guest
    return L.pt_gfns_of_table(cpu.table or L.home_table(cpu.me))


def drop_changed(cpu, pt_gfns) -> None:
    """FNAME(sync_page)'s drop on every page table of ``pt_gfns``, under
    mmu_lock: each spte whose guest pte no longer maps its gfn is zapped
    through the policy (site "sync").  Outside guest mode."""
    ctx = cpu.ctx
    ctx.mmu_lock()
    try:
        for pt in pt_gfns:
            cpu.mmu.sync_page(pt)
    finally:
        ctx.mmu_unlock()


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
