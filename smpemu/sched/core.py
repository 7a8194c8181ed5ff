"""One run's scheduler state, and the rules every way of scheduling follows.

Why it exists: the baton's coordinator (real processes) and the explorer's
world (greenlets in one process) schedule the same actors by the same rules,
so a schedule means the same thing in both.  ``Sched`` holds who is live,
where each actor is parked and what it waits for (a ``conds.Cond``), and
the actor chosen last; the transports tell it when an actor parked or
finished and ask it:

- ``enabled(mem)``: the actors that may run now.  An actor parked at a
  plain scheduling point may; a waiting one when its condition holds.  If
  none may, and some are in timed waits, their time is up: they may (time,
  under a schedule, is decisions).
  A vCPU preempted by a ``sched.out`` decision may not run until its
  ``sched.in`` (``preempted``, set by the choices' ``on_sched``).
- ``over(enabled)``: the run is over (the end rule, per workload): every
  actor finished, or, for a workload whose hosts loop for ever (stress),
  every vCPU; or nobody may run and every actor left waits in an
  *optional* wait (a scenario's wait that may never end: ``skipped``).
- ``stuck()``: nobody may run and the run is not over: a deadlock, and its
  report, naming every live actor and where it waits.

``mem`` and ``count`` are each transport's untracked readers (``conds``).
"""

from __future__ import annotations

from smpemu.kvm.layout import proc_name
from smpemu.kvm.points import SCHED_POINTS

START = SCHED_POINTS.index("start")
LOCK_WAITS = frozenset(SCHED_POINTS.index(p) for p in ("wait.mmu_lock", "wait.pfn_lock"))


class Sched:
    """``n_vcpus`` vCPUs then ``n_hosts`` host processes; ``every_actor``:
    the run ends when every actor finished (a script, a scenario), else when
    the vCPUs did (stress: the hosts loop for ever).  ``count(sem)``: posts
    of a semaphore now, untracked.  The lists are mutated in place (``reset``
    too), so a transport may keep references to them."""

    __slots__ = ("N", "n", "every_actor", "count", "live", "cond", "point", "op", "last", "names", "preempted")

    def __init__(self, n_vcpus: int, n_hosts: int, every_actor: bool, count):
        self.N = n_vcpus
        self.n = n = n_vcpus + n_hosts
        self.every_actor = every_actor
        self.count = count
        self.live = [True] * n
        self.cond = [None] * n  # None: at a plain scheduling point (runnable); else a conds.Cond
        self.point = [START] * n  # where each actor is parked (index in SCHED_POINTS)
        self.op = [-1] * n  # a script actor's op (index in its list; -1: none)
        self.last = -1  # the actor chosen last
        self.preempted = [False] * n  # scheduled out by a sched.out decision, until its sched.in
        self.names = [proc_name(p, n_vcpus, n_hosts) for p in range(n)]

    def reset(self) -> None:
        """Every actor live, at "start" (a fresh run)."""
        n = self.n
        self.live[:] = [True] * n
        self.cond[:] = [None] * n
        self.point[:] = [START] * n
        self.op[:] = [-1] * n
        self.preempted[:] = [False] * n
        self.last = -1

    # -- what the transports report --------------------------------------------------
    def parked(self, p: int, point: int, cond, op: int = -1) -> None:
        self.point[p] = point
        self.cond[p] = cond
        self.op[p] = op

    def finished(self, p: int) -> None:
        self.live[p] = False
        self.cond[p] = None

    # -- the rules --------------------------------------------------------------------
    def enabled(self, mem) -> list:
        """The actors that may run now (the timed-wait rule included); a
        preempted vCPU may not (only its sched.in may be chosen)."""
        live, cond, count, last = self.live, self.cond, self.count, self.last
        if True in self.preempted:
            live = [a and not b for a, b in zip(live, self.preempted)]
        en = [p for p in range(self.n) if live[p] and ((c := cond[p]) is None or c.ready(mem, count, last, p))]
        if not en:  # only timed waits left: their time is up
            en = [p for p in range(self.n) if live[p] and (c := cond[p]) is not None and c.timed]
        return en

    def over(self, enabled) -> bool:
        """The run is over (``enabled``: what ``enabled`` returned now)."""
        live = self.live
        if True not in (live if self.every_actor else live[:self.N]):
            return True
        if enabled:
            return False
        cond = self.cond
        return all(not live[p] or (cond[p] is not None and cond[p].optional) for p in range(self.n))

    def skipped(self) -> list:
        """The actors left in an optional wait (when the run is over)."""
        return [p for p in range(self.n) if self.live[p] and self.cond[p] is not None and self.cond[p].optional]

    def where(self, p: int, mem=None, holder=None) -> str:
        """'host0 at script.wait (op 0)', 'vcpu 1 at wait.mmu_lock (held by pid 42)'."""
        c = self.cond[p]
        what = f"{self.names[p]} at {SCHED_POINTS[self.point[p]]}" + (" (preempted)" if self.preempted[p] else "")
        if holder is not None and c is not None and self.point[p] in LOCK_WAITS and c.wait.words:
            what += f" (held by {holder(mem[c.wait.words[0]])})"  # a lock's first watched word: its holder
        if self.op[p] >= 0:
            what += f" (op {self.op[p]})"
        return what

    def stuck(self, mem=None, holder=None) -> str:
        """The deadlock report: every live actor and where it waits.
        ``holder(word)``: how to name a lock holder word's value, if the
        transport can (the baton: a pid)."""
        return "no process can run: " + ", ".join(self.where(p, mem, holder) for p in range(self.n)
                                                   if self.live[p])


__all__ = ["Sched", "START"]
