"""``python -m tests.fingerprint``: what ``smpemu check`` decides, as one JSON table.

Why it exists: a refactoring of the schedulers (the baton, the explorer's
world, the scheduler core under both) must leave every decision the
explorer makes unchanged.  For every policy x built-in scenario x request
semantics x memory model, at the scenario's default bound, this runs
``run_check(..., max_schedules=CAP, jobs=1)``: the cap is a number of
schedules, not seconds, so the counts are a function of the code alone, and
records what the exploration decided: complete or capped, the schedules,
pruned branches, points, schedules per level, the first and the minimal
counterexample (schedule number, bound, steps, the choices as baton decision
names, the violation) and the coverage of every scheduling point.

    python -m tests.fingerprint --out tests/data/fingerprint-before.json          # the whole table
    python -m tests.fingerprint --ci --out tests/data/fingerprint-ci.json          # the CI subset
    python -m tests.fingerprint --compare tests/data/fingerprint-before.json       # recompute, diff

``tests/test_fingerprint.py`` recomputes the CI subset (a small cap, a few
configurations) and compares it with the committed file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

POLICIES = ("eager", "deferred-v3", "deferred-v4", "deferred-v4-nowmb", "tlbs-dirty", "mmu-lock",
            "sync-protected-only")
SCENARIOS = ("default", "one-flusher", "three-flushers", "sync")
REQUESTS = ("modern", "2009")
MODELS = ("native", "tso", "relaxed")
CAP = 3000  # schedules per configuration: the whole table in a few minutes

# the CI subset: small, but every kind of decision (drains under tso and
# relaxed, several hosts, a violation found, a search capped, one complete)
CI_CAP = 1000
CI_CONFIGS = (
    ("deferred-v4", "default", "modern", "native"),
    ("tlbs-dirty", "default", "2009", "tso"),
    ("deferred-v4-nowmb", "one-flusher", "modern", "relaxed"),
    ("sync-protected-only", "sync", "modern", "native"),
    ("tlbs-dirty", "three-flushers", "modern", "native"),
    ("mmu-lock", "sync", "2009", "relaxed"),
)


def key(policy, scenario, requests, model) -> str:
    return f"{policy}/{scenario}/{requests}/{model}"


def decision_names(policy, scenario, model, requests, choices) -> list:
    """The baton's names of an explorer's choice list (its schedule run once more)."""
    from smpemu.search.check_cmd import replay_schedule
    from smpemu.search.scenarios import load_scenario
    from smpemu.search.world import Proto

    proto = Proto(load_scenario(scenario), policy, model, requests)
    return replay_schedule(proto, choices)["decisions"]


def _found(f, names) -> dict | None:
    if f is None:
        return None
    return {"schedule": f.schedule, "bound": f.bound, "steps": f.steps, "choices": names,
            "violation": {k: v for k, v in sorted(f.violation.items())}}


def fingerprint(policy, scenario, requests, model, cap) -> dict:
    """One configuration's decisions (no timing in it)."""
    from smpemu.search.check_cmd import run_check

    cr = run_check(policy, scenario, model, requests, None, timeout=None, max_schedules=cap, jobs=1)
    r = cr.res
    first = minimal = None
    if r.minimal is not None:
        m_names = cr.counterexample["decisions"]
        minimal = _found(r.minimal, m_names)
        f_names = m_names if r.first is r.minimal else decision_names(policy, scenario, model, requests,
                                                                        r.first.choices)
        first = _found(r.first, f_names)
    d = cr.as_dict()
    return {
        "bound": cr.bound, "complete": r.complete, "timed_out": r.timed_out, "exhausted": r.exhausted,
        "level": r.level, "done_bound": r.done_bound, "schedules": r.schedules, "pruned": r.pruned,
        "points": r.points, "violations": r.violations, "per_level": r.per_level,
        "first": first, "minimal": minimal, "coverage": d["coverage"],
    }


def configs(ci: bool):
    if ci:
        return list(CI_CONFIGS)
    return [(p, s, q, m) for p in POLICIES for s in SCENARIOS for q in REQUESTS for m in MODELS]


def table(ci: bool = False, cap: int | None = None, only=None, progress=None) -> dict:
    cap = cap if cap is not None else (CI_CAP if ci else CAP)
    out = {"cap": cap, "configs": {}}
    for c in configs(ci):
        k = key(*c)
        if only is not None and k not in only:
            continue
        t = time.perf_counter()
        out["configs"][k] = fingerprint(*c, cap)
        if progress is not None:
            progress(k, out["configs"][k], time.perf_counter() - t)
    return out


def diff(a: dict, b: dict) -> list[str]:
    """The configurations whose fingerprints differ, with the fields that do."""
    out = []
    if a.get("cap") != b.get("cap"):
        out.append(f"cap {a.get('cap')} != {b.get('cap')}")
    for k in sorted(set(a["configs"]) | set(b["configs"])):
        x, y = a["configs"].get(k), b["configs"].get(k)
        if x is None or y is None:
            out.append(f"{k}: only in {'the second' if x is None else 'the first'}")
            continue
        fields = [f for f in sorted(set(x) | set(y)) if x.get(f) != y.get(f)]
        if fields:
            out.append(f"{k}: " + ", ".join(f"{f} {x.get(f)!r:.80} != {y.get(f)!r:.80}" for f in fields))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fingerprint", description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true", help=f"the CI subset ({len(CI_CONFIGS)} configurations, cap "
                                                      f"{CI_CAP})")
    ap.add_argument("--cap", type=int, help=f"schedules per configuration (default {CAP}; --ci: {CI_CAP})")
    ap.add_argument("--out", help="write the table here")
    ap.add_argument("--compare", help="compare with this table (exit 1 if anything differs)")
    a = ap.parse_args(argv)
    only = None
    ref = None
    if a.compare:
        with open(a.compare) as f:
            ref = json.load(f)
        only = set(ref["configs"])
        if a.cap is None:
            a.cap = ref["cap"]

    def progress(k, fp, s):
        v = fp["minimal"]["violation"]["kind"] if fp["minimal"] else "-"
        print(f"{k:<52} {'complete' if fp['complete'] else 'capped':<9} {fp['schedules']:>6} schedules "
              f"{fp['pruned']:>6} pruned {fp['points']:>8} points  {v:<13} {s:5.1f} s", flush=True)

    t = table(ci=a.ci, cap=a.cap, only=only, progress=progress)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(t, f, indent=1, sort_keys=True)
            f.write("\n")
    if ref is not None:
        d = diff(ref, t)
        print(f"{len(t['configs'])} configurations compared with {a.compare}: "
              + ("all equal" if not d else f"{len(d)} differ"))
        for line in d:
            print("  " + line)
        return 1 if d else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
