"""Controlled schedules, coordinator side: real processes, one at a time, in a seeded order.

Why it exists: a race that needs three CPUs to meet inside a window of a few
hundred nanoseconds shows up by luck, and a run that found it cannot be
repeated.  Under ``--schedule pct`` the vCPU processes and the host still run
for real, over the real arena and semaphores, but only the process holding
the *baton* runs.  At every scheduling point a process publishes where it is
(its row of the shared ``sched`` field), hands the baton back to the
coordinator (posts ``sched``) and blocks on its own ``sched-go<r>``
semaphore (the process side: ``smpemu.harness.baton``).  The coordinator,
once the running process has parked, asks the strategy
(``search.strategies``) for the next one, records the decision
``[cpu, point]`` and posts its ``go``.  Between two scheduling points a
process runs alone, so what it does there depends only on the shared state it
finds and its own seeded state: the sequence of decisions *is* the
interleaving, and the same decisions give the same run (docs/schedules.md
says exactly what is and is not deterministic).

Scheduling points: every named protocol point (``ctx.point``), every
``sched_steps``-th guest step (``VCPU.periodic``), before each lock
acquisition, and every wait (``kvm.waits``).  A waiting process parks with a
*wait condition* (words whose change, a semaphore whose post, can let it go
on).  The coordinator snapshots the watched words when the process parks (it
ran alone since it looked at them, so the snapshot is what it saw) and treats
it as disabled until one of them changes.  The enabled set is thus a function
of the shared state, i.e. of the decisions so far.  No process enabled: a
deadlock, reported with every process's wait.  These rules are the scheduler
core's (``smpemu.sched``), which the explorer of ``smpemu check`` follows
too: this loop is its transport over rows and semaphores.

A run under a schedule ends at the first violation, after ``max_decisions``
decisions, when the workload is over (the end rule, per workload: a
script's when every process has run its list, a stress workload's when every
vCPU finished, ``--iterations``), or on a deadlock; it ignores
``--duration`` and ``--delay``.  Then the coordinator sets
``CTL_SCHED_END`` and hands every process its baton: each raises
``SchedEnd`` at its scheduling point and leaves, so nothing runs unscheduled
that could change the verdict.

``monitor`` is the loop ``harness.coordinator.run`` takes by injection
(``run(cfg, monitor=monitor)``); ``run(cfg)`` here is that call for any
configuration, scheduled or not.
"""

from __future__ import annotations

import signal
import time
from operator import attrgetter

import posix_ipc

import workloads
from smpemu.harness import coordinator
from smpemu.harness.worker import read_error
from smpemu.kvm.layout import C, CTL_SCHED_END
from smpemu.kvm.points import SCHED_POINTS
from smpemu.sched import row
from smpemu.sched.choices import Step
from smpemu.sched.conds import Cond
from smpemu.sched.core import Sched
from smpemu.search.strategies import PCT, Divergence, Replay, who
from workloads.script import describe_op

_POSTS = attrgetter("value")  # a POSIX semaphore's posts, read without taking one


