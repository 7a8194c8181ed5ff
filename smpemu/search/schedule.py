"""Controlled schedules: real processes, one at a time, in a seeded order.

Why it exists: a race that needs three CPUs to meet inside a window of a few
hundred nanoseconds shows up by luck, and a run that found it cannot be
repeated.  Under ``--schedule pct`` the vCPU processes and the host still run
for real, over the real arena and semaphores, but only the process holding
the *baton* runs.  At every scheduling point a process publishes where it is
(its row of the shared ``sched`` field), hands the baton back to the
coordinator (posts ``sched``) and blocks on its own ``sched-go<r>``
semaphore.  The coordinator, once the running process has parked, picks the
next one, records the decision ``[cpu, point]`` and posts its ``go``.
Between two scheduling points a process runs alone, so what it does there
depends only on the shared state it finds and its own seeded state: the
sequence of decisions *is* the interleaving, and the same decisions give the
same run (docs/schedules.md says exactly what is and is not deterministic).

Scheduling points: every named protocol point (``ctx.point``), every
``sched_steps``-th guest step (``VCPU.periodic``), before each lock
acquisition, and every place a process would block.  Nobody may block in the
OS while another process waits for the baton, so under a schedule each
blocking wait is *cooperative*: a lock that is taken, an ack not yet there, a
halt, a script event, the host with nothing to reclaim park the process with
a *wait condition* (words whose change, a semaphore whose post, can let it
go on).  The coordinator snapshots the watched words when the process parks
(it ran alone since it looked at them, so the snapshot is what it saw) and
treats it as disabled until one of them changes.  The enabled set is thus a
function of the shared state, i.e. of the decisions so far.  No process
enabled: a deadlock, reported with every process's wait.

Strategies:

- ``pct`` (Burckhardt et al., "A randomized scheduler with probabilistic
  guarantees of finding bugs", ASPLOS 2010), in epochs: every ``pct_epoch``
  decisions, random distinct priorities and ``pct_depth - 1`` change points
  among the epoch's decisions, all from the seed; the enabled process of
  highest priority runs; at a change point the process about to run drops
  below every other one.  One epoch over the whole run is the published PCT,
  which starves all but one of our forever-looping vCPUs (measured, and why
  epochs, in docs/schedules.md).
- ``replay``: the recorded decisions, checked one by one: the process must be
  parked at the recorded point and runnable, or the replay has diverged and
  says where.  Format 2 (``smpemu check --replay-out``) adds store-buffer
  drain decisions ``[cpu, "sb.drain", addr]``: under ``controlled_drains``
  the processes' store buffers never drain at random, and the coordinator
  tells a parked process to let its oldest buffered store to ``addr`` reach
  memory (it stays parked at its point), so a drain order found by the
  explorer happens on the real processes too.

A run under a schedule ends at the first violation, after ``max_decisions``
decisions, when every vCPU finished (``--iterations``), or on a deadlock; it
ignores ``--duration`` and ``--delay``.  Then the coordinator sets
``CTL_SCHED_END`` and hands every process its baton: each raises
``SchedEnd`` at its scheduling point and leaves, so nothing runs unscheduled
that could change the verdict.
"""

from __future__ import annotations

import json
from dataclasses import fields
import random
import signal
import time

import posix_ipc

from smpemu import __version__
from smpemu.errors import UsageError
from smpemu.harness.config import STRATEGIES, RunConfig
from smpemu.kvm.points import POINT_NAMES
from smpemu.kvm.layout import C, CTL_SCHED_END
from smpemu.kvm.vcpu import StopRun

REPLAY_FORMAT = 2
REPLAY_FORMATS = (1, 2)  # format 1 (no drains, no scenario) still replays
MULTI_HOST = False  # the baton runs one host process (several reclaimers: not yet)
DRAIN = "sb.drain"  # a decision that drains one buffered store of a parked process

