"""`smpemu check`'s counts on every built-in scenario, policy and memory model, at 1000 schedules each.

Not a test: ``python -m tests.check_counts OUT.json`` writes {scenario/policy/model: [schedules,
pruned, points, complete, explored bound, violation]}; run it before and after a change that must
not change what check explores, and compare the two files (docs/decisions.md, issue 19).
"""
import json, sys
from smpemu.kvm.policies import POLICIES
from smpemu.search.check_cmd import run_check
from smpemu.search.scenarios import SCENARIOS
out = {}
for sc in SCENARIOS:
    for pol in POLICIES:
        for mm in ("native", "tso", "relaxed"):
            cr = run_check(pol, sc, mm, max_schedules=1000, timeout=600)
            d = cr.as_dict()
            v = d["violation"]
            key = f"{sc}/{pol}/{mm}"
            out[key] = [d["schedules"], d["pruned"], d["points"], d["complete"], d["explored_bound"],
                        None if v is None else [v["kind"], v["schedule"], v["preemptions"], v["steps"]]]
            print(key, out[key], flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=0, sort_keys=True)
