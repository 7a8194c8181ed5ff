"""The KVM data layout: which arena words are sptes, rmaps, requests, modes.

Why it exists: all vCPUs run one guest, so shadow page tables, rmap, memslot
and flush state are *one* copy in shared memory that every vCPU process and
the host process map.  This module says what lives where (the table below);
the mechanism (offsets, views, atomic words) is ``smpemu.memory.arena``.
A protocol word is just an index (``Field.addr``) that the memory-model
layer can buffer and reorder.

N = vCPUs, K = host processes (reclaimers), R = N + K requesters (vCPU ids
0..N-1, host processes N..N+K-1), S = spte slots,
G = guest frames (gfns), H = host frames (pfns), T = TLB entries per vCPU.
"Line" fields give each id its own 64-byte cache line (8 words).

| name            | shape      | writer(s)                              | readers                        |
|-----------------|------------|----------------------------------------|--------------------------------|
| ctl             | (16, 8)    | see CTL_* below                        | all                            |
| mode            | (N, 8) line| vCPU v; requesters cmpxchg IN->EXITING (atomic word) | requesters         |
| req_flag        | (N, 8) line| any requester sets 1; vCPU v clears    | vCPU v, oracle                 |
| halted          | (N, 8) line| vCPU v                                 | requesters (2009 semantics)    |
| loaded          | (N, 8) line| vCPU v, once: 1 at its first vcpu_load | requesters (2009 semantics)    |
| req_seq         | (N, R)     | [t, r]: requester r only               | vCPU t, oracle                 |
| ack_seq         | (N, R)     | [t, r]: vCPU t only                    | requester r, oracle            |
| ack_waiting     | (R, 8) line| requester r                            | vCPUs (to wake r)              |
| spte            | (S,)       | under mmu_lock                         | page walks (lock-free), all    |
| gpte            | (S,)       | guest: the vCPU owning that range      | shadow faults                  |
| rmap            | (G, RMAP)  | under mmu_lock                         | under mmu_lock                 |
| unsync          | (G,)       | under mmu_lock                         | under mmu_lock                 |
| wp_time_ns      | (G,)       | sync path after its flush (last wins)  | oracle (write check)           |
| memslot         | (G,)       | under pfn_lock (fault, host free)      | faults, host                   |
| reclaiming      | (G,)       | under pfn_lock: the reclaimer invalidating gfn (k+1), 0 | other reclaimers |
| free_pfns       | (H,)       | under pfn_lock                         | under pfn_lock                 |
| pfn_gen         | (H,)       | host free, under pfn_lock              | faults, oracle                 |
| tlb_mirror      | (N, T)     | vCPU v (pfn+1 of each TLB entry, 0=empty) | oracle at host free         |
| tlb_mirror_slot | (N, T)     | vCPU v (spte slot of the entry)        | oracle reports                 |
| freed_ring      | (N, FR)    | guest on vCPU v (gfns it freed)        | host reclaim                   |
| freed_head      | (N, 8) line| guest on vCPU v                        | host reclaim                   |
| counters        | (R, NC)    | process r (its own row)                | coordinator                    |
| points          | (R, NP)    | process r: times it reached each protocol point (coverage) | coordinator |
| ack_hist        | (R, NB)    | process r: ack-latency histogram       | coordinator                    |
| viol            | (R, VM, VF)| process r (its own records)            | coordinator                    |
| errmsg          | (R, 32)    | process r: why it failed (utf-8)       | coordinator                    |
| route_req       | (N, R)     | [t, r]: requester r (kicks for t)      | coordinator's router thread    |
| trace           | (R, TR, 4) | process r: event ring (ts, code, a, b) | coordinator after the run      |
| trace_head      | (R, 8) line| process r: events written so far       | coordinator after the run      |
| sched           | (R, 16)    | process r, holding the baton (sched/row.py) | the coordinator's scheduler |

Issue 19's fields (empty unless ``Geometry.pv``: the run has guest
shootdowns or the emulated host scheduler; see kvm/steal.py,
kvm/shootdown.py, harness/hostsched.py):

| name            | shape      | writer(s)                              | readers                        |
|-----------------|------------|----------------------------------------|--------------------------------|
| steal           | (N, 8) line| [v][0] ``preempted``: vCPU v's host side (sched-out store, entry xchg) and guest initiators (cmpxchg FLUSH): atomic; [v][1..2] steal ns, version | guest initiators (PV flush) |
| gmm             | (N, 8) line| [p][0]: tlb_gen of guest process p (atomic, bumped by initiators) | flush handlers  |
| girq            | (N, 8) line| [t][0]: a guest IPI pending for t (the host sets it, t takes it with xchg) | vCPU t |
| gcpu            | (N, 8) line| vCPU v: [0] gone (finished), [1] waits for guest acks | guest initiators  |
| gcsd            | (N, N, 4)  | [t][i]: initiator i's flush request to t (seq, table, slot, new tlb_gen) | vCPU t  |
| gack            | (N, N)     | [t][i]: vCPU t, the last request seq of i it flushed | initiator i            |
| gfree_ns        | (G,)       | the guest, when it frees a frame after its shootdown returned | guest oracle (access) |
| gstats          | (N, 16)    | vCPU v: its shootdown and scheduling counters (GSTAT_NAMES) | coordinator   |
| ghist           | (N, NB)    | vCPU v: shootdown latency histogram (at exit) | coordinator             |
| hsched          | (8,)       | under rq_lock: [0] free pCPUs, [1] run queue head, [2] tail, [3] switches; [4] holder, [5] acquisitions (rq_lock) | vCPUs |
| hs_rq, hs_state | (N,), (N,) | under rq_lock: the run queue ring; each vCPU's state | vCPUs                 |
| hs_slot, hs_pcpu| (N,), (N,) | under rq_lock: the pCPU each vCPU holds; the stack of free pCPUs (hsched[0] of them) | vCPUs |

ctl words (each on its own line): CTL_STOP (coordinator), CTL_FLUSH_DIRTY
(the policy's remote_tlbs_dirty / tlbs_dirty: through the memory model; an
atomic word), CTL_NOTIFIER_SEQ and CTL_NOTIFIER_COUNT (under mmu_lock),
CTL_MMU_HOLDER / CTL_PFN_HOLDER (pid holding the lock, 0 if free; written by
the holder, read by the coordinator's liveness checks), CTL_NFREE (under
pfn_lock), CTL_T0 (coordinator: start time of the run in ns), CTL_MMU_ACQ /
CTL_PFN_ACQ (acquisition counts, bumped by each holder: a waiter that sees
them move knows the lock changes hands, so it is slow, not deadlocked),
CTL_SCHED_END (coordinator, under ``--schedule``: the schedule is over, leave
at the next scheduling point), CTL_RANGE_TARGET (host reclaimers under
``--range-share``: gfn+1 of the page a range invalidation is invalidating
now, 0 if none; kvm/host.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from smpemu.memory.arena import LINE, ArenaLayout

CTL_STOP = 0
CTL_FLUSH_DIRTY = 1
CTL_NOTIFIER_SEQ = 2
CTL_NOTIFIER_COUNT = 3
CTL_MMU_HOLDER = 4
CTL_PFN_HOLDER = 5
CTL_NFREE = 6
CTL_T0 = 7
CTL_MMU_ACQ = 8  # acquisitions of mmu_lock so far (written by each holder)
CTL_PFN_ACQ = 9
CTL_SCHED_END = 10  # search/baton_loop.py: set by the coordinator before it hands out the last batons
CTL_RANGE_TARGET = 11  # kvm/host.py: the page a range invalidation is working on (gfn+1), for the next one
N_CTL = 16

# guest modes (Documentation/virt/kvm/vcpu-requests.rst)
OUTSIDE_GUEST_MODE = 0
IN_GUEST_MODE = 1
EXITING_GUEST_MODE = 2

COUNTER_NAMES = (
    "steps",
    "invlpg",
    "faults",
    "tlb_hits",
    "tlb_misses",
    "flush_requests",
    "remote_flushes",
    "ipis_sent",
    "ipis_received",
    "ipis_avoided",
    "local_flushes",
    "cr3_writes",
    "fault_retries",
    "reclaims",
    "rmap_evictions",
    "violations",
    "acks_waited",
    "cpu",
    "preempt_exits",  # sched-outs by the emulated host scheduler (harness/hostsched.py): "preemptions"
    "skipped_op",  # a script host: 1 + the op whose optional wait did not end (workloads/script.py)
    "range_invalidations",
    "sync_drops",
)
C = {name: i for i, name in enumerate(COUNTER_NAMES)}
# gstats: per vCPU, issue 19's counters (written straight to the arena by the vCPU)
GSTAT_NAMES = (
    "shootdowns",  # guest TLB shootdowns this vCPU initiated
    "shootdown_targets",  # other vCPUs of the mm they had to reach
    "shootdown_ipis",  # guest flush IPIs sent (one per target kept in the mask)
    "shootdown_ipis_avoided",  # targets dropped by the PV flush (FLUSH left in their preempted byte)
    "targets_preempted",  # targets whose preempted byte said PREEMPTED when looked at
    "flushes_skipped",  # flush handler: already up to date (tlb_gen), nothing done
    "flushes_partial",  # flush handler: one page (invlpg)
    "flushes_full",  # flush handler: everything (cr3 reload: sync + flush)
    "pv_flushes",  # KVM_VCPU_FLUSH_TLB honoured at entry (record_steal_time)
    "preempted_ns",  # time spent preempted (scheduled out while runnable)
    "irqs",  # guest flush interrupts handled
    "shootdowns_preempted",  # shootdowns during which the host preempted their initiator
)
G = {name: i for i, name in enumerate(GSTAT_NAMES)}
N_GSTATS = 16
N_COUNTERS = 24
N_POINT_SLOTS = 16  # protocol points counted per process (points.POINT_NAMES, room to grow)
N_HIST = 256  # ack latency histogram buckets: 8 per power of two of ns
VIOL_MAX = 16
VIOL_FIELDS = 12
FREED_RING = 256
TRACE_RING = 4096


@dataclass(frozen=True)
class Geometry:
    """Sizes that fix the arena layout; derived from the run config."""

    n_vcpus: int
    n_slots: int
    n_gfns: int
    n_pfns: int
    tlb_size: int
    rmap_size: int
    n_hosts: int = 1  # host processes (reclaimers), requester ids n_vcpus..n_req-1
    # issue 19's fields (steal time, guest shootdowns, the host scheduler) are
    # sized only when the run uses them: without them the arena is as before
    pv: bool = False

    @property
    def n_req(self) -> int:
        return self.n_vcpus + self.n_hosts

    def name_of(self, p: int) -> str:
        return proc_name(p, self.n_vcpus, self.n_hosts)


def proc_name(p: int, n_vcpus: int, n_hosts: int = 1) -> str:
    """'vcpu 3', 'host' (the only host process) or 'host1' (one of several)."""
    if p < n_vcpus:
        return f"vcpu {p}"
    return host_name(p - n_vcpus, n_hosts)


def host_name(k: int, n_hosts: int) -> str:
    """Host process k: 'host' when it is the only one, else 'host0', 'host1'..."""
    return "host" if n_hosts == 1 else f"host{k}"


def _fields(g: Geometry) -> list[tuple[str, tuple, bool]]:
    N, R = g.n_vcpus, g.n_req
    return [
        ("ctl", (N_CTL, LINE), False),
        ("mode", (N, LINE), True),
        ("req_flag", (N, LINE), False),
        ("halted", (N, LINE), False),
        ("loaded", (N, LINE), False),
        ("req_seq", (N, R), False),
        ("ack_seq", (N, R), False),
        ("ack_waiting", (R, LINE), False),
        ("spte", (g.n_slots,), False),
        ("gpte", (g.n_slots,), False),
        ("rmap", (g.n_gfns, g.rmap_size), False),
        ("unsync", (g.n_gfns,), False),
        ("wp_time_ns", (g.n_gfns,), False),
        ("memslot", (g.n_gfns,), False),
        ("reclaiming", (g.n_gfns,), False),
        ("free_pfns", (g.n_pfns,), False),
        ("pfn_gen", (g.n_pfns,), False),
        ("tlb_mirror", (N, g.tlb_size), False),
        ("tlb_mirror_slot", (N, g.tlb_size), False),
        ("freed_ring", (N, FREED_RING), False),
        ("freed_head", (N, LINE), False),
        ("counters", (R, N_COUNTERS), False),
        ("points", (R, N_POINT_SLOTS), False),
        ("ack_hist", (R, N_HIST), False),
        ("viol", (R, VIOL_MAX, VIOL_FIELDS), False),
        ("errmsg", (R, 32), False),
        ("route_req", (N, R), False),
        ("trace", (R, TRACE_RING, 4), False),
        ("trace_head", (R, LINE), False),
        ("sched", (R, 2 * LINE), False),
    ] + _pv_fields(g)


def _pv_fields(g: Geometry) -> list[tuple[str, tuple, bool]]:
    """Issue 19's fields, at the end (every older field keeps its offset); all
    empty when ``g.pv`` is off."""
    N = g.n_vcpus if g.pv else 0
    return [
        ("steal", (N, LINE), True),
        ("gmm", (N, LINE), True),
        ("girq", (N, LINE), True),
        ("gcpu", (N, LINE), False),
        ("gcsd", (N, N, 4), False),
        ("gack", (N, N), False),
        ("gfree_ns", (g.n_gfns if g.pv else 0,), False),
        ("gstats", (N, N_GSTATS), False),
        ("ghist", (N, N_HIST), False),
        ("hsched", (LINE if g.pv else 0,), False),
        ("hs_rq", (N,), False),
        ("hs_state", (N,), False),
        ("hs_slot", (N,), False),
        ("hs_pcpu", (N,), False),
    ]


class Layout(ArenaLayout):
    """The KVM arena of one geometry: every field of the table above."""

    def __init__(self, g: Geometry):
        self.geometry = g
        # the flush-dirty word is cmpxchg'd (tlbs-dirty): atomic too
        ctl_dirty = LINE * CTL_FLUSH_DIRTY  # ctl is the first field, at offset 0
        super().__init__(_fields(g), extra_atomic=(ctl_dirty,))
        assert self.fields["ctl"].addr(CTL_FLUSH_DIRTY, 0) == ctl_dirty

