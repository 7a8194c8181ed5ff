"""Guest TLB shootdowns: native IPIs, or the paravirtual flush; and the guest's oracle.

Why it exists: a guest that changes a pte of a process whose threads run on
other vCPUs must flush their TLBs before it may reuse the frame.  Linux
(arch/x86/mm/tlb.c) bumps the mm's ``tlb_gen``, sends a call-function IPI
to every other CPU of ``mm_cpumask`` and waits until each one ran
``flush_tlb_func`` and acked.  Each IPI is a guest exit: the host injects the
interrupt into the target and kicks it; a target the host has preempted acks
only once the host runs it again.  The paravirtual flush (``--guest-flush
pv``, 858a43aae236/f38a7b75267f, 4.16) skips such targets: it cmpxchg's
KVM_VCPU_FLUSH_TLB into their steal-time ``preempted`` byte and the host
flushes them at their next entry (``kvm/steal.py``).

One ``Shootdowns`` per vCPU: the initiator (``munmap`` -> ``flush_range``),
the flush interrupt handler (``interrupts``, run after each entry, as an
injected interrupt is), and oracle check 4 (``_access``: see kvm/oracle.py).

Protocol (words in guest memory, through the memory model):

    initiator i                                    target t
    pte cleared (GuestKernel.set_gpte)
    gen = atomic inc tlb_gen[mm]        (I1)       (full barrier: pte before gen)
    [local flush first: --local-flush first, <= 5.12]
    PV: for each t: s = READ_ONCE(preempted[t])  (G1, kvm/steal.py)
          if s & PREEMPTED and cmpxchg(.., s|FLUSH) == s: skip t   (G2)
    csd[t][i] = (table, slot, gen); wmb(); seq  (I2)
    wmb()                                (I3)
    exit; the host: irr[t] = 1; mb()     (H1)  ... enter_guest(): mode = IN; mb() (B1)
      if mode[t] == IN: cmpxchg EXITING, kick           if xchg(irr[t], 0):  (T1)
      (halted: wake it)                                    seq = csd[t][i].seq; rmb()
    [local flush now: concurrent, >= 5.13, 4ce94eabac16]      flush_tlb_func(...)
    wait until ack[t][i] >= seq for every t              ack[t][i] = seq; mb() (T2)
      (waiting[i] = 1; mb())             (I4)            if waiting[i]: ring i's bell
    the shootdown returned: stamp the frame, free it

``flush_tlb_func`` (5.14's): mm_gen = tlb_gen[mm]; if the vCPU's local
generation equals it, nothing to do (another flush caught it up); one page
(invlpg, trapped: FNAME(invlpg) zaps the spte) when exactly one generation is
missing and it is this request's; else everything (a cr3 reload: trapped,
sync + flush, ``kvm/shadow_sync.py``); then local = mm_gen.

Simplifications (docs/pv-flush.md): every vCPU of the mm is a target (no
lazy-TLB CPUs: none idles in the workload); one exit sends the IPIs of one
shootdown (x2APIC / PV send-IPI style); a vCPU that finished its run is
"offline": out of every mask, and a wait for it ends.
"""

from __future__ import annotations

from smpemu.errors import AckTimeout
from smpemu.kvm import events as ev
from smpemu.kvm import shadow_sync
from smpemu.kvm.layout import C, EXITING_GUEST_MODE, G, IN_GUEST_MODE, OUTSIDE_GUEST_MODE
from smpemu.kvm.oracle import GUEST_STALE
from smpemu.kvm.steal import FLUSH_TLB, PREEMPTED, StealTime
from smpemu.kvm.tlb import E_FILL_NS, E_GEN, E_GFN, E_PFN, E_WR
from smpemu.kvm.vcpu import Pv, StopRun

GONE, WAITING = 0, 1  # words of gcpu[v]
CSD_SEQ, CSD_TABLE, CSD_SLOT, CSD_GEN = range(4)  # words of gcsd[t][i]
FLUSH_SKIP, FLUSH_PARTIAL, FLUSH_FULL = 0, 1, 2

# trace event codes (harness/trace.py EVENTS)