# Scheduling points: the protocol points plus these (names are what replay
# files record; ids are positions in this tuple, private to one run).
SCHED_POINTS = (
    "start",  # before the process's body, once
    "step",  # a guest step (VCPU.periodic)
    "lock.mmu_lock", "lock.pfn_lock",  # about to take the lock
    "wait.mmu_lock", "wait.pfn_lock",  # the lock is taken: wait for its holder word to change
    "wait.ack",  # a flush request's ack is missing
    "halt",  # HLT: until the kick (or the script's event) is posted
    "wait.invalidation",  # a fault raced an mmu-notifier invalidation
    "host.idle",  # reclaim freed: no page freed since the last look
    "host.reclaim",  # reclaim mixed: one reclaim per turn
    "script.wait", "script.spin", "script.busy",  # script events
    "point.paused",  # a script-armed protocol point, until its resume event
    DRAIN,  # not a place to park: a drain decision (replay format 2)
) + POINT_NAMES
PID = {name: i for i, name in enumerate(SCHED_POINTS)}
P_STEP = PID["step"]
_LOCK_POINTS = {"mmu_lock": (PID["lock.mmu_lock"], PID["wait.mmu_lock"]),
                "pfn_lock": (PID["lock.pfn_lock"], PID["wait.pfn_lock"])}

# one row of the shared ``sched`` field per process (written by the process
# while it holds the baton, read by the coordinator after the post)
R_STATE, R_POINT, R_COUNT, R_KIND, R_W0, R_W1, R_SEM, R_RBASE, R_RSTRIDE, R_RCOUNT, R_CMD = range(11)
PARKED, DONE = 1, 2
# wait conditions (bits of R_KIND): runnable again once any of them holds
K_WORDS = 1  # word R_W0 or R_W1 (-1: none) differs from its value at park time
K_SEM = 2  # semaphore number R_SEM (sorted run semaphore names) has a post
K_RANGE = 4  # one of R_RCOUNT words from R_RBASE, R_RSTRIDE apart, changed
K_TURN = 8  # another process has run since (a timed wait whose time is up)


class SchedEnd(StopRun):
    """The schedule is over: leave now (raised at a scheduling point)."""


class Divergence(Exception):
    """A replay found the run somewhere else than the recording."""


def who(p: int, n_vcpus: int) -> str:
    return "host" if p == n_vcpus else f"vcpu {p}"


