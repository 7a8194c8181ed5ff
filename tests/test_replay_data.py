"""Every stored replay file reproduces its violation on real processes.

tests/data/replay-*.json: counterexamples recorded by ``smpemu check`` (one
per built-in scenario: two and three host processes, drain decisions under
tso and relaxed; ``tests/replay_data.py`` wrote them) and one older
``stress --schedule pct`` recording (format 1); replay-scope<N>-*.json are
minimal scenarios the scope search found (``smpemu check --scope N
--replay-out``, each command in docs/check.md's table of findings).  Each is replayed with real
vCPU and host processes under the baton and must end in the recorded
violation (kind, vCPU, slot, pfn, the point of the last decision): a
decision must keep meaning the same thing to the explorer and the baton.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smpemu.search.baton_loop import run
from smpemu.search.replay_file import MATCH_KEYS, identity, load_replay

FILES = sorted((Path(__file__).parent / "data").glob("replay-*.json"))


def test_the_set_is_there():
    names = {p.name for p in FILES}
    for scenario in ("default", "one-flusher", "three-flushers", "sync"):
        assert any(n.startswith(f"replay-{scenario}-") for n in names), scenario
    assert "replay-f2cf7dc-v3.json" in names


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_replay_file_reproduces(path):
    cfg, doc = load_replay(str(path))
    r = run(cfg)
    assert r.aborted is None, r.aborted
    got = identity(r)
    assert got is not None, f"{path.name}: not reproduced ({r.schedule})"
    assert {k: got[k] for k in MATCH_KEYS} == {k: doc["violation"][k] for k in MATCH_KEYS}
    assert r.schedule["decisions"] == len(doc["decisions"])


PV_FILES = [p for p in FILES if "-pv-" in p.name]


def test_the_pv_bugs_are_there():
    assert {p.name.rsplit("-native-", 1)[1] for p in PV_FILES} == {"pv-writeback.json", "pv-overwrite.json",
                                                                   "pv-no-sync.json"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", PV_FILES, ids=[p.stem for p in PV_FILES])
def test_pv_replay_preempts_for_real(path):
    # format 3: the host's sched.out / sched.in decisions; on real processes each
    # sched.out ran the host scheduler's exit and steal-time store in vCPU1's own
    # process, which then stayed blocked until its sched.in
    cfg, doc = load_replay(str(path))
    assert doc["smpemu_replay"] == 3
    outs = sum(1 for d in doc["decisions"] if d[1:] == ["sched.out"])
    ins = sum(1 for d in doc["decisions"] if d[1:] == ["sched.in"])
    assert outs >= 1 and ins == outs
    r = run(cfg)
    assert r.aborted is None, r.aborted
    assert identity(r) is not None
    vc = r.as_dict()["vcpus"]
    assert sum(v["preemptions"] for v in vc) == outs
    assert r.points["steal.record"] >= 1  # the re-entries ran record_steal_time
