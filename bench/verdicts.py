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
smpemu/study may not import).  A full table took 16 minutes on 2 cores
(2026-12-02; three-flushers is the long one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from smpemu.kvm import policies
from smpemu.search.check_cmd import run_check
from smpemu.search.scenarios import SCENARIOS


def cell(row: dict) -> str:
    v = row["violation"]
    if v is not None:
        return f"{v['kind']} ({v['preemptions']})" + ("" if row["complete"] else " INCOMPLETE")
    return "clean" if row["complete"] else "INCOMPLETE"


def table(rows: list) -> str:
    """One row per policy, one column per scenario (its bound), a cell per notifier ordering: '2009 / 2012'."""
    pols = list(dict.fromkeys(r["policy"] for r in rows))
    scs = list(dict.fromkeys(r["scenario"] for r in rows))
    nts = list(dict.fromkeys(r["notifier"] for r in rows))
    at = {(r["policy"], r["scenario"], r["notifier"]): r for r in rows}
    bound = {r["scenario"]: r["bound"] for r in rows}
    out = ["| policy | " + " | ".join(f"{s} ({bound[s]})" for s in scs) + " |", "|---|" + "---|" * len(scs)]
    for p in pols:
        out.append(f"| `{p}` | " + " | ".join(" / ".join(cell(at[p, s, n]) if (p, s, n) in at else "-" for n in nts)
                                              for s in scs) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.verdicts", description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(policies.POLICIES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--notifiers", default="2009,2012")
    ap.add_argument("--memory-model", default="native")
    ap.add_argument("--requests", default="modern")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", dest="json_out", help="also write the rows here")
    ap.add_argument("--render", nargs="+", metavar="JSON", help="only print the table of saved --json files")
    a = ap.parse_args(argv)
    if a.render:
        rows = [r for path in a.render for r in json.load(open(path))]
    else:
        rows = []
        for p in a.policies.split(","):
            for s in a.scenarios.split(","):
                for n in a.notifiers.split(","):
                    t0 = time.monotonic()
                    cr = run_check(p, s, a.memory_model, a.requests, timeout=a.timeout, jobs=a.jobs, notifier=n)
                    d = cr.as_dict()
                    row = {k: d[k] for k in ("policy", "scenario", "notifier", "memory_model", "requests", "bound",
                                             "complete", "schedules", "pruned")}
                    row["violation"] = d["violation"] and {k: d["violation"][k]
                                                           for k in ("kind", "preemptions", "schedule")}
                    row["wall_s"] = round(time.monotonic() - t0, 1)
                    rows.append(row)
                    print(f"  {p} {s} {n}: {cell(row)}, {row['schedules']:,} schedules, {row['wall_s']} s",
                          file=sys.stderr, flush=True)
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump(rows, f, indent=1)
    models = sorted({(r["memory_model"], r["requests"]) for r in rows})
    print(f"smpemu check at each scenario's default bound (in the header), "
          f"{', '.join(f'memory model {m}, requests {q}' for m, q in models)}; a cell: --notifier "
          f"{' / '.join(dict.fromkeys(r['notifier'] for r in rows))}, each the kind of the minimal "
          f"counterexample (its preemptions) or clean (every schedule within the bound explored)")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