# -- the process side ------------------------------------------------------------------
class ProcSched:
    """One process's end of the baton (``ctx.sched``)."""

    def __init__(self, ctx, spec):
        idx = ctx.pid_index
        arena = ctx.arena
        self.W = arena.words
        self.layout = arena.layout
        self.row = arena.layout["sched"].addr(idx, 0)
        self.end = arena.ctl_addr(CTL_SCHED_END)
        self.go = spec.sems[f"sched-go{idx}"]
        self.post = spec.sems["sched"]
        self.sem_id = {id(spec.sems[k]): i for i, k in enumerate(sorted(spec.sems))}
        self.every = spec.cfg.sched_steps
        self.n = 0
        # --requests 2009: IPIs are acked while waiting, so our request flag
        # changing must make us runnable too
        self.flag = ctx.a_flag[idx] if not ctx.is_host and ctx.params.requests == "2009" else -1

    def park(self, ctx, point: int, kind: int = 0, w0: int = -1, w1: int = -1, sem: int = -1,
             rbase: int = 0, rstride: int = 0, rcount: int = 0) -> None:
        """Publish where we are, hand the baton back, run again when told to."""
        W = self.W
        r = self.row
        self.n += 1
        W[r + R_POINT] = point
        W[r + R_COUNT] = self.n
        W[r + R_KIND] = kind
        W[r + R_W0] = w0
        W[r + R_W1] = w1
        W[r + R_SEM] = sem
        W[r + R_RBASE] = rbase
        W[r + R_RSTRIDE] = rstride
        W[r + R_RCOUNT] = rcount
        W[r + R_STATE] = PARKED
        self.post.release()  # the row before the post: the coordinator reads it after
        go = self.go
        while True:
            try:
                go.acquire(0.1)
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                ctx.check_alive()  # a low priority may park us for long; a dead coordinator may not
                continue
            cmd = W[r + R_CMD]
            if not cmd:
                break
            # a drain decision: let one buffered store reach memory, stay parked
            W[r + R_CMD] = 0
            drain_addr(ctx.mm, cmd - 1)
            self.post.release()  # pairs with the coordinator's wait after it wrote R_CMD
        if W[self.end]:
            ctx.trace = None  # nothing after the schedule's end is part of its interleaving
            raise SchedEnd()

    def start(self, ctx) -> None:
        self.park(ctx, PID["start"])

    def done(self) -> None:
        self.W[self.row + R_STATE] = DONE
        self.post.release()

    # plain scheduling points
    def step(self, ctx) -> None:
        self.park(ctx, P_STEP)

    def point(self, ctx, name: str) -> None:
        self.park(ctx, PID[name])

    def hit(self, ctx, arm, name: str) -> None:
        """A protocol point (Points.hit); ``arm``: a script's pause armed here."""
        self.park(ctx, PID[name])
        if arm is not None:
            paused, resume, _timeout = arm
            ctx.mm.drain()
            paused.release()
            self.wait_event(ctx, "point.paused", resume, poll=True)

    # cooperative waits: never block in the OS, park with a wait condition
    def lock(self, ctx, sem, holder_addr: int, what: str) -> None:
        pre, wait = _LOCK_POINTS.get(what, _LOCK_POINTS["mmu_lock"])
        ctx.mm.drain()  # pairs with: a lock holder sees our earlier stores
        self.park(ctx, pre)
        while True:
            try:
                sem.acquire(0)
                break
            except posix_ipc.BusyError:
                pass
            # 2009: IPIs are acked while we wait for the lock; serve before we
            # park, so that a request already pending cannot leave us parked
            # on a flag that never changes again
            ctx.exit_poll()
            self.park(ctx, wait, K_WORDS, holder_addr, self.flag)
        self.W[holder_addr] = ctx.ospid
        self.W[ctx.acq_of[holder_addr]] += 1

    def wait_acks(self, ctx, targets, missing_of) -> None:
        me = ctx.pid_index
        missing = missing_of(ctx, targets)
        while missing:
            ctx.exit_poll()  # 2009: requesters ack each other while they wait (see lock())
            missing = missing_of(ctx, missing)
            if not missing:
                return
            ctx.mm.drain()  # before waiting
            self.park(ctx, PID["wait.ack"], K_WORDS, ctx.ack_seq_addr(missing[0], me), self.flag)
            missing = missing_of(ctx, missing)

    def halt(self, cpu, timeout: float, wake_sem=None) -> bool:
        """VCPU.halt under a schedule.  An untimed wait (a script event) ends
        when the event is posted; a timed HLT ends at a kick, or times out
        once every other process has had a turn (time is decisions here)."""
        ctx = cpu.ctx
        mm = cpu.mm
        sem = wake_sem if wake_sem is not None else cpu.kick
        timed = wake_sem is None
        kind = K_SEM | (K_TURN if timed else 0)
        while True:
            woke = waited = False
            cpu.exit_guest()
            mm.store(cpu.a_halted, 1)
            mm.mb()  # halted before the request check: pairs with mb() in ipi.make_request()
            if not mm.load(cpu.a_flag):
                mm.drain()  # before waiting
                woke = _try(sem)
                if not woke:
                    waited = True
                    self.park(ctx, PID["halt"], kind, sem=self.sem_id[id(sem)])
                    woke = _try(sem)
                if woke and sem is cpu.kick:
                    ctx.counters[C["ipis_received"]] += 1
            mm.store(cpu.a_halted, 0)
            cpu.enter_guest()  # serves whatever is pending
            if woke:
                return True
            if ctx.stopping() or (timed and waited):
                return False

    def wait_invalidation(self, cpu) -> None:
        mm = cpu.mm
        a_ncount = cpu.mmu.a_ncount
        while mm.load(a_ncount):
            if cpu.kicked():
                cpu.take_interrupt()  # the invalidation's flush may wait for our ack
                continue
            mm.drain()
            self.park(cpu.ctx, PID["wait.invalidation"], K_WORDS, a_ncount, cpu.a_mode)

    def wait_event(self, ctx, name: str, sem, cpu=None, poll: bool = False) -> None:
        """Until ``sem`` is posted (and take it).  ``cpu``: stay in guest mode
        taking interrupts meanwhile; ``poll``: ack 2009 IPIs meanwhile."""
        w0 = cpu.a_mode if cpu is not None else (self.flag if poll else -1)
        while True:
            if cpu is not None and cpu.kicked():
                cpu.take_interrupt()
            if poll:
                ctx.exit_poll()  # before parking (see lock())
            if _try(sem):
                return
            ctx.mm.drain()
            self.park(ctx, PID[name], K_SEM | K_WORDS, w0, sem=self.sem_id[id(sem)])

    def wait_field(self, ctx, name: str, field: str, count: int) -> None:
        """Until one of the first ``count`` rows of a per-line field changes."""
        f = self.layout[field]
        ctx.mm.drain()
        self.park(ctx, PID[name], K_RANGE, rbase=f.addr(0, 0), rstride=f.shape[1], rcount=count)


