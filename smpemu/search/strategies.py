"""Scheduling strategies: which runnable process gets the baton next.

Why it exists: the baton loop (``search.baton_loop``) only knows that some
processes are runnable; a strategy chooses one, from the seed alone, so the
sequence of decisions is the interleaving:

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

A strategy's ``choose(k, enabled, co)`` gets decision number k, the runnable
processes and the loop (``co.sched``: who is live, where each is parked), and
returns a process (PCT) or a choice (``sched.choices``: replay).
"""

from __future__ import annotations

import random

from smpemu.kvm.layout import proc_name
from smpemu.kvm.points import SCHED_POINTS
from smpemu.sched.choices import parse


class Divergence(Exception):
    """A replay found the run somewhere else than the recording."""


def who(p: int, n_vcpus: int, n_hosts: int = 1) -> str:
    """'vcpu 2', 'host' (the only host process), 'host1' (one of several)."""
    return proc_name(p, n_vcpus, n_hosts)


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

    def __init__(self, decisions: list, n_vcpus: int, n_hosts: int = 1):
        self.decisions = decisions
        self.parsed = [parse(d) for d in decisions]  # (choice, the point its process must be at)
        self.N = n_vcpus
        self.K = n_hosts

    def command(self, k: int):
        """Decision k, if it is a command (a drain): it needs no runnable process."""
        c = self.parsed[k][0]
        return None if c.is_step else c

    def choose(self, k: int, enabled: list, co):
        choice, point = self.parsed[k]
        p = choice.actor
        d = self.decisions[k]
        at = (f"replay diverged at decision {k} of {len(self.decisions)}: recorded "
              f"{who(p, self.N, self.K)} at {d[1]}")
        sched = co.sched
        if not sched.live[p]:
            raise Divergence(f"{at}, but it has finished")
        if not choice.is_step:
            return choice  # its store buffer drains while it is parked
        cur = SCHED_POINTS[sched.point[p]]
        if cur != point:
            raise Divergence(f"{at}, but it is at {cur}")
        if p not in enabled:
            raise Divergence(f"{at}, but it is waiting there (not runnable)")
        return choice

    def describe(self) -> dict:
        return {"decisions": len(self.decisions)}


__all__ = ["PCT", "Replay", "Divergence", "who"]