def inject(ctx, t: int) -> bool:
    """The host's side of a guest IPI to vCPU t (kvm_apic_set_irq +
    kvm_vcpu_kick): mark it pending, then kick t out of guest mode, or wake
    it if halted.  True if t was kicked or woken."""
    mm = ctx.mm
    irr = ctx.arena.layout["girq"].addr(t, 0)
    mm.store(irr, 1)
    mm.mb()  # H1: irr before the mode load: pairs with mb() (B1) in VCPU.enter_guest() before T1
    m = mm.load(ctx.a_mode[t])
    if m == IN_GUEST_MODE:
        if mm.cmpxchg(ctx.a_mode[t], IN_GUEST_MODE, EXITING_GUEST_MODE) != IN_GUEST_MODE:
            return False  # it left guest mode meanwhile, or another kick came first: it sees irr at entry
    elif m != OUTSIDE_GUEST_MODE or not mm.load(ctx.a_halted[t]):
        return False  # already kicked, or outside guest mode and running: it sees irr before it enters
    ctx.waits.kick(ctx, t)  # the IPI (or the wake-up of a halted vCPU)
    return True


class Shootdowns:
    """One vCPU's guest TLB shootdowns: initiator, flush handler, oracle check 4."""

    def __init__(self, cpu, guest, cfg):
        ctx = cpu.ctx
        lay = ctx.arena.layout
        self.cpu = cpu
        self.guest = guest
        self.ctx = ctx
        self.mm = ctx.mm
        self.W = ctx.arena.words
        self.L = guest.L
        me = self.me = cpu.me
        self.N = ctx.n_vcpus
        self.method = cfg.guest_flush
        self.concurrent = cfg.local_flush == "concurrent"
        self.a_irr = lay["girq"].addr(me, 0)
        self.gcpu = lay["gcpu"]
        self.gcsd = lay["gcsd"]
        self.gack = lay["gack"]
        self.gmm = lay["gmm"]
        self.steal = lay["steal"]
        self.a_free = lay["gfree_ns"].offset
        self.stats = ctx.arena.np["gstats"][me]
        self.local_gen: dict[int, int] = {}  # table -> cpu_tlbstate.ctxs[].tlb_gen
        self.seq = [0] * self.N  # [t]: my last request to t
        self.seen = [0] * self.N  # [i]: the last request of initiator i I handled
        self.irq_off = 0  # > 0: interrupts disabled (the handler itself, a local flush)
        self.lat_ns: list[int] = []  # shootdown latencies, published at exit
        self.reported: set = set()
        self.loaded: dict = {}  # slot -> (its TLB entry, a time after the entry's spte was read)
        inner = cpu.access
        cpu.access = self._access(inner)  # oracle check 4 at every guest access of this vCPU
        cpu.post_entry = self.interrupts  # an injected interrupt runs after entry

    # -- guest memory words -------------------------------------------------------
    def _steal_addr(self, t: int) -> int:
        return self.steal.addr(t, 0)

    def _gen_addr(self, table: int) -> int:
        return self.gmm.addr(table - 1, 0)

    def mask(self, table: int) -> list[int]:
        """mm_cpumask: the vCPUs running threads of guest process ``table``
        (the finished ones are offline)."""
        W = self.W
        return [v for v in range(self.N) if self.L.home_table(v) == table and not W[self.gcpu.addr(v, GONE)]]

    # -- the initiator ---------------------------------------------------------------
    def munmap(self, slot: int) -> bool:
        """Guest munmap of one page of this vCPU's process: clear the pte,
        shoot the page down on every vCPU of the mm, then free the frame."""
        gfn = self.guest.gfn_at(slot)
        if gfn < 0:
            return False
        self.guest.set_gpte(slot, -1)
        self.flush_range(slot // self.L.n_vpn, slot)
        # the shootdown returned: from now on no vCPU may reach gfn through a
        # TLB entry filled before this stamp (oracle check 4, at access)
        self.W[self.a_free + gfn] = self.ctx.clock.sync()  # a later fill reads a larger time
        self.ctx.ev(ev.GUEST_FREED, gfn)
        self.guest.free_gfn(gfn)
        return True

    def flush_range(self, table: int, slot: int) -> None:
        """flush_tlb_mm_range() of one page of guest process ``table``."""
        ctx = self.ctx
        mm = self.mm
        st = self.stats
        t0 = ctx.clock.stamp()
        preemptions = ctx.counters[C["preempt_exits"]]
        a_gen = self._gen_addr(table)
        while True:  # I1: inc_mm_tlb_gen(), atomic64_inc_return: a full barrier after the pte change
            gen = mm.load(a_gen) + 1
            if mm.cmpxchg(a_gen, gen - 1, gen) == gen - 1:
                break
        targets = [t for t in self.mask(table) if t != self.me]
        if not self.concurrent:
            self._local(table, slot, gen)  # <= 5.12: the local flush before the remote ones
        send = self._pv_trim(targets) if self.method != "native" else self._peek(targets)
        self._send(send, table, slot, gen)
        # counted with its IPIs, once they are sent, in one place: a run that
        # stops mid-shootdown counts both or neither (ipis_per_shootdown is exact)
        st[G["shootdown_ipis"]] += len(send)
        st[G["shootdowns"]] += 1
        st[G["shootdown_targets"]] += len(targets)
        self._point("shootdown.ipis_sent")
        if self.concurrent:
            self._local(table, slot, gen)  # 4ce94eabac16 (5.13): the local flush beside the remote ones
        self._wait(send)
        ns = ctx.clock.stamp() - t0
        self.lat_ns.append(ns)
        if ctx.counters[C["preempt_exits"]] != preemptions:
            st[G["shootdowns_preempted"]] += 1
        ctx.ev(ev.SHOOTDOWN_DONE, slot, ns // 1000)

    def _point(self, name: str) -> None:
        """A protocol point in guest mode: paused there (a test), the vCPU
        still takes the host's kicks, as hardware exits on them whatever the
        guest is doing (a requester may be waiting for this vCPU's ack)."""
        ctx = self.ctx
        ctx.exit_poll = self._take_kicks  # what the pause polls (kvm/points.py), for this point only
        try:
            ctx.point(name)
        finally:
            del ctx.exit_poll  # back to ProcContext.exit_poll

    def _take_kicks(self) -> None:
        cpu = self.cpu
        if cpu.kicked():
            cpu.take_interrupt()

    def _local(self, table, slot, gen) -> None:
        self.irq_off += 1  # flush_tlb_func_local runs with interrupts off
        try:
            self.flush_tlb_func(table, slot, gen)
        finally:
            self.irq_off -= 1
        # local_irq_enable(): an interrupt that came meanwhile is taken now (it
        # may be another initiator's, waiting for us while we wait for it)
        self.interrupts()

    def _peek(self, targets) -> list[int]:
        """native: every target gets the IPI.  For the statistics only (the
        native guest does not look): how many the host had preempted."""
        W = self.W
        self.stats[G["targets_preempted"]] += sum(1 for t in targets if W[self._steal_addr(t)] & PREEMPTED)
        return targets

    def _pv_trim(self, targets) -> list[int]:
        """kvm_flush_tlb_multi(): drop the preempted targets, leaving FLUSH for the host."""
        ctx = self.ctx
        mm = self.mm
        st = self.stats
        keep = []
        for t in targets:
            a = self._steal_addr(t)
            s = mm.load(a)  # G1: READ_ONCE(src->preempted)
            if s & PREEMPTED:
                st[G["targets_preempted"]] += 1
                self._point("pvflush.cmpxchg")
                # G2: try_cmpxchg: pairs with the host's xchg R1 at t's entry (kvm/steal.py):
                # either R1 comes later and sees FLUSH, or it came first and this fails
                ok = mm.cmpxchg(a, s, s | FLUSH_TLB) == s
                ctx.ev(ev.PV_CMPXCHG, t, int(ok))
                if ok:
                    st[G["shootdown_ipis_avoided"]] += 1
                    continue
            keep.append(t)
        return keep

    def _send(self, targets, table, slot, gen) -> None:
        """Queue a request for each target, then one exit: the host injects and kicks."""
        if not targets:
            return
        mm = self.mm
        me = self.me
        for t in targets:
            self.seq[t] += 1
            a = self.gcsd.addr(t, me, 0)
            mm.store(a + CSD_TABLE, table)
            mm.store(a + CSD_SLOT, slot)
            mm.store(a + CSD_GEN, gen)
            mm.wmb()  # I2: the request before its seq: pairs with rmb() in _handle()
            mm.store(a + CSD_SEQ, self.seq[t])
        mm.wmb()  # I3: the requests before the IPIs: pairs with the target's xchg (T1) before it reads them
        cpu = self.cpu
        cpu.exit_guest()  # the ICR write traps: the host sends the IPIs
        ctx = self.ctx
        for t in targets:
            inject(ctx, t)
            ctx.ev(ev.GUEST_IPI, t)
        cpu.enter_guest()

    def _wait(self, targets) -> None:
        """smp_call_function_many's wait: spin in guest mode, interrupts on,
        until every target acked (a finished vCPU is offline: no ack)."""
        if not targets:
            return
        ctx = self.ctx
        mm = self.mm
        cpu = self.cpu
        me = self.me
        W = self.W
        pending = list(targets)

        def acked(took) -> bool:
            nonlocal pending
            pending = [t for t in pending if mm.load(self.gack.addr(t, me)) < self.seq[t]
                       and not W[self.gcpu.addr(t, GONE)]]
            return not pending or ctx.stopping()

        def acked_mb(took) -> bool:
            mm.mb()  # I4: waiting before the ack loads: pairs with mb() (T2) after the target's ack
            return acked(took)

        hs = cpu.pv.host_sched  # harness/hostsched.py, or None

        def poll() -> None:  # interrupts on: flush requests to us are served while we wait
            self._take_kicks()
            if hs is not None:
                hs.tick(cpu)  # the host's tick: a spinning vCPU is preemptible

        waits = ctx.waits
        if not waits.spin(ctx, acked, poll):
            a_wait = self.gcpu.addr(me, WAITING)
            mm.store(a_wait, 1)
            try:
                while not waits.wait_until(ctx, "wait.guest_ack", acked_mb,
                                           watch=lambda: (self.gack.addr(pending[0], me), cpu.a_mode),
                                           sem=ctx.ackwake[me], bell=True, poll=poll,
                                           timeout=ctx.params.ack_timeout, slice_s=100e-6):
                    if hs is not None and hs.moving():
                        continue  # the host keeps scheduling: the target is waiting for a pCPU
                    raise AckTimeout(f"vcpu {pending[0]} did not ack guest flush {self.seq[pending[0]]} "
                                     f"from vcpu {me} within {ctx.params.ack_timeout} s")
            finally:
                mm.store(a_wait, 0)
        if ctx.stopping():
            raise StopRun()  # the run is over: targets stop acking

    # -- the target ----------------------------------------------------------------------
    def irq_pending(self) -> bool:
        """For HLT: a pending flush interrupt makes the vCPU runnable."""
        return bool(self.mm.load(self.a_irr))

    def interrupts(self) -> None:
        """After an entry (``cpu.post_entry``): run the flush handler for every
        request pending (an interrupt injected at entry)."""
        if self.irq_off:
            return
        mm = self.mm
        if not mm.load(self.a_irr):  # after B1 in enter_guest: pairs with H1
            return
        self.irq_off += 1
        try:
            while mm.xchg(self.a_irr, 0):  # T1: take the interrupt (a full barrier)
                self.stats[G["irqs"]] += 1
                self._handle()
        finally:
            self.irq_off -= 1

    def _handle(self) -> None:
        """flush_smp_call_function_queue(): each initiator's pending request."""
        mm = self.mm
        me = self.me
        ctx = self.ctx
        for i in range(self.N):
            a = self.gcsd.addr(me, i, 0)
            seq = mm.load(a + CSD_SEQ)
            if seq == self.seen[i]:
                continue
            mm.rmb()  # seq before the request: pairs with wmb() (I2)
            kind = self.flush_tlb_func(mm.load(a + CSD_TABLE), mm.load(a + CSD_SLOT), mm.load(a + CSD_GEN))
            ctx.ev(ev.GUEST_HANDLER, i, kind)
            self.seen[i] = seq
            mm.store(self.gack.addr(me, i), seq)  # T2: flushed, then acked
            mm.mb()  # the ack before the waiting flag load: pairs with I4
            if i != me and mm.load(self.gcpu.addr(i, WAITING)):
                ctx.ackwake[i].release()

    def flush_tlb_func(self, table: int, slot: int, new_gen: int) -> int:
        """flush_tlb_func(): catch up with the mm's tlb_gen, one page or all."""
        st = self.stats
        mm_gen = self.mm.load(self._gen_addr(table))
        local = self.local_gen.get(table, 0)
        if local == mm_gen:
            st[G["flushes_skipped"]] += 1
            return FLUSH_SKIP  # already up to date: another flush caught us up
        if new_gen == local + 1 and new_gen == mm_gen:
            st[G["flushes_partial"]] += 1
            self.cpu.invlpg(slot)  # flush_tlb_one_user(): invlpg traps (FNAME(invlpg) zaps the spte)
            kind = FLUSH_PARTIAL
        else:
            st[G["flushes_full"]] += 1
            shadow_sync.reload_cr3(self.cpu)  # flush_tlb_local(): traps, KVM syncs and flushes
            kind = FLUSH_FULL
        self.local_gen[table] = mm_gen
        return kind

    # -- oracle check 4 ------------------------------------------------------------------
    def _access(self, inner):
        """``VCPU.access`` with oracle check 4 around it (kvm/oracle.py).

        The frame's free stamp is read before the access, and the entry it
        hits is the one seen before.  When that entry was filled is taken
        after its spte was read: an access that fills stamps its entry when
        it returns (``TLB.fill``'s own time is taken before the spte load,
        and the frame may be mapped again, even at the same slot, between
        the two).  An entry whose spte was read before the stamp and that is
        used after it is a translation the shootdown should have removed.
        (A free that lands during the access is not judged; nor an entry
        whose spte read and stamp were split by the OS: never a false
        report, sometimes a miss.)"""
        tlb_get = self.cpu._tlb_get
        W = self.W
        a_free = self.a_free
        loaded = self.loaded
        now = self.ctx.clock.fill  # the oracle's times: ctx.clock (kvm/clock.py)

        def access(slot, write):
            e = tlb_get(slot)
            freed = W[a_free + e[E_GFN]] if e is not None else 0
            ok = inner(slot, write)
            e2 = tlb_get(slot)
            if e2 is not e:
                if e2 is not None:
                    loaded[slot] = (e2, now())  # filled by this access: its spte was read before now
            elif freed and ok and (not write or e[E_WR]):
                rec = loaded.get(slot)
                if freed > (rec[1] if rec is not None and rec[0] is e else e[E_FILL_NS]):
                    self._stale(slot, e)
            return ok

        return access

    def _stale(self, slot, e) -> None:
        key = (slot, e[E_FILL_NS])
        if key in self.reported:
            return  # one record per stale entry
        self.reported.add(key)
        cur = self.W[self.cpu.a_gen + e[E_PFN]]
        self.ctx.oracle.record(GUEST_STALE, self.me, slot, e[E_GFN], e[E_PFN], e[E_GEN], cur, e[E_FILL_NS])

    # -- the end -----------------------------------------------------------------------------
    def finish(self) -> None:
        """This vCPU is done: offline, out of every mask, no wait for its acks."""
        self.W[self.gcpu.addr(self.me, GONE)] = 1


def attach(cpu, guest, cfg) -> Pv:
    """Give a vCPU its steal time (host side) and its guest shootdowns (``cpu.pv``)."""
    cpu.pv = Pv(StealTime(cpu, cfg.guest_flush))
    cpu.pv.shootdowns = Shootdowns(cpu, guest, cfg)
    return cpu.pv


__all__ = ["Shootdowns", "attach", "inject"]
