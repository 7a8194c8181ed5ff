"""``python -m tests.replay_data``: write tests/data/replay-<scenario>-*.json.

Why it exists: a counterexample that ``smpemu check`` found must keep
replaying on real processes after the schedulers change (the explorer's
world and the baton must keep giving a decision the same meaning).  These
files were recorded once, before the scheduler core was refactored, and
``tests/test_replay_data.py`` replays every one of them.  One per built-in
scenario, so that they cover two and three host processes and drain
decisions under tso and relaxed:

- default: deferred-v4's overlapping flushes (2 hosts, native);
- one-flusher: deferred-v4-nowmb under relaxed (drain decisions);
- one-flusher: deferred-v3 under tso (a drain decision);
- three-flushers: tlbs-dirty's cmpxchg ABA (3 hosts; about 75 s with 2 processes);
- sync: sync-protected-only's stale write;
- guest-shootdown: each PV flush bug under mmu-lock (format 3: the host's
  sched.out / sched.in decisions, replayed with the preempted vCPU's
  process blocked).

Rewriting them is only right when the protocol code changed on purpose (a
replay file holds a schedule of the code that recorded it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
CASES = (
    ("default", "deferred-v4", "native"),
    ("one-flusher", "deferred-v4-nowmb", "relaxed"),
    ("one-flusher", "deferred-v3", "tso"),
    ("three-flushers", "tlbs-dirty", "native"),
    ("sync", "sync-protected-only", "native"),
)
PV_CASES = tuple(("guest-shootdown", "mmu-lock", "native", m) for m in ("pv-writeback", "pv-overwrite", "pv-no-sync"))


def name(scenario, policy, model, guest_flush=None) -> str:
    return f"replay-{scenario}-{policy}-{model}{'-' + guest_flush if guest_flush else ''}.json"


def main(argv=None) -> int:
    from smpemu.search.check_cmd import run_check
    from smpemu.search.replay_file import write_doc

    ap = argparse.ArgumentParser(prog="python -m tests.replay_data", description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="one scenario")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    for scenario, policy, model, *gf in CASES + PV_CASES:
        if a.only and scenario != a.only:
            continue
        gf = gf[0] if gf else None
        cr = run_check(policy, scenario, model, "modern", None, timeout=600, jobs=a.jobs, guest_flush=gf)
        if cr.replay is None:
            print(f"{scenario} {policy} {model} {gf}: no counterexample", file=sys.stderr)
            return 1
        path = DATA / name(scenario, policy, model, gf)
        write_doc(cr.replay, str(path))
        m = cr.res.minimal
        print(f"{path}: {m.violation['kind']}, {m.bound} preemptions, {len(cr.replay['decisions'])} decisions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
