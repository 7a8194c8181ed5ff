"""A run's semaphores: one list, for the coordinator's POSIX objects and the explorer's stand-ins.

Why it exists: the coordinator creates every semaphore of a run
(``smpemu-<run>-<name>``, ``coordinator.build_spec``) and the in-process
explorer of ``smpemu check`` builds a stand-in for each (``search.world``);
the protocol code looks them up by name in ``ctx.sems``.  Both build from
this list, so they cannot drift apart.

Each has a role:

- ``protocol``: what the protocol posts and takes, and what a wait may wait
  for (the kicks, the ack doorbells, the locks, the router's, the script's
  events): an explorer records their accesses in its footprints;
- ``memory``: inside one memory operation (each process's fence, the striped
  locks of the atomic words): never held across a scheduling point, so no
  footprint needs them;
- ``runner``: the way of running's own (the start barrier, the baton's
  ``sched`` and ``sched-go<r>``; the emulated host scheduler's ``rq_lock``
  and ``permit<v>``, ``harness.hostsched``).
"""

from __future__ import annotations

from dataclasses import dataclass

N_ATOMIC = 8  # striped locks of the atomic words


@dataclass(frozen=True)
class SemSpec:
    name: str
    value: int  # initial value
    role: str  # "protocol", "memory" or "runner"


def semaphores(n_vcpus: int, n_req: int, events=(), scheduled: bool = False, host_scheduled: bool = False) -> list:
    """Every semaphore of a run with ``n_vcpus`` vCPUs and ``n_req``
    requesters (the vCPUs, then the host processes); ``events``: a script's;
    ``scheduled``: the baton's too; ``host_scheduled``: the emulated host
    scheduler's (``--pcpus``)."""
    out = [SemSpec(f"kick{v}", 0, "protocol") for v in range(n_vcpus)]
    for r in range(n_req):
        out.append(SemSpec(f"ackwake{r}", 0, "protocol"))
        out.append(SemSpec(f"fence{r}", 1, "memory"))
    out += [SemSpec(f"atomic{k}", 1, "memory") for k in range(N_ATOMIC)]
    out += [SemSpec("mmu_lock", 1, "protocol"), SemSpec("pfn_lock", 1, "protocol"), SemSpec("start", 0, "runner"),
            SemSpec("router", 0, "protocol")]
    out += [SemSpec(f"evt-{e}", 0, "protocol") for e in events]
    if host_scheduled:  # --pcpus: the run queue's lock, one permit per vCPU (harness/hostsched.py)
        out.append(SemSpec("rq_lock", 1, "runner"))
        out += [SemSpec(f"permit{v}", 0, "runner") for v in range(n_vcpus)]
    if scheduled:  # the baton: one "go" per process, one "parked" for the coordinator
        out.append(SemSpec("sched", 0, "runner"))
        out += [SemSpec(f"sched-go{r}", 0, "runner") for r in range(n_req)]
    return out


def atomic_stripes(sems: dict) -> list:
    """The striped locks of the atomic words, in order."""
    return [sems[f"atomic{k}"] for k in range(N_ATOMIC)]


__all__ = ["SemSpec", "semaphores", "atomic_stripes", "N_ATOMIC"]
