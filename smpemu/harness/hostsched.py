"""The emulated host scheduler (``--pcpus P --quantum MS``): P pCPUs, time-sliced.

Why it exists: a KVM host preempts vCPU threads, and a preempted vCPU is out
of guest mode (``kvm_sched_out``) and marked preempted in its steal time;
the paravirtual TLB flush and every protocol that looks at ``preempted``
depend on that.  A process cannot hook its own preemption by the OS, so
smpemu schedules its vCPU processes itself: at most P of them hold a pCPU at
any moment; the others are blocked on their own semaphore (a permit), not
spinning and not stopped, so they really do not run.  docs/decisions.md
says why this mechanism and not another.

Shared state (``hsched``, ``hs_rq``, ``hs_state``, ``hs_slot``,
``hs_pcpu``, under ``rq_lock``, a host spinlock written once over
``kvm.locks``): the free pCPUs, a FIFO run queue of vCPUs waiting for one,
each vCPU's state and pCPU.  pCPU k is a core: a vCPU given pCPU k pins its
process to core k of the run's cores (``--cpus``; modulo their number), so
the P running vCPUs never share a core that another pCPU should have.  The
rules, all applied by the vCPU's own process:

- ``start``: take a free pCPU, or queue and block.
- ``tick`` (the host's timer tick, at a guest step (``VCPU.periodic``) and
  in guest-mode waits, the only places a vCPU thread is preemptible here:
  never holding ``mmu_lock``, never inside the emulator's own atomic
  sections): once its quantum is used up and someone waits, the vCPU exits
  guest mode, is scheduled out (``StealTime.sched_out``: PREEMPTED), hands
  its pCPU to the head of the queue, queues itself and blocks; given a pCPU
  back, it is scheduled in (``StealTime.sched_in``: KVM_REQ_STEAL_UPDATE)
  and re-enters.
- ``release``/``acquire``: HLT gives the pCPU up (not preempted: a blocked
  thread is not marked); a woken vCPU needs a pCPU again.
- ``finish``: a finished vCPU hands its pCPU on.

Host processes (the reclaimers) are not subject to the limit.  Under a
controlled schedule (``--schedule``, ``smpemu check``) there is no
scheduler here: its clock is wall time.
"""

from __future__ import annotations

import os
import time

from smpemu.errors import AbortError
from smpemu.kvm.layout import C
from smpemu.kvm.locks import lock, unlock
from smpemu.kvm.vcpu import StopRun
from smpemu.kvm.waits import Lock, try_take

RUNNING, QUEUED, HALTED, DONE = 1, 2, 3, 4  # hs_state[v]
TICK_STEPS = 32  # guest steps between two ticks (a few tens of microseconds)
H_FREE, H_HEAD, H_TAIL, H_SWITCHES, H_HOLDER, H_ACQ = range(6)  # words of hsched


def init(arena, pcpus: int) -> None:
    """The coordinator's set-up: every pCPU free (at most one per vCPU can
    ever be used), the queue empty."""
    n = min(pcpus, arena.hs_pcpu.shape[0])
    arena.hs_pcpu[:n] = range(n - 1, -1, -1)  # a stack: pCPU 0 on top
    arena.hsched[H_FREE] = n


