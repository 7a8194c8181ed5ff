"""The scope search's findings (docs/check.md, "The issue's findings"), kept true.

Each finding's minimal scenario was found by ``smpemu check --scope N`` alone
and is stored as its replay file (tests/data/replay-scope<N>-*.json; that it
reproduces on real processes is tests/test_replay_data.py's).  Here:

- the stored scenario still breaks the policy, at the same kind, when the
  explorer runs it from its script (what ``check --scenario-out`` writes);
- nothing smaller does: the scope search one size below is clean and
  complete under the same settings (in CI where that takes seconds; the
  relaxed one, 40 s, is slow);
- (slow) the whole search, rerun, finds that very scenario as its minimal one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smpemu.search.explore import Explorer
from smpemu.search.scenarios import Scenario
from smpemu.search.scope import ScopeSettings, search_scope
from smpemu.search.world import Proto

DATA = Path(__file__).parent / "data"

# file, scope settings (besides policy/model/notifier/requests, read from the file), size, in CI below it
FINDINGS = [
    ("replay-scope3-deferred-v4-native.json", {}, 3, True),
    ("replay-scope3-sync-protected-only-native.json", {}, 3, True),
    # f81602958c11's missed flush, from the two-process start (scope_enum.reused_letters)
    ("replay-scope3-tlbs-dirty-2.6.38-native.json", {}, 3, True),
    ("replay-scope4-deferred-v3-native.json", {"max_flushers": 1, "vcpus": 2, "hosts": 1, "pages": 1}, 4, True),
    ("replay-scope4-deferred-v4-nowmb-relaxed.json", {"max_flushers": 1, "vcpus": 2, "hosts": 1, "pages": 1}, 4,
     False),
    # tlbs-dirty's ABA: scope 5, at bound 0 (it needs no preemption; scope 4 below it: 44 s, slow)
    ("replay-scope5-tlbs-dirty-native.json", {"vcpus": 2, "hosts": 1, "pages": 1, "bound": 0}, 5, False),
]
IDS = [f[0].removeprefix("replay-").removesuffix(".json") for f in FINDINGS]


def _doc(name):
    return json.loads((DATA / name).read_text())


def _settings(doc, extra, scope, **kw):
    c = doc["config"]
    return ScopeSettings(c["policy"], scope, memory_model=c["memory_model"], requests=c["requests"],
                         notifier=c["notifier"], **extra, **kw)


def _ops(script) -> int:
    setup = script.get("setup", {})
    return (sum(len(ops) - setup.get(k, 0) for k, ops in script["cpus"].items())
            + sum(map(len, script.get("hosts", {}).values())))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name, extra, size, ci", FINDINGS, ids=IDS)
def test_the_minimal_scenario_still_breaks_the_policy(name, extra, size, ci):
    doc = _doc(name)
    c, script = doc["config"], doc["script"]
    assert _ops(script) == size
    sc = Scenario("scope", script, max(int(k) for k in script["cpus"]) + 1, doc["reclaimers"])
    proto = Proto(sc, c["policy"], c["memory_model"], c["requests"], c["notifier"])
    r = Explorer(proto.world, 1, prefix=proto.setup_prefix(), jobs=1).run()
    assert r.minimal is not None and r.minimal.violation["kind"] == doc["violation"]["kind"]


def _below(name, extra, size):
    doc = _doc(name)
    r = search_scope(_settings(doc, extra, size - 1, jobs=2))
    assert r.violation is None and r.complete, (r.violation, r.incomplete_reason)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name, extra, size", [f[:3] for f in FINDINGS if f[3]], ids=[i for i, f in zip(IDS, FINDINGS)
                                                                                    if f[3]])
def test_nothing_smaller_breaks_it(name, extra, size):
    _below(name, extra, size)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name, extra, size", [f[:3] for f in FINDINGS if not f[3]],
                         ids=[i for i, f in zip(IDS, FINDINGS) if not f[3]])
def test_nothing_smaller_breaks_it_slow(name, extra, size):
    _below(name, extra, size)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name, extra, size, ci", FINDINGS, ids=IDS)
def test_the_search_finds_this_minimal_scenario(name, extra, size, ci):
    """The stored scenario is the search's own minimal one (2.5 to 15 minutes each here)."""
    doc = _doc(name)
    r = search_scope(_settings(doc, extra, size, jobs=2))
    assert r.violation is not None and r.complete
    got = dict(r.violation.scenario)
    got.pop("bound", None)
    assert got == doc["script"] and r.violation.kind == doc["violation"]["kind"]
