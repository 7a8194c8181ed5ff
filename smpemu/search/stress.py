"""``smpemu stress``: run a policy until the oracle fires or time runs out.

Why it exists: a race window of a few hundred nanoseconds is masked by the
next deferred flush, so plain runs almost never show a lost flush.  Stress
widens the windows on purpose and runs short rounds back to back:

- delays at named protocol points (``--delay POINT=US`` or ``=LO-HI``; with
  no ``--delay``, a seeded random choice of points and ranges per round);
- the ``share-unmap`` workload (remote TLBs hold pages their owner unmaps,
  and invlpg is rare enough not to set the dirty flag on the side);
- a host that reclaims each page the moment the guest frees it
  (``--reclaim freed``), before any other invlpg can mask a lost flush;
- optionally cycling vCPU counts and pinning policies across rounds.

Each round is a real run (fresh processes and shared memory) that stops at
the first violation with tracing on, so the report can show the interleaving.
It reports the time and the guest steps to the first violation.

``schedule="pct"`` instead runs each round under a controlled schedule
(search/baton_loop.py): no delays, round k is the PCT schedule of seed + k,
and a round that finds a violation carries the replay document that repeats
it (``StressResult.replay``, written by ``smpemu stress --replay-out``).
"""

from __future__ import annotations

import dataclasses
import random
import time

from smpemu.harness.config import RunConfig
from smpemu.kvm.points import POINT_NAMES
from smpemu.search.baton_loop import run
from smpemu.search.replay_file import replay_doc

RANDOM_RANGES = ((50.0, 400.0), (200.0, 1500.0), (500.0, 3000.0))
RACE_POINTS = ("invlpg.after_set_dirty", "invlpg.after_zap", "flush.after_clear_dirty",
               "notifier.after_unlock")


def random_delays(rng: random.Random) -> dict:
    """One race point, chosen at random, widened by a random range (us).

    Policy-agnostic on purpose: every policy gets the same draws, so a correct
    policy has the same chances to fail as a racy one.  One point at a time,
    because a delay at one point can shrink another's window (a slow notifier
    lets the next invlpg's dirty flag mask the lost flush).
    """
    return {rng.choice(RACE_POINTS): rng.choice(RANDOM_RANGES)}


@dataclasses.dataclass
class StressResult:
    found: bool
    rounds: list
    elapsed_s: float
    time_to_violation_s: float | None = None
    steps_to_violation: int | None = None
    first: dict | None = None  # the run (as_dict) that found it
    aborted: str | None = None
    interrupted: str | None = None
    replay: dict | None = None  # under a schedule: the replay document of the violating round
    points: dict = dataclasses.field(default_factory=dict)  # protocol point -> times reached, all rounds

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("replay")  # its own file (smpemu replay FILE), not part of the summary
        d["points_unreached"] = [p for p, n in self.points.items() if n == 0]
        return d


def stress(base: RunConfig, timeout: float, round_s: float, until_violation: bool = True,
           vcpus_cycle=None, pin_cycle=None, fixed_delays: dict | None = None,
           on_round=None, schedule: str | None = None, progress=None) -> StressResult:
    """Run rounds until a violation (if ``until_violation``) or ``timeout`` seconds."""
    t_start = time.monotonic()
    rounds = []
    steps_before = 0
    schedule = schedule or base.schedule
    vcpus_cycle = vcpus_cycle or [base.vcpus]
    pin_cycle = pin_cycle or [base.pin]
    k = 0
    hit = None
    points = {}  # coverage over every round (the points each round's configuration can reach)
    while True:
        left = timeout - (time.monotonic() - t_start)
        if left <= 0.5 and k > 0:
            break
        # the first round always runs, at least 0.5 s: a stress that explored
        # nothing is no verdict (smpemu stress then exits 4)
        left = max(left, 0.5)
        seed = base.seed + k
        rng = random.Random(seed)
        delays = fixed_delays if fixed_delays else random_delays(rng)
        if schedule:
            delays = {}  # the schedule makes the interleavings: no delays
        cfg = dataclasses.replace(
            base, seed=seed, vcpus=vcpus_cycle[k % len(vcpus_cycle)],
            pin=pin_cycle[k % len(pin_cycle)], delays=delays,
            duration=min(round_s, left), iterations=None,
            trace=True, stop_on_violation=until_violation, json_path=None,
            schedule=schedule,
        )
        t_round = time.monotonic() - t_start
        r = run(cfg, progress=progress)  # progress(fraction, steps) of this round
        d = r.as_dict()
        for p, n in d["points"].items():
            points[p] = points.get(p, 0) + n
        info = {"round": k, "seed": seed, "vcpus": cfg.vcpus, "pin": cfg.pin,
                "delays": {p: list(v) for p, v in delays.items()},
                "steps": d["totals"]["steps"], "wall_s": d["totals"]["wall_s"],
                "violations": d["totals"]["violations"], "aborted": d["aborted"]}
        if r.schedule is not None:
            info["decisions"] = r.schedule["decisions"]
        rounds.append(info)
        if on_round:
            on_round(info)
        if d["interrupted"] or d["aborted"]:
            return StressResult(bool(r.violations), rounds, round(time.monotonic() - t_start, 3),
                                first=d, aborted=d["aborted"], interrupted=d["interrupted"], points=points)
        if r.violations and hit is None:
            v = r.violations[0]
            wall = max(d["totals"]["wall_s"], 1e-9)
            hit = StressResult(
                True, rounds, 0.0,
                time_to_violation_s=round(t_round + v["t_s"], 3),
                # steps are published every 256 guest steps: pro rata to the violation
                steps_to_violation=int(steps_before + d["totals"]["steps"] * min(1.0, v["t_s"] / wall)),
                first=d,
            )
            if r.schedule is not None:
                hit.replay = replay_doc(r)
            if until_violation:
                break
        steps_before += d["totals"]["steps"]
        k += 1
    elapsed = time.monotonic() - t_start
    if hit is not None:
        hit.elapsed_s = round(elapsed, 3)
        hit.rounds = rounds
        hit.points = points
        return hit
    return StressResult(False, rounds, round(elapsed, 3), points=points)


__all__ = ["stress", "StressResult", "random_delays", "POINT_NAMES"]
