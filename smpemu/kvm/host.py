"""The host's memory management: swap pressure through the mmu notifier.

Why it exists: deferred flushes are only safe if every place that frees a page
flushes first; the host process is that place.  It reclaims guest pages at
``--swap-rate`` per second, preferring pages the guest just freed (cold, and
the ones whose sptes invlpg already zapped, so only the dirty flag can say a
flush is owed), and otherwise any data page (its sptes are zapped here).
Faults swap pages back in.  It is requester id N in the IPI protocol.
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
    period = 1.0 / cfg.swap_rate if cfg.swap_rate > 0 else None
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


def _reclaim_just_freed(ctx, mmu, a, n) -> None:
    """Stress mode: take every page back the moment the guest frees it.

    The host polls the guests' freed rings and invalidates each new gfn at
    once, so a flush that a racy policy lost is not hidden by the next
    invlpg's dirty flag before the page is freed.
    """
    ring = a.freed_ring
    heads = a.freed_head
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
                mmu.host_invalidate(int(ring[v, k % ring.shape[1]]))
                ops += 1
            seen[v] = h
        if ops % 64 == 0:
            a.counters[ctx.pid_index, :] = ctx.counters
        if not busy:  # wait, without spinning, until a guest frees a page
            ctx.waits.wait_until(ctx, "host.idle",
                                 lambda took: ctx.stopping() or any(int(heads[v, 0]) != seen[v] for v in range(n)),
                                 watch=(watch,), slice_s=50e-6)
