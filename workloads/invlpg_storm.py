"""invlpg-storm: invlpg in a tight loop over a few mapped pages.

Measures the flush path itself: each vCPU maps a handful of its own pages
once, then loops ``invlpg(page)`` + re-touch.  The re-touch refills the spte
through a shadow fault (the guest pte is still there, so no guest #PF and no
kmap), so nearly every step is an exit through FNAME(invlpg): under ``eager``
each one is a kvm_flush_remote_tlbs() to every vCPU in guest mode, under a
deferred policy a local flush plus ``remote_tlbs_dirty``.  With ``--share``
odds a vCPU also reads a sibling's storm page, so remote TLBs hold pages that
are being invalidated.
Drives: FNAME(invlpg), the policy's zap/after_unlock, request/kick/ack IPIs.
"""

STORM_PAGES = 4


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    pages = list(L.user_range(cpu.me))[:STORM_PAGES]
    sibs = [list(r)[:STORM_PAGES] for r in L.sibling_ranges(cpu.me)]
    for slot in pages:
        guest.touch(slot, True)
    invlpg, touch, try_read = cpu.invlpg, guest.touch, guest.try_read
    rand, randrange = rng.random, rng.randrange
    share = cfg.share
    while True:
        for slot in pages:
            invlpg(slot)
            touch(slot, False)
            if sibs and rand() < share:
                r = sibs[randrange(len(sibs))]
                try_read(r[randrange(len(r))])