class HostSched:
    """One vCPU process's end of the scheduler (``cpu.pv.host_sched``)."""

    def __init__(self, cpu, spec):
        ctx = cpu.ctx
        lay = ctx.arena.layout
        self.ctx = ctx
        self.W = ctx.arena.words
        self.me = cpu.me
        self.N = ctx.n_vcpus
        self.a = lay["hsched"].offset
        self.a_rq = lay["hs_rq"].offset
        self.a_state = lay["hs_state"].offset
        self.a_slot = lay["hs_slot"].offset
        self.a_pcpu = lay["hs_pcpu"].offset
        self.cores = sorted({c for p in spec.placement for c in p})
        self.lk = Lock("rq_lock", spec.sems["rq_lock"], self.a + H_HOLDER, self.a + H_ACQ)
        self.permits = [spec.sems[f"permit{v}"] for v in range(self.N)]
        self.quantum_ns = int(spec.cfg.quantum * 1e6)
        self.P = min(spec.cfg.pcpus, self.N)
        # the tick comes at VCPU.periodic: often enough that a quantum ends
        # within a few percent of its length, not at the next shootdown's wait
        ctx.waits.step_every = min(ctx.waits.step_every, TICK_STEPS)
        self.end = 0  # when this vCPU's quantum runs out
        self.steal = cpu.pv.steal
        self.seen = 0  # switches seen by the last moving()

    # -- the run queue (rq_lock held) ---------------------------------------------------
    def _push(self, v: int) -> None:
        W = self.W
        if W[self.a_state + v] == QUEUED:
            return  # already queued (a wait for a pCPU cut short by the end of the run)
        t = W[self.a + H_TAIL]
        W[self.a_rq + t % self.N] = v
        W[self.a + H_TAIL] = t + 1
        W[self.a_state + v] = QUEUED

    def _pop(self) -> int:
        """The first queued vCPU (entries of vCPUs that finished while queued
        are skipped), given our pCPU; or -1."""
        W = self.W
        mine = W[self.a_slot + self.me]
        h = W[self.a + H_HEAD]
        while h < W[self.a + H_TAIL]:
            v = W[self.a_rq + h % self.N]
            h += 1
            if W[self.a_state + v] == QUEUED:
                W[self.a + H_HEAD] = h
                W[self.a_state + v] = RUNNING  # the pCPU is its from now on
                W[self.a_slot + v] = mine
                W[self.a + H_SWITCHES] += 1
                return v
        W[self.a + H_HEAD] = h
        return -1

    def _hand_on(self) -> int:
        """Our pCPU to the first queued vCPU, or back to the free ones."""
        h = self._pop()
        if h < 0:
            W = self.W
            n = W[self.a + H_FREE]
            W[self.a_pcpu + n] = W[self.a_slot + self.me]
            W[self.a + H_FREE] = n + 1
        return h

    def _take_free(self) -> bool:
        """A free pCPU for us, if there is one (rq_lock held)."""
        W = self.W
        n = W[self.a + H_FREE]
        if n <= 0:
            return False
        W[self.a + H_FREE] = n - 1
        W[self.a_slot + self.me] = W[self.a_pcpu + n - 1]
        W[self.a_state + self.me] = RUNNING
        return True

    def _on_pcpu(self) -> None:
        """Run where our pCPU is: its core."""
        c = self.cores[self.W[self.a_slot + self.me] % len(self.cores)]
        try:
            os.sched_setaffinity(0, [c])
        except OSError:
            pass  # a core taken away from us meanwhile: run anywhere

    def _lock(self):
        lock(self.ctx, self.lk)

    def _unlock(self):
        # the invariant, checked at the end of every critical section: never
        # more vCPUs hold a pCPU than there are pCPUs
        W = self.W
        running = sum(1 for v in range(self.N) if W[self.a_state + v] == RUNNING)
        unlock(self.ctx, self.lk)
        if running > self.P:
            raise RuntimeError(f"host scheduler: {running} vCPUs hold a pCPU, --pcpus is {self.P}")

    # -- the vCPU's side -------------------------------------------------------------------
    def start(self, cpu) -> None:
        """Before the first entry: take a pCPU, or wait for one."""
        self._get_pcpu()

    def _get_pcpu(self) -> None:
        """A free pCPU, or queue for one and block until it is handed over."""
        self._lock()
        try:
            free = self._take_free()
            if not free:
                self._push(self.me)
        finally:
            self._unlock()
        if not free:
            self.steal.queued()
            self._wait_pcpu()
        self._on_pcpu()
        self.end = time.monotonic_ns() + self.quantum_ns

    def tick(self, cpu) -> None:
        """The host's timer tick: preempt this vCPU if its quantum is used up
        and another vCPU waits for a pCPU."""
        now = time.monotonic_ns()
        if now < self.end or not cpu.in_guest:
            return
        self.end = now + self.quantum_ns
        W = self.W
        if W[self.a + H_HEAD] == W[self.a + H_TAIL]:
            return  # nobody waits (a racy look: the next tick looks again)
        self._lock()
        try:
            h = self._pop()
            if h >= 0:
                self._push(self.me)
        finally:
            self._unlock()
        if h < 0:
            return
        cpu.exit_guest()  # the tick's exit
        self.steal.sched_out()  # kvm_sched_out: PREEMPTED, before anyone else runs on this pCPU
        self.ctx.counters[C["preempt_exits"]] += 1
        self.permits[h].release()  # the context switch: h runs
        self.steal.queued()
        self._wait_pcpu()
        self._on_pcpu()
        self.steal.sched_in()  # kvm_sched_in: KVM_REQ_STEAL_UPDATE, record_steal_time at entry
        self.end = time.monotonic_ns() + self.quantum_ns
        cpu.enter_guest()

    def release(self, cpu) -> None:
        """HLT: the thread blocks, its pCPU goes to the next in the queue."""
        self._lock()
        try:
            h = self._hand_on()
            self.W[self.a_state + self.me] = HALTED
        finally:
            self._unlock()
        self.steal.sched_out(preempted=False)  # blocked, not preempted: nothing stored
        if h >= 0:
            self.permits[h].release()

    def acquire(self, cpu) -> None:
        """Woken from HLT: runnable, it waits for a pCPU like any other."""
        self._get_pcpu()
        self.steal.sched_in()

    def finish(self, cpu) -> None:
        """The vCPU is done: its pCPU (if it holds one, or was just given one) goes on."""
        W = self.W
        self._lock()
        try:
            held = W[self.a_state + self.me] == RUNNING
            h = self._hand_on() if held else -1
            W[self.a_state + self.me] = DONE
        finally:
            self._unlock()
        if h >= 0:
            self.permits[h].release()

    def moving(self) -> bool:
        """Has any vCPU been given a pCPU since the last call? (slow, not stuck)"""
        sw = self.W[self.a + H_SWITCHES]
        moved, self.seen = sw != self.seen, sw
        return moved

    def _wait_pcpu(self) -> None:
        """Blocked (not spinning) until another vCPU hands us a pCPU."""
        ctx = self.ctx
        permit = self.permits[self.me]
        got = False

        def ready(took) -> bool:
            nonlocal got
            got = got or took or try_take(permit)
            return got or ctx.stopping()

        timeout = ctx.params.ack_timeout
        # 2009 requests: the pCPU this vCPU was loaded on acks IPIs for it (exit_poll)
        while not ctx.waits.wait_until(ctx, "sched.preempted", ready, watch=ctx.poll_words, sem=permit,
                                       poll=ctx.exit_poll, timeout=timeout, slice_s=0.05):
            if not self.moving():
                raise AbortError(f"vcpu {self.me}: waited {timeout} s for a pCPU while no vCPU was "
                                 f"scheduled (--pcpus: the run queue is stuck)")
        if not got:
            raise StopRun()  # the run stopped while we waited


__all__ = ["HostSched", "init", "RUNNING", "QUEUED", "HALTED", "DONE"]
