"""swap-pressure: re-touch a working set while the host swaps it out underneath.

Models a guest whose resident set is under host memory pressure: every vCPU
keeps touching its whole malloc range (reads, and writes at random), and now
and then reads a sibling thread's page, so a page may sit in several TLBs.
The host process (smpemu/host.py) reclaims guest frames at ``--swap-rate``
through the mmu notifier (invalidate_range_start/end: zap the sptes, flush as
the policy says, free the pfn); the next touch of a reclaimed page takes a
shadow fault that swaps it back in (gfn_to_pfn allocates a new pfn).  The
guest never unmaps, so guest invlpg is rare (only the kmap slot on first
touch): the notifier's ``kvm_flush_remote_tlbs_cond`` is the flush that
counts here.
Drives: mmu-notifier invalidate, shadow faults / swap-in, rmap; the oracle's
free-time TLB check sees any flush the notifier skipped.
"""


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    mine = L.user_range(cpu.me)
    sibs = L.sibling_ranges(cpu.me)
    touch, try_read = guest.touch, guest.try_read
    rand, randrange = rng.random, rng.randrange
    share = cfg.share
    order = list(mine)
    while True:
        rng.shuffle(order)  # no fixed stride: TLB replacement and reclaim both bite
        for slot in order:
            touch(slot, rand() < 0.25)
            if sibs and rand() < share:
                r = sibs[randrange(len(sibs))]
                try_read(r[randrange(len(r))])