def drain_addr(mm, addr: int) -> None:
    """Let the oldest buffered store to ``addr`` that may drain now reach memory."""
    for j, a in zip(mm.drain_choices(), mm.drain_choice_addrs()):
        if a == addr:
            mm.drain_entry(j)
            return
    raise Divergence(f"no buffered store to word {addr} may drain now")


def _try(sem) -> bool:
    try:
        sem.acquire(0)
        return True
    except posix_ipc.BusyError:
        return False


# -- strategies ---------------------------------------------------------------------------
class PCT:
    """PCT in epochs, every random choice from the seed.

    Each epoch of ``epoch`` decisions is one PCT instance: the processes get
    fresh random distinct priorities and ``depth - 1`` change points are
    drawn among the epoch's decisions.  The enabled process of highest
    priority runs; at a change point the process about to run drops below
    every other one (and below the earlier changes of the epoch).  One epoch
    over the whole run is the published PCT; epoch 1 with depth 1 is a
    uniform random walk.  Why epochs: docs/schedules.md (looping vCPUs never
    finish, so one PCT instance starves every process but the top one).
    """

    def __init__(self, seed: int, n: int, depth: int, epoch: int):
        self.rng = random.Random(f"smpemu-pct-{seed}")
        self.n = n
        self.depth = depth
        self.epoch = epoch
        self.prio: list[int] = []
        self.change: dict[int, int] = {}
        self.changes = 0  # change points reached

    def _new_epoch(self, k: int) -> None:
        rng = self.rng
        d = self.depth
        prio = list(range(d, d + self.n))
        rng.shuffle(prio)
        self.prio = prio
        cps = rng.sample(range(self.epoch), min(d - 1, self.epoch))
        self.change = {k + c: j for j, c in enumerate(sorted(cps))}

    def choose(self, k: int, enabled: list, co) -> int:
        if k % self.epoch == 0:
            self._new_epoch(k)
        prio = self.prio
        best = max(enabled, key=prio.__getitem__)
        j = self.change.get(k)
        if j is not None:
            prio[best] = self.depth - 1 - j  # below every priority of the epoch so far
            self.changes += 1
            best = max(enabled, key=prio.__getitem__)
        return best

    def describe(self) -> dict:
        return {"depth": self.depth, "epoch": self.epoch, "change_points_reached": self.changes}


