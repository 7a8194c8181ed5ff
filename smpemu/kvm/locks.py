"""mmu_lock and pfn_lock: semaphores held by a recorded pid, taken with a timeout.

Why it exists: the MMU's spinlocks, written once over ``ctx.waits``
(``kvm.waits``): a scheduling point before each acquisition, then "take it,
or wait while its holder keeps it", polling for IPIs meanwhile (2009
semantics) and never unbounded.
"""

from __future__ import annotations

from smpemu.errors import AckTimeout
from smpemu.kvm.waits import try_take


def lock(ctx, lk) -> None:
    """Acquire ``lk`` (a ``kvm.waits.Lock``).

    The timeout is per holder: while the lock keeps changing hands (its
    acquisition count moves) we are merely slow; one holder keeping it past
    the timeout (dead, stopped, or deadlocked) aborts the run.
    """
    waits = ctx.waits
    ctx.mm.drain()  # pairs with: a lock holder sees our earlier stores
    waits.point(ctx, lk.at)
    sem = lk.sem
    if not try_take(sem):
        W = ctx.W
        # 2009: IPIs must be acked while we spin on the lock, so wake often
        slice_s = 0.002 if ctx.params.requests == "2009" else 0.02
        timeout = ctx.params.lock_timeout
        watch = (lk.holder,) + ctx.poll_words
        while True:
            seen = W[lk.acq]
            if waits.wait_until(ctx, lk.wait, lambda took: took or try_take(sem), watch=watch, sem=sem,
                                poll=ctx.exit_poll, timeout=timeout, slice_s=slice_s):
                break
            if W[lk.acq] == seen:
                raise AckTimeout(
                    f"cpu {ctx.pid_index} could not take {lk.name}: held by pid "
                    f"{W[lk.holder]} for more than {timeout} s"
                )
    W = ctx.W
    W[lk.holder] = ctx.ospid
    W[lk.acq] += 1  # under the lock: one writer at a time


def unlock(ctx, lk) -> None:
    ctx.W[lk.holder] = 0
    ctx.mm.release_lock(lk.sem)  # drains the store buffer first: a release


__all__ = ["lock", "unlock"]
