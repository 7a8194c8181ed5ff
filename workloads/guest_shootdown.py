"""guest-shootdown: threads of one process share pages; owners munmap them with TLB shootdowns.

Every vCPU runs a thread of one guest process (one mm: every vCPU is in
``mm_cpumask``).  Each thread maps a few pages of its own and keeps reading
and writing pages of the other threads (so their TLBs cache translations of
pages their owner will unmap); once in every ``ACCESSES_PER_UNMAP``
accesses it munmaps one of its own pages with a guest TLB shootdown
(``--guest-flush``: IPIs to every other vCPU of the mm, or the paravirtual
flush that skips the preempted ones), frees the frame and maps the page
again from a fresh frame (the pool gives the freed frame back first: it is
reused at once).  Each shootdown's latency (start to last ack) and the IPIs
sent and avoided are counted (``run --json``: ``shootdown_us``,
``shootdown_ipis``, ``shootdown_ipis_avoided``); the guest-level oracle
checks every access.  Meant for ``--pcpus`` (real preemption).
Drives: the guest's flush IPIs through the host (injection, kicks), the
flush handler's invlpg / cr3 reload (FNAME(invlpg), mmu_sync_children),
steal time and the PV flush at entry.
"""

GUEST_PROCS = 1  # one mm for every vCPU (coordinator.plan)
WORKING_SET = 4  # pages each thread owns
ACCESSES_PER_UNMAP = 256
WRITE_SHARE = 0.25  # of the accesses to other threads' pages


def run(cpu, guest, rng, cfg) -> None:
    L = guest.L
    sd = cpu.pv.shootdowns
    mine = list(L.user_range(cpu.me))[:WORKING_SET]
    others = [s for u in range(L.n_vcpus) if u != cpu.me for s in list(L.user_range(u))[:WORKING_SET]] or mine
    for slot in mine:
        guest.map_page(slot, zero=False)
        guest.touch(slot, True)
    access = cpu.access
    randrange, rand = rng.randrange, rng.random
    while True:
        for _ in range(ACCESSES_PER_UNMAP):
            # a racy access to another thread's page: no fault handling (it may be unmapped right now)
            access(others[randrange(len(others))], rand() < WRITE_SHARE)
        slot = mine[randrange(len(mine))]
        sd.munmap(slot)
        guest.map_page(slot, zero=False)
        guest.touch(slot, True)