class Replay:
    """Follow recorded decisions; any mismatch is a divergence."""

    def __init__(self, decisions: list, n_vcpus: int):
        self.decisions = decisions
        self.N = n_vcpus

    drain = None  # the address of the decision just chosen, if it is a drain

    def choose(self, k: int, enabled: list, co) -> int:
        d = self.decisions[k]
        p, name = d[0], d[1]
        self.drain = d[2] if name == DRAIN else None
        at = f"replay diverged at decision {k} of {len(self.decisions)}: recorded {who(p, self.N)} at {name}"
        if not co.live[p]:
            raise Divergence(f"{at}, but it has finished")
        if self.drain is not None:
            return p  # a drain needs no runnable process: its store buffer drains while it is parked
        cur = SCHED_POINTS[co.W[co.rows[p] + R_POINT]]
        if cur != name:
            raise Divergence(f"{at}, but it is at {cur}")
        if p not in enabled:
            raise Divergence(f"{at}, but it is waiting there (not runnable)")
        return p

    def describe(self) -> dict:
        return {"decisions": len(self.decisions)}


# -- the coordinator side -----------------------------------------------------------------
class _Coordinator:
    def __init__(self, cfg, arena, procs, sems):
        self.cfg = cfg
        self.arena = arena
        self.procs = procs
        self.N = cfg.vcpus
        self.n = n = cfg.vcpus + 1
        L = arena.layout
        self.W = arena.words
        self.rows = [L["sched"].addr(p, 0) for p in range(n)]
        self.viol = [L["viol"].addr(p, 0, 0) for p in range(n)]  # kind of each process's first record
        self.go = [sems[f"sched-go{p}"] for p in range(n)]
        self.post = sems["sched"]
        self.sem_list = [sems[k] for k in sorted(sems)]
        self.live = [True] * n
        self.cond = [None] * n  # None: runnable; else (kind, w0, s0, w1, s1, sem, [(addr, seen)])
        self.last = -1
        self.dec: list[int] = []
        self.dec_point: list[int] = []
        self.dec_drain: dict[int, int] = {}  # decision number -> address drained
        self.end = None
        self.divergence = None
        if cfg.schedule == "replay":
            self.strategy = Replay(cfg.replay, self.N)
            self.limit = len(cfg.replay)
        else:
            self.strategy = PCT(cfg.seed, n, cfg.pct_depth, cfg.pct_epoch)
            self.limit = cfg.max_decisions
        self.t_start = self.t_end = time.monotonic()

    # waiting for the running process to park
    def _dead(self) -> str | None:
        for i, p in enumerate(self.procs):
            code = p.exitcode
            if code is not None and code != 0:
                from smpemu.harness.worker import read_error

                msg = read_error(self.arena, i)
                if code < 0:
                    msg = f"{who(i, self.N)} (pid {p.pid}) died ({signal.Signals(-code).name})"
                return msg or f"{who(i, self.N)} (pid {p.pid}) exited with code {code}"
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
                    msg = (f"{who(p, self.N)} (pid {self.procs[p].pid}) did not reach its next scheduling "
                           f"point within {limit} s after decision {len(self.dec) - 1} (stopped or stuck)")
            if msg is not None:
                result.aborted = msg
                self.end = "aborted"
                return False

    def _parked(self, p) -> str | None:
        """Take note of where ``p`` parked (or that it is done)."""
        W = self.W
        r = self.rows[p]
        if W[r + R_STATE] == DONE:
            self.live[p] = False
            self.cond[p] = None
            proc = self.procs[p]
            proc.join(self.cfg.ack_timeout)
            if proc.exitcode != 0:
                return self._dead() or f"{who(p, self.N)} (pid {proc.pid}) did not exit after it finished"
            return None
        kind = W[r + R_KIND]
        if not kind:
            self.cond[p] = None
            return None
        w0, w1 = W[r + R_W0], W[r + R_W1]
        rng = []
        if kind & K_RANGE:
            base, stride = W[r + R_RBASE], W[r + R_RSTRIDE]
            rng = [(base + i * stride, W[base + i * stride]) for i in range(W[r + R_RCOUNT])]
        self.cond[p] = (kind, w0, W[w0] if w0 >= 0 else 0, w1, W[w1] if w1 >= 0 else 0,
                        self.sem_list[W[r + R_SEM]] if kind & K_SEM else None, rng)
        return None

    def _runnable(self, p) -> bool:
        c = self.cond[p]
        if c is None:
            return True
        kind, w0, s0, w1, s1, sem, rng = c
        W = self.W
        if kind & K_WORDS and ((w0 >= 0 and W[w0] != s0) or (w1 >= 0 and W[w1] != s1)):
            return True
        if kind & K_SEM and sem.value > 0:
            return True
        if kind & K_RANGE:
            for a, seen in rng:
                if W[a] != seen:
                    return True
        if kind & K_TURN and self.last != p:
            return True
        return False

    def _violation(self) -> bool:
        W = self.W
        for a in self.viol:
            if W[a]:
                return True
        return False

    def _deadlock(self, k) -> str:
        parts = []
        for p in range(self.n):
            if self.live[p]:
                c = self.cond[p]
                name = SCHED_POINTS[self.W[self.rows[p] + R_POINT]]
                what = name
                if c is not None and c[1] >= 0 and name.startswith("wait.") and name.endswith("_lock"):
                    what += f" (held by pid {self.W[c[1]]})"
                parts.append(f"{who(p, self.N)} at {what}")
        return f"schedule deadlock at decision {k}: no process can run: " + ", ".join(parts)

    def run(self, sig, result, progress) -> None:
        n = self.n
        for _ in range(n):  # everyone parks at "start" (or is done already)
            if not self._await(None, sig, result, self.cfg.start_timeout):
                return
        for p in range(n):
            msg = self._parked(p)
            if msg:
                result.aborted = msg
                self.end = "aborted"
                return
        self.t_start = time.monotonic()
        W = self.W
        rows = self.rows
        live = self.live
        limit = self.limit
        strategy = self.strategy
        step_limit = self.cfg.ack_timeout
        N = self.N
        k = 0
        try:
            while True:
                if self._violation():
                    self.end = "violation"
                    break
                if not any(live[:N]) and (strategy.__class__ is not Replay or k >= limit):
                    # (a replay goes on while decisions are left: hosts may act
                    # after the vCPUs finished, as in smpemu check's scenarios)
                    self.end = "finished"
                    break
                if k >= limit:
                    self.end = "replay_end" if strategy.__class__ is Replay else "max_decisions"
                    break
                if sig.got:
                    result.interrupted = sig.got
                    self.end = "interrupted"
                    break
                enabled = [p for p in range(n) if live[p] and self._runnable(p)]
                if not enabled:  # only timed waits left: their time is up
                    enabled = [p for p in range(n) if live[p] and self.cond[p] and self.cond[p][0] & K_TURN]
                if not enabled:
                    self.end = "deadlock"
                    result.aborted = self._deadlock(k)
                    break
                try:
                    p = strategy.choose(k, enabled, self)
                except Divergence as e:
                    self.end = "divergence"
                    self.divergence = result.aborted = str(e)
                    break
                drain = getattr(strategy, "drain", None)
                if drain is not None:
                    self.dec_drain[len(self.dec)] = drain
                    self.dec.append(p)
                    self.dec_point.append(PID[DRAIN])
                    W[rows[p] + R_CMD] = drain + 1
                    self.go[p].release()
                    if not self._await(p, sig, result, step_limit):
                        break
                    if W[rows[p] + R_CMD]:
                        result.aborted = f"schedule: {who(p, N)} did not drain word {drain} at decision {k}"
                        self.end = "aborted"
                        break
                    k += 1
                    continue
                self.dec.append(p)
                self.dec_point.append(W[rows[p] + R_POINT])
                self.last = p
                count = W[rows[p] + R_COUNT]
                self.go[p].release()
                if not self._await(p, sig, result, step_limit):
                    break
                if W[rows[p] + R_STATE] != DONE and W[rows[p] + R_COUNT] == count:
                    msg = f"schedule: the baton came back at decision {k}, but not from {who(p, N)}"
                else:
                    msg = self._parked(p)
                if msg:
                    result.aborted = msg
                    self.end = "aborted"
                    break
                k += 1
                if k & 1023 == 0:
                    msg = self._dead()  # a parked process killed meanwhile
                    if msg:
                        result.aborted = msg
                        self.end = "aborted"
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
            last = {"decision": k - 1, "cpu": self.dec[-1], "point": SCHED_POINTS[self.dec_point[-1]]}
        return {
            "strategy": self.cfg.schedule, "seed": self.cfg.seed, "decisions": k, "end": self.end,
            "last": last, "decisions_per_s": round(k / el, 1), "wall_s": round(el, 3),
            "divergence": self.divergence, self.cfg.schedule: self.strategy.describe(),
        }

    def named(self) -> list:
        return [[p, SCHED_POINTS[i]] if k not in self.dec_drain else [p, DRAIN, self.dec_drain[k]]
                for k, (p, i) in enumerate(zip(self.dec, self.dec_point))]


