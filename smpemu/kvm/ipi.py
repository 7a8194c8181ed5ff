"""Flush requests, kicks (IPIs) and acks between processes.

Why it exists: this is KVM's ``kvm_make_all_cpus_request()`` and the vCPU's
side of it, with POSIX semaphores for IPIs.  It follows
Documentation/virt/kvm/vcpu-requests.rst:

    requester r                          vCPU t
    -----------                          ------
    wmb()                                mode = IN_GUEST_MODE
    req_seq[t][r] = s
    wmb()                                mb()
    req_flag[t] = 1                      if req_flag: exit, serve
    mb()                                 ...guest steps, polling req_flag...
    if cmpxchg(mode[t], IN, EXITING)     req_flag = 0
        kick t (sem_post)                mb()
    wait ack_seq[t][r] >= s              snap = req_seq[t][*]; flush TLB
      (spin, then block on ackwake[r])   ack_seq[t][*] = snap; mb()
                                         wake requesters with ack_waiting set

Acks are per (target, requester) sequence numbers written only by the target,
so one TLB flush answers every requester whose request it saw, any number of
requesters can wait at once, and an ack can never be mistaken for one that
predates the request (a single flush counter read after the request could
already include a flush that ran before our zap).  Modern semantics wait only
for vCPUs read as in guest mode or exiting; a vCPU outside guest mode serves
its requests before it next enters.  ``--requests 2009`` waits for every
loaded (not halted) vCPU, which acks at poll points in exit handling too;
a vCPU never loaded yet (KVM: ``vcpu->cpu == -1``) it skips, as 2009's
``make_all_cpus_request()`` did.
The requester's wait is written once, over ``ctx.waits`` (``kvm.waits``).
"""

from __future__ import annotations

import time

from smpemu.kvm import events as ev
from smpemu.errors import AckTimeout
from smpemu.kvm.layout import C, EXITING_GUEST_MODE, IN_GUEST_MODE, OUTSIDE_GUEST_MODE


def make_request(ctx, targets, wake: bool = False) -> None:
    """Request a TLB flush of ``targets`` and wait for the ones that must ack.

    ``wake``: also kick halted vCPUs (a request without KVM_REQUEST_NO_WAKEUP);
    TLB flushes do not wake halted vCPUs, as in KVM.
    """
    mm = ctx.mm
    me = ctx.pid_index
    cnt = ctx.counters
    cnt[C["flush_requests"]] += 1
    t0 = time.perf_counter_ns()
    seqs = ctx.my_seq
    # kvm_make_request()'s smp_wmb(): what the caller stored before the request
    # (v4's dirty = 0, a zap) is visible before any part of the request, seq
    # included; pairs with mb() in serve_requests() after clearing the flag
    mm.wmb()
    for t in targets:
        seqs[t] += 1
        mm.store(ctx.req_seq_addr(t, me), seqs[t])
    mm.wmb()  # seq before flag: pairs with mb() in serve_requests() after clearing the flag
    for t in targets:
        mm.store(ctx.a_flag[t], 1)
    mm.mb()  # flag before mode load: pairs with mb() in vcpu.enter_guest() after mode = IN_GUEST
    wait = []
    for t in targets:
        if t == me:
            continue  # our own request is served before we next enter guest mode
        if ctx.params.requests == "2009":
            # every loaded vCPU: 2009's make_all_cpus_request() skipped vcpu->cpu == -1 (never loaded:
            # the flag is served at its first entry; pairs with vcpu.load()); here a halted vCPU too
            send = wake or (mm.load(ctx.a_loaded[t]) and not mm.load(ctx.a_halted[t]))
            if send:
                mm.cmpxchg(ctx.a_mode[t], IN_GUEST_MODE, EXITING_GUEST_MODE)
            must_wait = send
        else:
            m = mm.load(ctx.a_mode[t])
            if m == IN_GUEST_MODE:
                m = mm.cmpxchg(ctx.a_mode[t], IN_GUEST_MODE, EXITING_GUEST_MODE)
            send = m == IN_GUEST_MODE  # we moved it to EXITING: we kick it
            if not send and m != EXITING_GUEST_MODE and wake and mm.load(ctx.a_halted[t]):
                send = True  # a wake-up request for a halted vCPU
            # EXITING: someone already kicked it, but it has not acked yet;
            # outside guest mode: it serves the request on entry
            must_wait = send or m == EXITING_GUEST_MODE
        if send:
            ctx.waits.kick(ctx, t)  # the IPI
            cnt[C["ipis_sent"]] += 1
        else:
            cnt[C["ipis_avoided"]] += 1
        if must_wait:
            wait.append(t)
    ctx.ev(ev.FLUSH_SENT, len(targets), cnt[C["ipis_sent"]])
    ctx.point("ipi.after_kick")
    if wait:
        wait_acks(ctx, wait)
        ctx.ev(ev.FLUSH_ACKED)
        cnt[C["acks_waited"]] += len(wait)
        ctx.record_latency(time.perf_counter_ns() - t0)


