"""``python -m bench.verdicts``: every policy's verdict on every built-in scenario, as a table.

Why it exists: the README, ``smpemu list``, docs/timeline.md and the policy
docstrings say which policy survives what; each such claim names a scenario
and a bound, and this prints the table they come from: ``smpemu check`` of
every policy on every built-in scenario at the scenario's default bound,
under both notifier orderings (``--notifier 2009`` and ``2012``), native
memory model, modern requests unless told otherwise.  Each cell is the
minimal counterexample's kind and preemptions, or "clean" (complete: every
schedule within the bound explored), or "INCOMPLETE" (timeout).

It lives in bench/ beside check_speed.py (it runs the search, which
smpemu/study may not import).  A full table takes about 10 minutes on 2
cores (three-flushers is the long one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from smpemu.kvm import policies
from smpemu.search.check_cmd import run_check
from smpemu.search.scenarios import SCENARIOS


def cell(cr) -> str:
    r = cr.res
    if r.minimal is not None:
        return f"{r.minimal.violation['kind']} ({r.minimal.bound})" + ("" if r.complete else " INCOMPLETE")
    return "clean" if r.complete else f"INCOMPLETE at {r.level}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.verdicts", description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(policies.POLICIES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--notifiers", default="2009,2012")
    ap.add_argument("--memory-model", default="native")
    ap.add_argument("--requests", default="modern")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args(argv)
    pols, scs, nts = a.policies.split(","), a.scenarios.split(","), a.notifiers.split(",")
    rows = []
    print(f"smpemu check, default bounds, memory model {a.memory_model}, requests {a.requests}; "
          f"a cell: kind (preemptions of the minimal counterexample), or clean (complete)", flush=True)
    print("| policy | " + " | ".join(f"{s} (bound {SCENARIOS[s]['bound']}) {n}" for s in scs for n in nts) + " |")
    print("|---|" + "---|" * (len(scs) * len(nts)), flush=True)
    for p in pols:
        cells = []
        for s in scs:
            for n in nts:
                t0 = time.monotonic()
                cr = run_check(p, s, a.memory_model, a.requests, timeout=a.timeout, jobs=a.jobs, notifier=n)
                d = cr.as_dict()
                rows.append({k: d[k] for k in ("policy", "scenario", "notifier", "memory_model", "requests", "bound",
                                                "complete", "schedules", "pruned", "violation")}
                            | {"wall_s": round(time.monotonic() - t0, 1)})
                if rows[-1]["violation"]:
                    rows[-1]["violation"] = {k: d["violation"][k] for k in ("kind", "preemptions", "schedule")}
                cells.append(cell(cr))
                print(f"  {p} {s} {n}: {cells[-1]}, {cr.res.schedules:,} schedules, {rows[-1]['wall_s']} s",
                      file=sys.stderr, flush=True)
        print(f"| `{p}` | " + " | ".join(cells) + " |", flush=True)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