class BatonLoop:
    """The coordinator's transport over ``sched.core.Sched``: rows and semaphores."""

    def __init__(self, cfg, arena, procs, sems):
        self.cfg = cfg
        self.arena = arena
        self.procs = procs
        self.N = cfg.vcpus
        self.K = cfg.reclaimers  # host processes: each is its own actor of the baton
        self.n = n = cfg.vcpus + cfg.reclaimers
        L = arena.layout
        self.W = arena.words
        self.rows = [L["sched"].addr(p, 0) for p in range(n)]
        self.viol = [L["viol"].addr(p, 0, 0) for p in range(n)]  # kind of each process's first record
        self.go = [sems[f"sched-go{p}"] for p in range(n)]
        self.post = sems["sched"]
        self.sem_list = [sems[k] for k in sorted(sems)]  # a row names a semaphore by its number here
        self.sched = Sched(cfg.vcpus, cfg.reclaimers, workloads.hosts_finish(cfg.workload), _POSTS)
        self.parks = [0] * n  # each process's parks so far (its row's count)
        self.dec: list = []  # the choices made (sched.choices)
        self.dec_point: list[int] = []  # where each chosen process was parked
        self.skipped: list[str] = []  # processes the run ended in an optional wait
        self.end = None
        self.divergence = None
        if cfg.schedule == "replay":
            self.strategy = Replay(cfg.replay, self.N, self.K)
            self.limit = len(cfg.replay)
        else:
            self.strategy = PCT(cfg.seed, n, cfg.pct_depth, cfg.pct_epoch)
            self.limit = cfg.max_decisions
        self.t_start = self.t_end = time.monotonic()

    @property
    def live(self) -> list:
        return self.sched.live

    # waiting for the running process to park
    def _dead(self) -> str | None:
        for i, p in enumerate(self.procs):
            code = p.exitcode
            if code is not None and code != 0:
                msg = read_error(self.arena, i)
                if code < 0:
                    msg = f"{who(i, self.N, self.K)} (pid {p.pid}) died ({signal.Signals(-code).name})"
                return msg or f"{who(i, self.N, self.K)} (pid {p.pid}) exited with code {code}"
        return None

    def _await(self, p, sig, result, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while True:
            try:
                self.post.acquire(0.05)
                return True
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                pass
            if sig.got:
                result.interrupted = sig.got
                self.end = "interrupted"
                return False
            msg = self._dead()
            if msg is None and time.monotonic() > deadline:
                if p is None:
                    msg = f"the processes did not all reach their first scheduling point within {limit} s"
                else:
                    msg = (f"{who(p, self.N, self.K)} (pid {self.procs[p].pid}) did not reach its next scheduling "
                           f"point within {limit} s after decision {len(self.dec) - 1} (stopped or stuck)")
            if msg is not None:
                result.aborted = msg
                self.end = "aborted"
                return False

    def _parked(self, p) -> str | None:
        """Take note of where ``p`` parked (or that it is done)."""
        W = self.W
        state, point, count, wait, op = row.read(W, self.rows[p], self.sem_list)
        self.parks[p] = count
        if state == row.DONE:
            self.sched.finished(p)
            proc = self.procs[p]
            proc.join(self.cfg.ack_timeout)
            if proc.exitcode != 0:
                return self._dead() or f"{who(p, self.N, self.K)} (pid {proc.pid}) did not exit after it finished"
            return None
        # the watched words as the process saw them: it ran alone since it looked
        self.sched.parked(p, point, Cond(wait, W) if wait is not None else None, op)
        return None

    def _violation(self) -> bool:
        W = self.W
        for a in self.viol:
            if W[a]:
                return True
        return False

    def _abort(self, result, msg) -> None:
        result.aborted = msg
        self.end = "aborted"

    def run(self, sig, result, progress) -> None:
        n = self.n
        for _ in range(n):  # everyone parks at "start" (or is done already)
            if not self._await(None, sig, result, self.cfg.start_timeout):
                return
        for p in range(n):
            msg = self._parked(p)
            if msg:
                return self._abort(result, msg)
        self.t_start = time.monotonic()
        W = self.W
        rows = self.rows
        sched = self.sched
        limit = self.limit
        strategy = self.strategy
        replay = strategy.__class__ is Replay
        step_limit = self.cfg.ack_timeout
        N = self.N
        k = 0
        try:
            while True:
                if self._violation():
                    self.end = "violation"
                    break
                enabled = sched.enabled(W)
                if sched.over(enabled) and (not replay or k >= limit):
                    # (a replay goes on while decisions are left: hosts may act
                    # after the vCPUs finished, as in smpemu check's scenarios)
                    self.end = "finished"
                    self.skipped = [describe_op(self.cfg.script, N, self.K, p, sched.op[p]) if self.cfg.script
                                    else sched.where(p) for p in sched.skipped()]
                    break
                if k >= limit:
                    self.end = "replay_end" if replay else "max_decisions"
                    break
                if sig.got:
                    result.interrupted = sig.got
                    self.end = "interrupted"
                    break
                if not enabled and not (replay and strategy.command(k)):
                    self.end = "deadlock"
                    result.aborted = f"schedule deadlock at decision {k}: " + sched.stuck(W, lambda pid: f"pid {pid}")
                    break
                try:
                    choice = strategy.choose(k, enabled, self)
                except Divergence as e:
                    self.end = "divergence"
                    self.divergence = result.aborted = str(e)
                    break
                if choice.__class__ is int:
                    choice = Step(choice)
                p = choice.actor
                self.dec.append(choice)
                self.dec_point.append(sched.point[p])
                if not choice.is_step:
                    # a command (a drain decision): the parked process runs it
                    # and stays where it is
                    row.send(W, rows[p], choice)
                    self.go[p].release()
                    if not self._await(p, sig, result, step_limit):
                        break
                    if row.pending(W, rows[p]):
                        self._abort(result, f"schedule: {who(p, N, self.K)} did not run {choice.name()} at "
                                            f"decision {k}")
                        break
                    choice.on_sched(sched)  # a sched.out: not runnable until its sched.in
                    k += 1
                    continue
                sched.last = p
                count = self.parks[p]
                self.go[p].release()
                if not self._await(p, sig, result, step_limit):
                    break
                if W[rows[p] + row.R_STATE] != row.DONE and W[rows[p] + row.R_COUNT] == count:
                    msg = f"schedule: the baton came back at decision {k}, but not from {who(p, N, self.K)}"
                else:
                    msg = self._parked(p)
                if msg:
                    self._abort(result, msg)
                    break
                k += 1
                if k & 1023 == 0:
                    msg = self._dead()  # a parked process killed meanwhile
                    if msg:
                        self._abort(result, msg)
                        break
                    if progress is not None:
                        progress(k / limit, int(self.arena.counters[:N, C["steps"]].sum()))
        finally:
            self.t_end = time.monotonic()

    def release(self) -> None:
        """The schedule is over: every process leaves at its scheduling point."""
        self.W[self.arena.ctl_addr(CTL_SCHED_END)] = 1
        for p in range(self.n):
            if self.live[p]:
                self.go[p].release()

    def summary(self) -> dict:
        k = len(self.dec)
        el = max(self.t_end - self.t_start, 1e-9)
        last = None
        if k:
            d = self.named()[-1]
            last = {"decision": k - 1, "cpu": d[0], "point": d[1]}
        return {
            "strategy": self.cfg.schedule, "seed": self.cfg.seed, "decisions": k, "end": self.end,
            "last": last, "decisions_per_s": round(k / el, 1), "wall_s": round(el, 3),
            "divergence": self.divergence, "skipped": self.skipped,
            self.cfg.schedule: self.strategy.describe(),
        }

    def named(self) -> list:
        """The decisions made, by name (replay files)."""
        return [c.name(SCHED_POINTS[i]) for c, i in zip(self.dec, self.dec_point)]


def monitor(cfg, arena, procs, sig, result, progress, t0, sems) -> float:
    """The coordinator's loop under a schedule (instead of coordinator._monitor):
    what ``coordinator.run(cfg, monitor=...)`` calls; returns the wall time."""
    co = BatonLoop(cfg, arena, procs, sems)
    try:
        co.run(sig, result, progress)
    finally:
        co.release()
        result.schedule = co.summary()
        result.decisions = co.named()
        result.skipped = list(co.skipped)
    return time.monotonic() - t0


def run(cfg, progress=None):
    """``harness.coordinator.run``, with the baton loop when ``cfg.schedule`` asks for one."""
    return coordinator.run(cfg, progress=progress, monitor=monitor if cfg.schedule else None)


__all__ = ["BatonLoop", "monitor", "run"]