def monitor(cfg, arena, procs, sig, result, progress, t0, sems) -> float:
    """The coordinator's loop under a schedule (instead of coordinator._monitor)."""
    co = _Coordinator(cfg, arena, procs, sems)
    try:
        co.run(sig, result, progress)
    finally:
        co.release()
        result.schedule = co.summary()
        result.decisions = co.named()
    return time.monotonic() - t0


# -- replay files ----------------------------------------------------------------------------
def replay_doc(result) -> dict:
    """What ``smpemu replay`` needs to repeat a scheduled run (a RunResult)."""
    s = result.schedule or {}
    v = result.violations[0] if result.violations else None
    return {
        "smpemu_replay": REPLAY_FORMAT,
        "smpemu_version": __version__,
        "scenario": None,  # smpemu check: the scenario's name; stress: a workload, no scenario
        "reclaimers": n_hosts(result.config),
        "seed": result.config["seed"],
        "config": result.config,
        "schedule": {k: s.get(k) for k in ("strategy", "end", "last", s.get("strategy"))},
        "violation": _identity(v, s.get("last")),
        "decisions": result.decisions or [],
    }


def _identity(v, last) -> dict | None:
    if v is None:
        return None
    d = {k: v[k] for k in ("kind", "vcpu", "slot", "gfn", "pfn", "reporter")}
    d["point"] = last["point"] if last else None
    d["cpu"] = last["cpu"] if last else None
    return d


