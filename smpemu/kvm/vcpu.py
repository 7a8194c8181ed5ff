"""A vCPU: one OS process alternating guest mode and exits.

Why it exists: guest mode is where TLBs are used and where kicks arrive;
exits (shadow faults, invlpg, cr3 writes) are where the MMU runs.  The step
loop is the hot path: a guest access is a poll of the request flag (the
"interrupt window"), a dict lookup in the private TLB, and the oracle's two
inline checks; a miss walks the shared shadow table and may exit to the MMU.
"""

from __future__ import annotations


from smpemu.kvm import events as ev
from smpemu.kvm import ipi
from smpemu.kvm import spte as S
from smpemu.errors import AbortError
from smpemu.kvm.guest import GuestKernel
from smpemu.kvm.mmu import FAULT_RETRY, GUEST_PF, MMU
from smpemu.kvm.oracle import STALE_ACCESS, STALE_WRITE
from smpemu.kvm.points import I_FILL
from smpemu.kvm.layout import C, EXITING_GUEST_MODE, IN_GUEST_MODE, OUTSIDE_GUEST_MODE
from smpemu.kvm.spte import GEN_MASK
from smpemu.kvm.tlb import E_FILL_NS, E_GEN, E_GFN, E_PFN, TLB
from smpemu.kvm.waits import try_take


_I_STEPS, _I_HITS, _I_MISSES = C["steps"], C["tlb_hits"], C["tlb_misses"]


class StopRun(Exception):
    """The run is over for this vCPU (duration, iterations or stop word)."""


class Pv:
    """Issue 19's parts of one vCPU (``VCPU.pv``): its steal time (kvm/steal.py),
    its guest shootdowns (kvm/shootdown.py), the host scheduler's end
    (harness/hostsched.py, or None)."""

    __slots__ = ("steal", "shootdowns", "host_sched")

    def __init__(self, steal=None, shootdowns=None, host_sched=None):
        self.steal = steal
        self.shootdowns = shootdowns
        self.host_sched = host_sched


