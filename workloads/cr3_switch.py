"""cr3-switch: guest context switches that reach mmu_sync_children.

Models a guest scheduler switching each vCPU between processes while those
processes edit their page tables.  One round on a vCPU: touch a few of its
own pages (and unmap one, so invlpg leaves ``remote_tlbs_dirty`` set under a
deferred policy), write to a page-table page of its process (the shadowed
guest page table becomes unsync and writable), switch cr3 to another guest
process, read a few of that process's pages, write one of its page-table
pages, and switch cr3 back home.  Each cr3 write flushes the non-global TLB
entries and runs mmu_sync_children over the new process's page tables:
rmap_write_protect of every unsync one, then
``kvm_flush_remote_tlbs_cond(protected)`` (or the policy's equivalent).
Drives: write_cr3, mmu_sync_children, rmap_write_protect, the sync flush and
oracle check 3 (a write through a TLB entry the sync should have flushed).
"""

ROUND_TOUCHES = 8  # guest accesses between two context switches


def _pt_write(guest, table, rng) -> None:
    """A guest write to one of ``table``'s page-table pages (a pte update)."""
    L = guest.L
    pts = L.pt_gfns_of_table(table)
    guest.touch(L.pt_slot(pts[rng.randrange(len(pts))]), True)


def _other_table(L, home, rng) -> int:
    if L.n_procs == 1:
        return home
    other = 1 + rng.randrange(L.n_procs - 1)
    return other + 1 if other >= home else other


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    mine = L.user_range(cpu.me)
    home = L.home_table(cpu.me)
    touch, try_read = guest.touch, guest.try_read
    randrange = rng.randrange
    while True:
        for _ in range(ROUND_TOUCHES):
            touch(mine[randrange(len(mine))], rng.random() < 0.5)
        guest.unmap(mine[randrange(len(mine))])
        _pt_write(guest, home, rng)
        other = _other_table(L, home, rng)
        cpu.write_cr3(other, L.pt_gfns_of_table(other))
        for _ in range(ROUND_TOUCHES):
            try_read(L.slot(other, randrange(L.user_vpns)))  # its threads' pages
        _pt_write(guest, other, rng)
        cpu.write_cr3(home, L.pt_gfns_of_table(home))
