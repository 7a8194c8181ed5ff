"""The host's memory management: swap pressure through the mmu notifier.

Why it exists: deferred flushes are only safe if every place that frees a page
flushes first; the host process is that place.  It reclaims guest pages at
``--swap-rate`` per second, preferring pages the guest just freed (cold, and
the ones whose sptes invlpg already zapped, so only the dirty flag can say a
flush is owed), and otherwise any data page (its sptes are zapped here).
Faults swap pages back in.

The host runs ``--reclaimers`` such processes at once (kswapd and direct
reclaim both run the notifier), each its own requester in the IPI protocol
(ids N..N+K-1), each running ``host_invalidate`` concurrently with the
others: one reclaimer's flush can be in progress while another's notifier
decides whether it owes one.  ``--swap-rate`` is their total.
"""

from __future__ import annotations

import time



def reclaim(ctx, mmu, spec) -> None:
    """The host's reclaim loop until the run stops (``--reclaim``, ``--swap-rate``)."""
    cfg = spec.cfg
    L = spec.guest
    rng = ctx.rng
    a = ctx.arena
    data = L.data_gfns()
    n = L.n_vcpus
    ring = a.freed_ring
    heads = a.freed_head
    if cfg.reclaim == "freed":
        _reclaim_just_freed(ctx, mmu, a, n)
        return
    # the swap rate is the total: each of the K reclaimers takes 1/K of it
    period = ctx.n_hosts / cfg.swap_rate if cfg.swap_rate > 0 else None
    sched = ctx.sched
    if sched is not None and period is None:
        return  # nothing to do, ever: leave the schedule to the vCPUs
    next_t = time.monotonic()
    ops = 0
    while not ctx.stopping():
        ctx.check_alive()
        if sched is not None:
            sched.point(ctx, "host.reclaim")  # one reclaim per turn: no wall clock
        elif period is None:
            time.sleep(0.05)
            continue
        v = rng.randrange(n)
        h = int(heads[v, 0])
        if h > 0 and rng.random() < 0.75:
            k = rng.randrange(min(h, 8))
            gfn = int(ring[v, (h - 1 - k) % ring.shape[1]])
        else:
            gfn = data[rng.randrange(len(data))]
        mmu.host_invalidate(gfn)
        ops += 1
        if ops % 64 == 0:
            a.counters[ctx.pid_index, :] = ctx.counters
        if sched is not None:
            continue
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.5:
            next_t = time.monotonic()  # fell behind: do not burst to catch up


def _reclaim_just_freed(ctx, mmu, a, n) -> None:
    """Stress mode: take every page back the moment the guest frees it.

    The host polls the guests' freed rings and invalidates each new gfn at
    once, so a flush that a racy policy lost is not hidden by the next
    invlpg's dirty flag before the page is freed.  With K reclaimers,
    reclaimer j takes the ring entries k with k % K == j: while one is busy
    flushing for a page, the next freed page goes to another one.
    """
    ring = a.freed_ring
    heads = a.freed_head
    K, j = ctx.n_hosts, ctx.host_index
    seen = [0] * n
    ops = 0
    while not ctx.stopping():
        ctx.check_alive()
        busy = False
        for v in range(n):
            h = int(heads[v, 0])
            if h == seen[v]:
                continue
            busy = True
            if h - seen[v] > ring.shape[1]:
                seen[v] = h - ring.shape[1]  # fell behind: skip the overwritten part
            for k in range(seen[v], h):
                if k % K == j:
                    mmu.host_invalidate(int(ring[v, k % ring.shape[1]]))
                    ops += 1
            seen[v] = h
        if ops % 64 == 0:
            a.counters[ctx.pid_index, :] = ctx.counters
        if not busy:
            if ctx.sched is not None:  # wait, baton handed back, until a guest frees a page
                ctx.sched.wait_field(ctx, "host.idle", "freed_head", n)
            else:
                time.sleep(50e-6)