MATCH_KEYS = ("kind", "vcpu", "slot", "pfn", "point")


def identity(result) -> dict | None:
    """The first violation of a scheduled run and the point of its last decision."""
    return _identity(result.violations[0] if result.violations else None, (result.schedule or {}).get("last"))


def write_doc(doc: dict, path: str) -> None:
    """One line of JSON per decision would be long: the decisions go compact."""
    head = {k: v for k, v in doc.items() if k != "decisions"}
    with open(path, "w") as f:
        f.write(json.dumps(head, indent=1)[:-2])
        f.write(',\n "decisions": [\n')
        dec = doc["decisions"]
        for i in range(0, len(dec), 8):
            f.write("  " + ", ".join(json.dumps(d) for d in dec[i:i + 8]))
            f.write(",\n" if i + 8 < len(dec) else "\n")
        f.write(" ]\n}\n")


def write_replay(result, path: str) -> dict:
    doc = replay_doc(result)
    write_doc(doc, path)
    return doc


def describe_last(doc: dict) -> str:
    """'found after N decisions, the last one vcpu 1 at invlpg.after_set_dirty'."""
    last = (doc.get("schedule") or {}).get("last") or {}
    n_vcpus = doc["config"]["vcpus"]
    if not last:
        return "no decision made"
    return (f"seed {doc['seed']}: {last['decision'] + 1} decisions, the last one "
            f"{who(last['cpu'], n_vcpus)} at {last['point']}")


