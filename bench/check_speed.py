"""``python -m bench.check_speed``: ``smpemu check``'s scheduling points per CPU second,
against the same steps run without the explorer.

Why it exists: the issue's target for ``smpemu check`` is 100,000 scheduling
points per second; the machine is shared (2 cores, several jobs), so the rate
is per second of this process's CPU time.  For a few fixed explorations it
measures the explorer (``search.check_cmd.run_check``: ``points_per_cpu_s``,
the number the speed line and ``--json`` print) and, as the baseline measured
in the same run, exactly the steps that exploration executed (every world it
built, every choice it stepped, recorded in a separate run) re-executed with
no search around them: ``World.replay`` over each world's whole choice list.
The ratio explorer / baseline is the share of the explorer's time that the
protocol code and the world resets take (1.0: the search costs nothing).
The two sides alternate, best of ``--repeat`` each.

It lives in bench/ (not smpemu/study/bench/, which may not import the search).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from smpemu.search.check_cmd import run_check
from smpemu.search.explore import Explorer
from smpemu.search.scenarios import load_scenario
from smpemu.search.world import Proto

TARGET = 100_000  # points per CPU second
# (policy, scenario, memory model, requests, bound, schedules: quick, full; None: all)
RUNS = (
    ("tlbs-dirty", "default", "tso", "modern", 1, (1500, 6000)),
    ("eager", "default", "native", "2009", 1, (1500, 6000)),
    ("deferred-v4-nowmb", "one-flusher", "relaxed", "modern", 2, (None, None)),
)


class _Recorder:
    """A world that records what the explorer steps (for the baseline)."""

    def __init__(self, world, log):
        self.w = world
        self.log = []
        log.append(self.log)

    def step(self, ch):
        self.log.append(ch)
        return self.w.step(ch)

    def replay(self, chs):
        self.log.extend(chs)
        return self.w.replay(chs)

    def __getattr__(self, name):
        return getattr(self.w, name)


def _recorded(run, n) -> tuple:
    """The choice list of every world the exploration builds (not timed)."""
    policy, scenario, model, requests, bound, _ = run
    proto = Proto(load_scenario(scenario), policy, model, requests)
    logs: list = []
    ex = Explorer(lambda: _Recorder(proto.world(), logs), bound, prefix=proto.setup_prefix(),
                  max_schedules=n)
    res = ex.run()
    return proto, logs, res.points


def _baseline(proto, logs) -> float:
    """CPU seconds to build every world and step its choices, no explorer."""
    c0 = time.process_time()
    for chs in logs:
        w = proto.world()
        try:
            w.replay(chs)
        finally:
            w.close()
    return time.process_time() - c0


def measure(run, quick: bool, repeat: int) -> dict:
    policy, scenario, model, requests, bound, sizes = run
    n = sizes[0 if quick else 1]
    proto, logs, points = _recorded(run, n)
    best_ex = best_base = 0.0
    for _ in range(repeat):
        cr = run_check(policy, scenario, model, requests, bound, timeout=None, max_schedules=n)
        if cr.res.points != points:
            raise SystemExit(f"check_speed: the exploration is not deterministic ({cr.res.points} != {points} points)")
        best_ex = max(best_ex, cr.res.points / max(cr.res.cpu_s, 1e-9))
        best_base = max(best_base, points / max(_baseline(proto, logs), 1e-9))
    name = f"check.{policy}.{scenario}.{model}" + (".2009" if requests == "2009" else "")
    print(f"{name}: bound {bound}, {cr.res.schedules:,} schedules, {points:,} points: explorer "
          f"{best_ex:,.0f} points/CPU s, the same steps without it {best_base:,.0f} points/CPU s "
          f"(ratio {best_ex / best_base:.2f}); target {TARGET:,}: {'met' if best_ex >= TARGET else 'NOT met'}",
          flush=True)
    return {name: {"value": best_ex, "unit": "points/CPU s", "baseline": "same steps, no explorer",
                   "baseline_value": best_base, "ratio": best_ex / best_base, "target_points_per_cpu_s": TARGET,
                   "met": best_ex >= TARGET, "schedules": cr.res.schedules, "points": points}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.check_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer schedules (about half a minute)")
    ap.add_argument("--repeat", type=int, default=3, help="alternations of the two sides (best of each)")
    ap.add_argument("--json", help="write {name: {value, baseline_value, ratio, ...}} here")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        print("python -m bench.check_speed: --repeat must be >= 1", file=sys.stderr)
        return 2
    res: dict = {}
    for run in RUNS:
        res.update(measure(run, a.quick, a.repeat))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
