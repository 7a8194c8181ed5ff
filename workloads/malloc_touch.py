"""malloc-touch: malloc a range, touch one byte per 4 KiB page, free it, repeat.

The seed's test (Andrea: "malloc and touch a byte for each 4096 page
allocated by malloc. That will run a flood of invlpg").  In a 32-bit highmem
guest every first touch faults; the guest maps the new page through its
per-CPU kmap slot, zeroes it, and kunmap_atomic invlpgs the slot (that, more
than the unmap, is the flood), then writes the guest pte; free unmaps and invlpgs every page.
Threads of one guest process share the address space and now and then read a
sibling's page (``--share``), so a page one vCPU frees may sit in another
vCPU's TLB.  Every ``--cr3-every`` mallocs the vCPU context-switches to
another guest process and back: cr3 writes reach mmu_sync_children.
Drives: FNAME(invlpg), shadow faults, rmap, mmu_sync_children; the host's
swap pressure drives the mmu notifier at the same time.
"""


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    me = cpu.me
    mine = L.user_range(me)
    sibs = L.sibling_ranges(me)
    home = L.home_table(me)
    share = cfg.share
    touch, try_read = guest.touch, guest.try_read
    rand, randrange = rng.random, rng.randrange
    it = 0
    while True:
        n = randrange(len(mine) // 2, len(mine) + 1)
        for i in range(n):
            touch(mine[i], True)
            if sibs and rand() < share:
                r = sibs[randrange(len(sibs))]
                try_read(r[randrange(len(r))])
        for i in range(n):
            guest.unmap(mine[i])
        it += 1
        if cfg.cr3_every and it % cfg.cr3_every == 0:
            other = 1 + randrange(L.n_procs)
            cpu.write_cr3(other, L.pt_gfns_of_table(other))
            for _ in range(8):
                try_read(L.slot(other, randrange(L.user_vpns)))
            cpu.write_cr3(home, L.pt_gfns_of_table(home))