def n_hosts(cfgd: dict, script=None) -> int:
    """Host processes of a run configuration (dict): its reclaimers, or the script's hosts."""
    script = script if script is not None else cfgd.get("script")
    if isinstance(script, dict) and isinstance(script.get("hosts"), list):
        return max(1, len(script["hosts"]))
    r = cfgd.get("reclaimers")
    return r if isinstance(r, int) and r >= 1 else 1


def load_replay(path: str):
    """Read and check a replay file: (RunConfig to run, the document)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"replay file {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"replay file {path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("smpemu_replay") not in REPLAY_FORMATS:
        raise UsageError(f"replay file {path}: not an smpemu replay file (format "
                         f"{' or '.join(map(str, REPLAY_FORMATS))})")
    ver = doc.get("smpemu_version")
    if ver != __version__:
        raise UsageError(f"replay file {path} was written by smpemu {ver!r}, this is smpemu {__version__}: "
                         f"a schedule replays only on the version that recorded it")
    cfgd = doc.get("config")
    if not isinstance(cfgd, dict):
        raise UsageError(f"replay file {path}: no configuration")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(cfgd) - known)
    if unknown:
        raise UsageError(f"replay file {path}: unknown configuration field(s) {', '.join(unknown)}")
    n_vcpus = cfgd.get("vcpus")
    dec = doc.get("decisions")
    if not isinstance(dec, list) or not dec:
        raise UsageError(f"replay file {path}: 'decisions' must be a non-empty list of [cpu, point]")
    script = doc.get("script")
    if script is not None and not isinstance(script, dict):
        raise UsageError(f"replay file {path}: 'script' must be a script object")
    hosts = n_hosts(cfgd, script)
    n_proc = (n_vcpus + hosts - 1) if isinstance(n_vcpus, int) else None
    v2 = doc["smpemu_replay"] >= 2
    for i, d in enumerate(dec):
        drain = (v2 and isinstance(d, list) and len(d) == 3 and len(d) > 1 and d[1] == DRAIN
                 and isinstance(d[2], int) and not isinstance(d[2], bool) and d[2] >= 0)
        if (not isinstance(d, list) or not (len(d) == 2 or drain) or not isinstance(d[0], int)
                or isinstance(d[0], bool) or n_proc is None or not 0 <= d[0] <= n_proc or d[1] not in PID
                or (d[1] == DRAIN and not drain)):
            raise UsageError(f"replay file {path}: decision {i} is {d!r}, expected [cpu 0..{n_proc}, point name]"
                             + (f" or [cpu, {DRAIN!r}, word]" if v2 else ""))
    want = doc.get("reclaimers", 1)
    if want != hosts:
        raise UsageError(f"replay file {path}: it needs {want} host processes (reclaimers), "
                         f"its configuration gives {hosts}")
    if hosts > 1 and not MULTI_HOST:
        raise UsageError(f"replay file {path}: it needs {hosts} host processes, and this smpemu runs one "
                         f"host process under a schedule")
    cfgd = dict(cfgd)
    cfgd["delays"] = {k: tuple(v) for k, v in (cfgd.get("delays") or {}).items()}
    try:
        cfg = RunConfig(**cfgd)
    except TypeError as e:
        raise UsageError(f"replay file {path}: bad configuration ({e})") from None
    cfg.schedule = "replay"
    cfg.replay = dec
    if script is not None:
        cfg.script = script
    cfg.json_path = None
    cfg.validate()
    return cfg, doc


__all__ = ["ProcSched", "SchedEnd", "PCT", "Replay", "monitor", "SCHED_POINTS", "STRATEGIES",
           "replay_doc", "write_replay", "load_replay", "identity", "MATCH_KEYS"]
