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

``--range-share F``: that share of each reclaimer's invalidations are range
invalidations (``MMU.host_invalidate_range``: munmap, madvise(DONTNEED), the
balloon) of a working-set page, a page the vCPUs map and read, instead of
its usual invalidate_page.  Freed pages cannot show the 2009 notifier race
(each is invalidated by one reclaimer, after its invlpg's flush); two
invalidations of one cached page can.  F = 0 (the default) draws no random
number: the decisions of a run are today's.
"""

from __future__ import annotations

import time

from smpemu.kvm.layout import CTL_RANGE_TARGET

RANGE_PAGES = 4  # the first pages of each vCPU's range: share-unmap's working set, malloc-touch's first mallocs


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
    share = cfg.range_share
    if cfg.reclaim == "freed":
        _reclaim_just_freed(ctx, mmu, a, n, L, share)
        return
    # the swap rate is the total: each of the K reclaimers takes 1/K of it
    period = ctx.n_hosts / cfg.swap_rate if cfg.swap_rate > 0 else None
    waits = ctx.waits
    if period is None:  # nothing to reclaim, ever: idle until the run stops
        waits.wait_until(ctx, "host.idle", lambda took: ctx.stopping(), watch=(ctx.stop_addr,), slice_s=0.05)
        return
    next_t = time.monotonic()
    ops = 0
    while not ctx.stopping():
        ctx.check_alive()
        # one reclaim per period (per turn under a schedule: time is decisions there)
        delay = next_t - time.monotonic()
        if delay < -0.5:
            next_t = time.monotonic()  # fell behind: do not burst to catch up
        waits.wait_until(ctx, "host.reclaim", lambda took: ctx.stopping(), timeout=max(delay, 0.0),
                         timer=True, slice_s=0.05)
        if ctx.stopping():
            break
        if share and rng.random() < share:
            _range_invalidate(ctx, mmu, L)
        else:
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
        next_t += period


def _range_invalidate(ctx, mmu, guest) -> None:
    """One range invalidation of a working-set page (``--range-share``).

    The 2009 race needs two invalidations of one cached page at once, so
    range invalidations meet on purpose: one that starts while another
    reclaimer's is in progress takes that one's page (``CTL_RANGE_TARGET``,
    a plain word: a hint, not a lock); otherwise it picks a working-set page
    at random and publishes it.
    """
    W = ctx.W
    a_target = ctx.arena.ctl_addr(CTL_RANGE_TARGET)
    cur = W[a_target]
    mine = not cur
    if mine:
        rng = ctx.rng
        slot = guest.user_range(rng.randrange(guest.n_vcpus))[rng.randrange(min(RANGE_PAGES, guest.pages_per_thread))]
        gfn = W[ctx.arena.layout["gpte"].offset + slot] - 1
        if gfn < 0:
            return  # not mapped now: nothing to invalidate
        W[a_target] = gfn + 1
    else:
        gfn = cur - 1
    try:
        mmu.host_invalidate_range(gfn)
    finally:
        if mine and W[a_target] == gfn + 1:
            W[a_target] = 0


def _reclaim_just_freed(ctx, mmu, a, n, guest, share) -> None:
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
    f = ctx.arena.layout["freed_head"]
    watch = range(f.addr(0, 0), f.addr(n - 1, 0) + 1, f.shape[1])  # freed_head[v][0] of every vCPU
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
                    if share and ctx.rng.random() < share:
                        _range_invalidate(ctx, mmu, guest)  # instead of this freed page (docstring above)
                    else:
                        mmu.host_invalidate(int(ring[v, k % ring.shape[1]]))
                    ops += 1
            seen[v] = h
        if ops % 64 == 0:
            a.counters[ctx.pid_index, :] = ctx.counters
        if not busy:  # wait, without spinning, until a guest frees a page
            ctx.waits.wait_until(ctx, "host.idle",
                                 lambda took: ctx.stopping() or any(int(heads[v, 0]) != seen[v] for v in range(n)),
                                 watch=(watch,), slice_s=50e-6)
