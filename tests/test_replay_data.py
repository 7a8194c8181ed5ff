"""Every stored replay file reproduces its violation on real processes.

tests/data/replay-*.json: counterexamples recorded by ``smpemu check`` (one
per built-in scenario: two and three host processes, drain decisions under
tso and relaxed; ``tests/replay_data.py`` wrote them) and one older
``stress --schedule pct`` recording (format 1).  Each is replayed with real
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