def _missing(ctx, targets):
    mm = ctx.mm
    me = ctx.pid_index
    return [t for t in targets if mm.load(ctx.ack_seq_addr(t, me)) < ctx.my_seq[t]]


def wait_acks(ctx, targets) -> None:
    """Spin briefly, then block with a timeout, until every target acked."""
    mm = ctx.mm
    me = ctx.pid_index
    missing = _missing(ctx, targets)
    if not missing:
        return
    waits = ctx.waits

    def acked(took) -> bool:  # took: an ackwake post, a mere wake-up
        nonlocal missing
        missing = _missing(ctx, missing)
        return not missing

    if waits.spin(ctx, acked, ctx.exit_poll):  # 2009: requesters ack each other while they wait
        return

    def acked_mb(took) -> bool:
        mm.mb()  # waiting flag before ack loads: pairs with mb() in serve_requests() after the acks
        return acked(took)

    waiting = ctx.a_ack_waiting[me]
    mm.store(waiting, 1)
    try:
        # the first missing ack's word (ack_seq[t][me], written only by t); ackwake rings after an ack
        if not waits.wait_until(ctx, "wait.ack", acked_mb,
                                watch=lambda: (ctx.ack_seq_addr(missing[0], me),) + ctx.poll_words,
                                sem=ctx.ackwake[me], bell=True, poll=ctx.exit_poll,
                                timeout=ctx.params.ack_timeout, slice_s=0.005):
            t = missing[0]
            raise AckTimeout(
                f"vcpu {t} did not ack flush {ctx.my_seq[t]} from cpu {me} "
                f"within {ctx.params.ack_timeout} s"
            )
    finally:
        mm.store(waiting, 0)


def flush_all_cpus(ctx, include_self: bool = True) -> None:
    """kvm_flush_remote_tlbs()' request part: every vCPU, self included."""
    me = ctx.pid_index
    targets = [t for t in range(ctx.n_vcpus) if include_self or t != me]
    make_request(ctx, targets)
    ctx.counters[C["remote_flushes"]] += 1


def serve_requests(ctx, flush_tlb, kick) -> bool:
    """vCPU side: if a request is pending, flush and ack.  True if it did.

    ``flush_tlb``: flushes the private TLB and clears its shared mirror.
    """
    mm = ctx.mm
    me = ctx.pid_index
    flag = ctx.a_flag[me]
    if not mm.load(flag):
        return False
    mm.store(flag, 0)
    mm.mb()  # clear before reading seqs: pairs with wmb() in make_request() (seq before flag)
    base = ctx.req_seq_addr(me, 0)
    snap = [mm.load(base + r) for r in range(ctx.n_req)]
    flush_tlb()  # the TLB flush itself, mirror cleared before the acks below
    ctx.ev(ev.SERVED)
    abase = ctx.ack_seq_addr(me, 0)
    served = []
    for r, s in enumerate(snap):
        if mm.load(abase + r) != s:
            mm.store(abase + r, s)
            served.append(r)
    mm.mb()  # acks before ack_waiting loads: pairs with mb() in wait_acks()
    for r in served:
        if r != me and mm.load(ctx.a_ack_waiting[r]):
            ctx.ackwake[r].release()
    consume_kicks(ctx, kick)
    return True


def consume_kicks(ctx, kick) -> None:
    """Take every pending kick: each semaphore count is one IPI delivered to us."""
    n = 0
    while kick.value > 0:
        try:
            kick.acquire(0)
            n += 1
        except Exception:
            break
    ctx.counters[C["ipis_received"]] += n


__all__ = [
    "make_request",
    "wait_acks",
    "flush_all_cpus",
    "serve_requests",
    "consume_kicks",
    "OUTSIDE_GUEST_MODE",
    "IN_GUEST_MODE",
    "EXITING_GUEST_MODE",
]