class VCPU:
    # issue 19's hooks: class attributes, set on the instance only by the runs
    # that use them (harness/bodies.py): an instance keeps as few attributes
    # as before, and access() its speed (CPython keeps up to 30 of them inline)
    pre_entry = None  # a request served in vcpu_enter_guest: record_steal_time (kvm/steal.py)
    post_entry = None  # an interrupt injected at entry: the guest's flush handler (kvm/shootdown.py)
    pv = None  # Pv: steal time, guest shootdowns, the host scheduler

    def __init__(self, ctx, mmu, tlb, max_steps: int = 0):
        self.ctx = ctx
        self.mmu = mmu
        self.tlb = tlb
        self.mm = ctx.mm
        self.W = ctx.arena.words
        me = ctx.pid_index
        self.me = me
        self.a_flag = ctx.a_flag[me]
        self.a_mode = ctx.a_mode[me]
        self.a_halted = ctx.a_halted[me]
        self.a_spte = mmu.a_spte
        self.a_gen = mmu.a_gen
        self.a_wp = mmu.a_wp_time
        self.clock = ctx.clock
        self.kick = ctx.kick[me]
        self.max_steps = max_steps
        # tlb_hits = steps - misses - exit_steps, derived at publish(): one
        # counter less on the hot path
        self.steps = self.misses = self.exit_steps = 0
        self.in_guest = False
        self.table = 0
        ctx.handle_requests = self.serve
        self.oracle = ctx.oracle
        self.fill_point = False
        self._pc = ctx.point_counts
        self._load = self.mm.load  # bound once: the native model binds memoryview.__getitem__
        self._tlb_get = tlb.map.get  # the TLB only ever clears this dict, never replaces it
        tlb.gen_base = mmu.a_gen  # entries carry the address of their pfn's generation word
        self.next_check = 1  # the first guest step is a scheduling point (periodic)
        self._counters_row = ctx.arena.np["counters"][me]  # publish() runs at every periodic()

    # -- requests --------------------------------------------------------------
    def flush_tlb(self) -> None:
        self.tlb.flush_all()
        self.ctx.counters[C["local_flushes"]] += 1

    def serve(self) -> bool:
        return ipi.serve_requests(self.ctx, self.flush_tlb, self.kick)

    def request_local_flush(self) -> None:
        """KVM_REQ_TLB_FLUSH on ourselves: served before we re-enter."""
        ctx = self.ctx
        ctx.my_seq[self.me] += 1
        self.mm.store(ctx.req_seq_addr(self.me, self.me), ctx.my_seq[self.me])
        self.mm.wmb()  # seq before flag: pairs with mb() in ipi.serve_requests()
        self.mm.store(self.a_flag, 1)

    # -- guest mode transitions --------------------------------------------------
    def load(self) -> None:
        """vcpu_load() the first time: the vCPU has a CPU (KVM: vcpu->cpu != -1 from now on), so a
        2009 requester, which skipped vCPUs never loaded, waits for its ack from now on.  A requester
        that still reads ``loaded`` as 0 skips it, and our first enter_guest() serves its request: its
        flag store, mb(), loaded load (ipi.make_request) pair with our loaded store, then mode store,
        mb(), flag load in enter_guest()."""
        self.mm.store(self.ctx.a_loaded[self.me], 1)

    def enter_guest(self) -> None:
        """vcpu_enter_guest(): mode = IN_GUEST_MODE, mb(), check requests."""
        mm = self.mm
        while True:
            self.serve()
            if self.pre_entry is not None:
                self.pre_entry()  # KVM_REQ_STEAL_UPDATE: record_steal_time
            mm.store(self.a_mode, IN_GUEST_MODE)
            mm.mb()  # mode before requests: pairs with mb() in ipi.make_request()
            # (and before post_entry looks at a pending guest interrupt: pairs with mb() in shootdown.inject())
            if not mm.load(self.a_flag):
                break
            mm.store(self.a_mode, OUTSIDE_GUEST_MODE)  # a request raced in: serve it first
        self.in_guest = True
        if self.post_entry is not None:
            self.post_entry()

    def exit_guest(self) -> None:
        """Leave guest mode; a kick that raced with the exit is taken now.

        A requester that read us in guest mode waits for our ack.  In KVM the
        IPI is acknowledged as soon as the CPU leaves guest mode (the
        interrupt is taken on the way out), even if the vCPU then spins on
        mmu_lock; here the pending request is served at the exit, or a
        requester holding mmu_lock and a vCPU waiting for it would deadlock.
        """
        mm = self.mm
        mm.store(self.a_mode, OUTSIDE_GUEST_MODE)
        mm.mb()  # mode before the request load: pairs with mb() in ipi.make_request() before its mode loads
        self.in_guest = False
        if mm.load(self.a_flag):
            self.serve()

    def kicked(self) -> bool:
        """The cheap poll between guest steps: did a requester kick us?

        Only a kick (mode moved to EXITING by a requester's cmpxchg, then the
        semaphore post) interrupts guest mode; a request without a kick is
        not seen until the next entry, as on real hardware.
        """
        return self.mm.load(self.a_mode) == EXITING_GUEST_MODE

    def take_interrupt(self) -> None:
        """A kick noticed between guest steps: exit, serve requests, re-enter."""
        self.exit_guest()
        self.enter_guest()

    # -- guest steps ------------------------------------------------------------------
    def access(self, slot: int, write: bool) -> bool:
        """One guest memory access.  False: the guest pte is absent (#PF).

        The hot path: locals bound once in __init__, tuple fields by number
        (0 pfn, 1 gen, 2 writable, 3 gfn, 4 fill_ns, 6 address of the pfn's
        generation word: see smpemu.kvm.tlb), and the
        oracle's two checks inlined, calling into the oracle only on a failure.
        """
        self.steps += 1
        if self.steps >= self.next_check:
            self.periodic()
        if self._load(self.a_mode) == EXITING_GUEST_MODE:  # == self.kicked(), inlined
            self.take_interrupt()  # kicked: the interrupt window between two steps
        e = self._tlb_get(slot)
        if e is not None and (write is False or e[2]):
            W = self.W
            # oracle checks 2 and 3 (kvm/oracle.py), inlined: generation, write after sync
            if (W[e[6]] & GEN_MASK) != e[1] or (write and W[self.a_wp + e[3]] > e[4]):
                self._check(slot, e, write)
            return True
        self.misses += 1
        return self._walk(slot, write)

    def _check(self, slot, e, write) -> None:
        """Oracle checks 2 (STALE_ACCESS) and 3 (STALE_WRITE), see kvm/oracle.py:
        on a TLB hit that failed the inlined test, and on every fill."""
        W = self.W
        cur = W[self.a_gen + e[E_PFN]] & S.GEN_MASK
        if cur != e[E_GEN]:
            self.oracle.record(STALE_ACCESS, self.me, slot, e[E_GFN], e[E_PFN], e[E_GEN], cur, e[E_FILL_NS])
        if write and W[self.a_wp + e[E_GFN]] > e[E_FILL_NS]:
            self.oracle.record(STALE_WRITE, self.me, slot, e[E_GFN], e[E_PFN], e[E_GEN], cur, e[E_FILL_NS])

    def _walk(self, slot: int, write: bool) -> bool:
        """Hardware page walk of the shadow table; exit to the MMU on a miss."""
        mm = self.mm
        while True:
            fill_ns = self.clock.fill()  # before the spte load: see oracle check 3
            s = mm.load(self.a_spte + slot)
            if s & S.PRESENT and (not write or s & S.WRITABLE):
                if self.fill_point:
                    # inside the hardware walk: no IPI is taken here, so no
                    # ack can fall between the spte load and the fill
                    self.ctx.point("tlb.fill", poll=False)
                else:
                    self._pc[I_FILL] += 1  # the point is reached (coverage), nothing attached to it
                e = self.tlb.fill(slot, s, fill_ns)
                if self.ctx.trace is not None:
                    self.ctx.trace(ev.TLB_FILL, slot, e[E_PFN])
                self._check(slot, e, write)
                return True
            self.exit_guest()
            r = self.mmu.shadow_fault(slot, write)
            self.enter_guest()
            if r == GUEST_PF:
                return False
            if r == FAULT_RETRY:
                self.ctx.point("fault.retry")
                self._wait_invalidation()

    def _wait_invalidation(self) -> None:
        """Re-executing the faulting access while an invalidation is running:
        stay in guest mode taking interrupts (the invalidation's flush may be
        waiting for *our* ack) and sleep a little instead of spinning, so that
        oversubscribed cores go to the CPUs that must ack."""
        ctx = self.ctx
        mm = self.mm
        a_ncount = self.mmu.a_ncount
        seq = mm.load(self.mmu.a_nseq)

        def interrupts() -> None:
            if self.kicked():
                self.take_interrupt()
            if self.pv is not None and self.pv.host_sched is not None:
                self.pv.host_sched.tick(self)  # in guest mode: the host's tick can preempt us

        while not ctx.waits.wait_until(ctx, "wait.invalidation", lambda took: not mm.load(a_ncount),
                                       watch=(a_ncount, self.a_mode), poll=interrupts,
                                       timeout=ctx.params.ack_timeout, slice_s=50e-6):
            if ctx.stopping():
                raise StopRun()
            if mm.load(self.mmu.a_nseq) != seq:
                # invalidations keep completing (several reclaimers can keep
                # the count up back to back): slow, not stuck
                seq = mm.load(self.mmu.a_nseq)
                continue
            raise AbortError(
                f"vcpu {self.me}: mmu notifier invalidation still running after "
                f"{ctx.params.ack_timeout} s: it did not ack, or is waiting for a vCPU that "
                f"does not (pid holding mmu_lock: {self.W[ctx.a_mmu_holder]})"
            )

    # -- exits the guest asks for ---------------------------------------------------------
    def _exit_step(self) -> None:
        """An exit is a guest step too: none past --iterations."""
        if self.max_steps and self.steps >= self.max_steps:
            self.periodic(pending=0)  # raises StopRun
        self.steps += 1

    def invlpg(self, slot: int) -> None:
        self._exit_step()
        self.exit_steps += 1
        self.exit_guest()
        self.mmu.invlpg(slot)
        self.request_local_flush()
        self.enter_guest()

    def write_cr3(self, table: int, pt_gfns) -> None:
        self._exit_step()
        self.exit_steps += 1
        self.exit_guest()
        self.ctx.counters[C["cr3_writes"]] += 1
        self.tlb.flush_non_global()
        self.mmu.sync_children(pt_gfns)
        self.table = table
        self.enter_guest()

    def halt(self, timeout: float, wake_sem=None) -> bool:
        """HLT: outside guest mode and not loaded, blocked until kicked (or
        ``wake_sem`` is posted) or ``timeout``.  A pending request does not
        block (kvm_vcpu_check_block): it is served on re-entry and the vCPU
        halts again.  True if woken, False on timeout or stop."""
        self._halt_enter()
        ctx = self.ctx
        sem = wake_sem if wake_sem is not None else self.kick
        woke = False

        def woken(took) -> bool:
            nonlocal woke
            if took or try_take(sem):
                woke = True
                if sem is self.kick:
                    ctx.counters[C["ipis_received"]] += 1
            return woke or ctx.stopping()

        try:
            # an untimed wait (a script event) is bounded, but its end is an error;
            # a timed HLT simply returns after the timer
            ctx.waits.wait_until(ctx, "halt", woken, sem=sem, poll=self._halt_check_block, timeout=timeout,
                                 timer=wake_sem is None, slice_s=0.05)
        finally:
            self._halt_leave()
        return woke

    def _halt_enter(self) -> None:
        mm = self.mm
        self.exit_guest()
        mm.store(self.a_halted, 1)
        mm.mb()  # halted before the request check: pairs with mb() in ipi.make_request()
        if self.pv is not None and self.pv.host_sched is not None:
            self.pv.host_sched.release(self)  # a blocked vCPU thread gives its pCPU up

    def _halt_leave(self) -> None:
        if self.pv is not None and self.pv.host_sched is not None:
            self.pv.host_sched.acquire(self)  # runnable again: it needs a pCPU to go on
        self.mm.store(self.a_halted, 0)
        self.enter_guest()  # serves whatever is pending

    def _halt_check_block(self) -> None:
        """Just before each block: a pending request (or guest interrupt) does
        not block: serve it, halt again."""
        if self.mm.load(self.a_flag) or (self.pv is not None and self.pv.shootdowns.irq_pending()):
            self._halt_leave()
            self._halt_enter()

    # -- bookkeeping ---------------------------------------------------------------------------
    def publish(self) -> None:
        c = self.ctx.counters
        c[_I_STEPS] = self.steps
        c[_I_HITS] = self.steps - self.misses - self.exit_steps
        c[_I_MISSES] = self.misses
        self._counters_row[:] = c

    def periodic(self, pending: int = 1) -> None:
        """``pending``: steps counted but not yet taken (access() counts its
        step first), so that --iterations N stops after exactly N steps."""
        ctx = self.ctx
        self.next_check = self.steps + ctx.waits.step_every
        if self.max_steps:
            self.next_check = min(self.next_check, self.max_steps + pending)
        self.publish()
        ctx.check_alive()
        if ctx.stopping():
            raise StopRun()
        if self.max_steps and self.steps - pending >= self.max_steps:
            self.steps -= pending  # the pending step is not taken
            self.publish()
            raise StopRun()
        ctx.waits.point(ctx, "step")  # a guest step is a scheduling point
        if self.pv is not None and self.pv.host_sched is not None:
            self.pv.host_sched.tick(self)  # the host's timer tick: preempted here if its time is up

    def finish(self) -> None:
        """Leave guest mode for good: no requester may wait for us any more."""
        mm = self.mm
        mm.store(self.a_mode, OUTSIDE_GUEST_MODE)
        mm.store(self.a_halted, 1)
        mm.mb()
        self.serve()
        # a kick can land after we noticed its request by polling: count it
        ipi.consume_kicks(self.ctx, self.kick)
        mm.drain()
        self.publish()


def build_vcpu(ctx, spec):
    """This process's vCPU as the run's config says: (cpu, guest kernel).

    Not yet in guest mode.  Used by vCPU processes and by the benchmarks, so
    both measure the same object.
    """
    cfg = spec.cfg
    L = spec.guest
    me = ctx.pid_index
    mmu = MMU(ctx, L)
    views = ctx.arena.np  # the dict, not Arena.__getattr__ (smpemu check builds vCPUs once per schedule)
    tlb = TLB(cfg.tlb_size, views["tlb_mirror"][me], views["tlb_mirror_slot"][me], L.n_vpn)
    cpu = VCPU(ctx, mmu, tlb, cfg.iterations or 0)
    cpu.fill_point = "tlb.fill" in cfg.delays
    cpu.spec = spec
    return cpu, GuestKernel(cpu, L)


__all__ = ["VCPU", "StopRun", "Pv", "build_vcpu"]
