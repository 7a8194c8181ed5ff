"""share-unmap: threads read each other's pages; now and then one unmaps one of its own.

The race workload of ``smpemu stress``.  Each vCPU maps a small working set
in its thread's range, then keeps reading pages of its sibling threads (so
remote TLBs hold translations of pages their owner will unmap) and, once in
every 128 reads, unmaps one of its own pages (guest pte cleared,
invlpg, frame freed) and maps it again from a fresh frame (a page-cache page:
no zeroing, so no kmap invlpg sets the dirty flag on the side).  With the
host reclaiming each freed frame at once (``--reclaim freed``), a flush that
a policy loses is not masked by the next invlpg.
Drives: FNAME(invlpg) on shared translations, TLB fills racing the zap,
the mmu notifier right after the unmap.
"""

WORKING_SET = 4
READS_PER_UNMAP = 128


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    me = cpu.me
    mine = list(L.user_range(me))[:WORKING_SET]
    sibs = [list(r)[:WORKING_SET] for r in L.sibling_ranges(me)] or [mine]
    for slot in mine:
        guest.map_page(slot, zero=False)
        guest.touch(slot, True)
    randrange = rng.randrange
    while True:
        for _ in range(READS_PER_UNMAP):
            r = sibs[randrange(len(sibs))]
            guest.try_read(r[randrange(len(r))])
        slot = mine[randrange(len(mine))]
        guest.unmap(slot)
        guest.map_page(slot, zero=False)
