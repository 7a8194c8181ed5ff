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
  says where.

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
from smpemu.harness.baton import (
    DONE, K_RANGE, K_SEM, K_TURN, K_WORDS, PID, R_COUNT, R_KIND, R_POINT, R_RBASE, R_RCOUNT, R_RSTRIDE,
    R_SEM, R_STATE, R_W0, R_W1, SCHED_POINTS,
)
from smpemu.harness.config import STRATEGIES, RunConfig
from smpemu.kvm.layout import C, CTL_SCHED_END

REPLAY_FORMAT = 1


class Divergence(Exception):
    """A replay found the run somewhere else than the recording."""


def who(p: int, n_vcpus: int) -> str:
    return "host" if p == n_vcpus else f"vcpu {p}"


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

    def choose(self, k: int, enabled: list, co) -> int:
        p, name = self.decisions[k]
        at = f"replay diverged at decision {k} of {len(self.decisions)}: recorded {who(p, self.N)} at {name}"
        if not co.live[p]:
            raise Divergence(f"{at}, but it has finished")
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
                if not any(live[:N]):
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
        return [[p, SCHED_POINTS[i]] for p, i in zip(self.dec, self.dec_point)]


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


def load_replay(path: str):
    """Read and check a replay file: (RunConfig to run, the document)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"replay file {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"replay file {path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("smpemu_replay") != REPLAY_FORMAT:
        raise UsageError(f"replay file {path}: not an smpemu replay file (format {REPLAY_FORMAT})")
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
    for i, d in enumerate(dec):
        if (not isinstance(d, list) or len(d) != 2 or not isinstance(d[0], int) or isinstance(d[0], bool)
                or not isinstance(n_vcpus, int) or not 0 <= d[0] <= n_vcpus or d[1] not in PID):
            raise UsageError(f"replay file {path}: decision {i} is {d!r}, expected [cpu 0..{n_vcpus}, point name]")
    cfgd = dict(cfgd)
    cfgd["delays"] = {k: tuple(v) for k, v in (cfgd.get("delays") or {}).items()}
    try:
        cfg = RunConfig(**cfgd)
    except TypeError as e:
        raise UsageError(f"replay file {path}: bad configuration ({e})") from None
    cfg.schedule = "replay"
    cfg.replay = dec
    cfg.json_path = None
    cfg.validate()
    return cfg, doc


__all__ = ["PCT", "Replay", "monitor", "SCHED_POINTS", "STRATEGIES",
           "replay_doc", "write_replay", "load_replay", "identity", "MATCH_KEYS"]
