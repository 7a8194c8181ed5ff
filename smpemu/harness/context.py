"""What one emulated CPU (a vCPU process or a host process) carries around.

Why it exists: the MMU, the IPI protocol, the policies and the oracle all run
inside whichever process is acting (a vCPU in invlpg, the host in its mmu
notifier).  ``ProcContext`` bundles that process's id, its memory model, the
arena, the semaphores and its local counters, so those modules stay plain
functions over a context instead of each owning a copy of the plumbing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from smpemu.errors import AbortError
from smpemu.harness.freerun import FreeRun
from smpemu.kvm import layout as shared
from smpemu.kvm.clock import WALL
from smpemu.kvm.layout import CTL_STOP
from smpemu.kvm.locks import lock, unlock
from smpemu.kvm.waits import Lock
from smpemu.kvm.points import POINT_ID


@dataclass
class RunParams:
    """Protocol knobs every process needs (a slice of the run config)."""

    requests: str = "modern"  # or "2009"
    notifier: str = "2009"  # the mmu notifier's flush: "2009" after mmu_unlock, "2012" before (kvm/mmu.py)
    ack_timeout: float = 5.0
    spin_us: float = 50.0
    lock_timeout: float = 5.0
    ipi_route: str = "direct"  # or "coordinator": the coordinator delivers every kick


@dataclass
class ProcContext:
    pid_index: int  # 0..N-1 for vCPUs, N..N+K-1 for the K host processes (reclaimers)
    arena: object  # smpemu.memory.arena.Arena
    mm: object  # smpemu.memory.model.MemoryModel
    sems: dict
    params: RunParams
    policy: object = None
    points: object = None  # smpemu.kvm.points.Points
    oracle: object = None  # smpemu.kvm.oracle.Oracle
    handle_requests: object = None  # callable: vCPU's own request handler (None for host)
    trace: object = None  # smpemu.harness.trace.Tracer when tracing, else None
    waits: object = None  # smpemu.kvm.waits.Waits: how this process blocks (default: FreeRun)
    clock: object = None  # smpemu.kvm.clock.Clock: the times the protocol state holds (default: WALL)
    counters: np.ndarray = field(default=None)
    my_seq: list = field(default=None)
    lat_ns: list = field(default_factory=list)
    op: int = -1  # a script actor: the index of the op it is running (-1: none yet, or no script)

    def __post_init__(self):
        L = self.arena.layout
        g = L.geometry
        self.n_vcpus = g.n_vcpus
        self.is_host = self.pid_index >= g.n_vcpus
        self.host_index = self.pid_index - g.n_vcpus if self.is_host else -1  # reclaimer k
        self.n_hosts = g.n_hosts
        self.W = self.arena.words
        self.stop_addr = self.arena.ctl_addr(CTL_STOP)
        self.reset()
        # addresses, precomputed once
        self.a_mode = [L["mode"].addr(v, 0) for v in range(g.n_vcpus)]
        self.a_flag = [L["req_flag"].addr(v, 0) for v in range(g.n_vcpus)]
        self.a_halted = [L["halted"].addr(v, 0) for v in range(g.n_vcpus)]
        self.a_loaded = [L["loaded"].addr(v, 0) for v in range(g.n_vcpus)]
        self.a_req_seq = L["req_seq"].addr(0, 0)
        self.a_ack_seq = L["ack_seq"].addr(0, 0)
        self.n_req = g.n_req
        self.a_ack_waiting = [L["ack_waiting"].addr(r, 0) for r in range(g.n_req)]
        self.a_spte = L["spte"].offset
        self.a_route = L["route_req"].offset
        self.a_dirty = self.arena.ctl_addr(shared.CTL_FLUSH_DIRTY)
        self.kick = [self.sems[f"kick{v}"] for v in range(g.n_vcpus)]
        self.ackwake = [self.sems[f"ackwake{r}"] for r in range(g.n_req)]
        self.a_mmu_holder = self.arena.ctl_addr(shared.CTL_MMU_HOLDER)
        self.a_pfn_holder = self.arena.ctl_addr(shared.CTL_PFN_HOLDER)
        self.mmu_lk = Lock("mmu_lock", self.sems["mmu_lock"], self.a_mmu_holder,
                           self.arena.ctl_addr(shared.CTL_MMU_ACQ))
        self.pfn_lk = Lock("pfn_lock", self.sems["pfn_lock"], self.a_pfn_holder,
                           self.arena.ctl_addr(shared.CTL_PFN_ACQ))
        self.ospid = os.getpid()
        # the words exit_poll() reads: a wait that polls must wake when they change
        self.poll_words = ((self.a_flag[self.pid_index],)
                           if self.params.requests == "2009" and not self.is_host else ())
        if self.waits is None:
            self.waits = FreeRun()
        if self.clock is None:
            self.clock = WALL

    def reset(self) -> None:
        """The state one run accumulates, as at the start of a run (a process
        has one run; the explorer resets its actors' contexts per schedule:
        harness.worker.start_run)."""
        self.counters = np.zeros(shared.N_COUNTERS, dtype=np.int64)
        # times each protocol point was reached (coverage), published at exit
        self.point_counts = [0] * shared.N_POINT_SLOTS
        self.my_seq = [0] * self.n_vcpus
        self.lat_ns = []
        self.handle_requests = None
        self.op = -1
        self.pv_cpu = None  # a vCPU with steal time: sched.out / sched.in decisions apply to it (sched.preempt)
        self.reenter = False  # scheduled out from guest mode by a decision: enter it at the next step
        self.parent = os.getppid()

    # -- shared words of the request protocol ---------------------------------
    def req_seq_addr(self, target: int, requester: int) -> int:
        return self.a_req_seq + target * self.n_req + requester

    def ack_seq_addr(self, target: int, requester: int) -> int:
        return self.a_ack_seq + target * self.n_req + requester

    # -- liveness ----------------------------------------------------------------
    def stopping(self) -> bool:
        return self.W[self.stop_addr] != 0

    def check_alive(self) -> None:
        """Raise if the run is being torn down or our coordinator died."""
        if os.getppid() != self.parent:
            raise AbortError(f"cpu {self.pid_index}: coordinator died")
        if self.W[self.stop_addr] < 0:  # negative stop word: abort
            raise AbortError(f"cpu {self.pid_index}: run aborted")

    def exit_poll(self) -> None:
        """A poll point inside exit handling.

        With ``--requests 2009`` a vCPU acknowledged flush IPIs from interrupt
        context wherever it was, even holding mmu_lock inside invlpg; the
        requester waited for it.  Modern KVM does not wait for vCPUs outside
        guest mode, so there is nothing to do here then.
        """
        if self.params.requests == "2009" and self.handle_requests is not None:
            if self.mm.load(self.a_flag[self.pid_index]):
                self.handle_requests()

    # -- locks (kvm.locks: written once over ctx.waits) ---------------------------
    def mmu_lock(self) -> None:
        lock(self, self.mmu_lk)

    def mmu_unlock(self) -> None:
        unlock(self, self.mmu_lk)

    def point(self, name: str, poll: bool = True) -> None:
        """A named protocol point: test pauses, stress delays, scheduling, 2009 IPI polls.

        ``poll=False``: a point inside a hardware page walk (``tlb.fill``),
        where no interrupt is taken: an ack there would split the walk
        between its spte load and its TLB fill, and the fill would then
        install the translation the ack just flushed.
        """
        self.point_counts[POINT_ID[name]] += 1
        self.waits.point(self, name, poll)
        if poll:
            self.exit_poll()

    def ev(self, code: int, a: int = 0, b: int = 0) -> None:
        """Record a protocol event if tracing is on."""
        if self.trace is not None:
            self.trace(code, a, b)

    def record_latency(self, ns: int) -> None:
        self.lat_ns.append(ns)
