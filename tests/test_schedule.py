"""Controlled schedules: PCT finds the v3 race, replays reproduce it exactly.

Every run here uses real vCPU processes, shared memory and semaphores, but
only the process holding the baton runs, in the order the seeded scheduler
chooses, so every outcome below is a function of the seed (and of the code):
no timing luck.  The v3 bounds are generous on purpose: with the current
code seeds 1-3 find it in the first round, and a seed finds it in 1-4 rounds
of 5000 decisions (docs/schedules.md); a change to the protocol code changes
the interleavings, and ten rounds still leave it room.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from smpemu import __version__
from smpemu.harness.config import RunConfig
from smpemu.search.baton_loop import run
from smpemu.search.replay_file import MATCH_KEYS, identity, load_replay, replay_doc, write_doc
from smpemu.search.stress import stress
from tests.helpers import kinds, run_script
from tests.test_oracle_scenarios import V3_RACE

SEEDS = (1, 2, 3)


def pct(policy, seed, **kw):
    kw.setdefault("vcpus", 2)
    return RunConfig(policy=policy, workload="share-unmap", reclaim="freed", seed=seed, pin="none",
                     schedule="pct", trace=True, stop_on_violation=True, **kw)


def ident(result):
    v = identity(result)
    return v and {k: v[k] for k in MATCH_KEYS}


def cli(*args, timeout=50):
    return subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", SEEDS)
def test_pct_stress_catches_v3_within_bounded_rounds(seed):
    r = stress(pct("deferred-v3", seed), timeout=45, round_s=1)
    assert r.aborted is None, r.aborted
    assert r.found, r.rounds
    assert len(r.rounds) <= 10, r.rounds
    v = r.first["violations"][0]
    assert v["kind"] in ("lost_flush", "stale_access")
    assert r.replay is not None and r.replay["decisions"]
    assert r.replay["violation"]["kind"] == v["kind"]
    assert "replay" not in r.as_dict()  # the stress summary does not carry the decisions


@pytest.mark.timeout(60)
def test_v4_survives_the_same_schedules():
    for seed in range(1, 9):
        r = run(pct("deferred-v4", seed))
        assert r.aborted is None, (seed, r.aborted)
        assert r.violations == [], (seed, r.violations[:1])
        assert r.schedule["end"] == "max_decisions"
        assert r.schedule["decisions"] == r.config["max_decisions"]


@pytest.mark.timeout(60)
def test_same_seed_same_interleaving_and_verdict():
    a, b = run(pct("deferred-v3", 1)), run(pct("deferred-v3", 1))
    assert a.decisions == b.decisions and len(a.decisions) > 100
    assert ident(a) == ident(b) is not None
    events = [[(e["cpu"], e["event"], e["a"], e["b"]) for e in r.trace["events"]] for r in (a, b)]
    assert events[0] == events[1]  # the protocol events, in the same order (timestamps differ)
    c = run(pct("deferred-v3", 2))
    assert c.decisions != a.decisions


@pytest.mark.timeout(60)
def test_replay_reproduces_violation_at_same_point():
    a = run(pct("deferred-v3", 2))
    assert a.violations
    doc = json.loads(json.dumps(replay_doc(a)))  # through JSON, as a file would be
    cfg = dataclasses.replace(RunConfig(**{k: v for k, v in doc["config"].items()}),
                              schedule="replay", replay=doc["decisions"])
    r = run(cfg)
    assert r.aborted is None, r.aborted
    assert r.schedule["end"] == "violation" and r.schedule["decisions"] == len(doc["decisions"])
    assert ident(r) == ident(a)
    assert ident(r)["point"] == doc["violation"]["point"]


@pytest.mark.timeout(90)
def test_cli_stress_writes_replay_and_replay_reproduces(tmp_path):
    rep, js, rj = tmp_path / "r.json", tmp_path / "s.json", tmp_path / "replayed.json"
    p = cli("stress", "--policy", "deferred-v3", "--vcpus", "2", "--pin", "none", "--schedule", "pct",
            "--seed", "3", "--timeout", "40", "--replay-out", str(rep), "--json", str(js))
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    assert "replay file" in p.stdout and rep.exists()
    doc = json.loads(rep.read_text())
    assert doc["smpemu_version"] == __version__ and doc["seed"] >= 3
    assert doc["config"]["schedule"] == "pct" and doc["config"]["policy"] == "deferred-v3"
    assert all(isinstance(d[0], int) and isinstance(d[1], str) for d in doc["decisions"])
    first = json.loads(js.read_text())["first"]["violations"][0]
    assert {k: first[k] for k in ("kind", "vcpu", "slot", "pfn")} == \
           {k: doc["violation"][k] for k in ("kind", "vcpu", "slot", "pfn")}
    q = cli("replay", str(rep), "--json", str(rj))
    assert q.returncode == 3, (q.stdout[-2000:], q.stderr[-2000:])
    assert "reproduced" in q.stdout and "VIOLATION" in q.stdout
    out = json.loads(rj.read_text())
    assert out["replay"]["matches"] is True
    assert out["schedule"]["last"]["point"] == doc["violation"]["point"]


def _replay_file(tmp_path, **change):
    a = run(pct("deferred-v3", 3))
    doc = replay_doc(a)
    doc.update(change)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))  # any JSON layout loads, not only write_doc's
    return path, doc


BAD_REPLAYS = [
    ({"smpemu_version": "0.0.1"}, "written by smpemu '0.0.1'"),
    ({"decisions": "all of them"}, "'decisions' must be a non-empty list"),
    ({"decisions": []}, "'decisions' must be a non-empty list"),
    ({"decisions": [[0, "start"], [9, "step"]]}, "decision 1 is [9, 'step']"),
    ({"decisions": [[0, "start"], [1, "nowhere"]]}, "decision 1 is [1, 'nowhere']"),
    ({"decisions": [[0, "start"], [1]]}, "decision 1 is [1]"),
    ({"config": {"vcpus": 2, "warp": 9}}, "unknown configuration field(s) warp"),
]


@pytest.mark.timeout(60)
def test_bad_replay_files_are_one_line_usage_errors(tmp_path):
    for change, msg in BAD_REPLAYS:
        path, _ = _replay_file(tmp_path, **change)
        p = cli("replay", str(path))
        assert p.returncode == 2, (change, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        assert msg in p.stderr.replace("\n", " "), (change, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    (tmp_path / "junk.json").write_text("{not json")
    p = cli("replay", str(tmp_path / "junk.json"))
    assert p.returncode == 2 and "not JSON" in p.stderr
    p = cli("replay", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "No such file" in p.stderr


@pytest.mark.timeout(60)
def test_diverging_replay_says_where(tmp_path):
    path, doc = _replay_file(tmp_path)
    dec = doc["decisions"]
    k = next(i for i in range(len(dec) // 2, len(dec)) if dec[i][1] == "step")
    dec[k] = [doc["config"]["vcpus"], "step"]  # the host is never at a guest step
    write_doc(doc, str(path))
    cfg, _ = load_replay(str(path))
    r = run(cfg)
    assert r.exit_code == 4 and r.violations == []
    assert r.aborted.startswith(f"replay diverged at decision {k} of {len(dec)}: recorded host at step, but it is at ")
    p = cli("replay", str(path))
    assert p.returncode == 4 and f"replay diverged at decision {k}" in p.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_scripted_race_runs_under_a_schedule(requests):
    for seed in (1, 2):
        r = run_script(V3_RACE, policy="deferred-v3", requests=requests, schedule="pct", seed=seed)
        assert r.aborted is None, r.aborted
        assert kinds(r) == ["lost_flush"]  # the run ends at the first violation
        r = run_script(V3_RACE, policy="deferred-v4", requests=requests, schedule="pct", seed=seed)
        assert r.aborted is None, r.aborted
        assert r.violations == [] and r.schedule["end"] == "finished"


@pytest.mark.timeout(30)
def test_schedule_deadlock_is_reported_not_waited_out():
    script = {"events": ["never"], "cpus": {"0": [["wait", "never"]]}, "timeout": 60}
    t0 = time.monotonic()
    r = run_script(script, schedule="pct", ack_timeout=20.0)
    assert time.monotonic() - t0 < 10  # no timeout was waited for
    assert r.exit_code == 4
    assert "schedule deadlock" in r.aborted and "vcpu 0 at halt" in r.aborted


@pytest.mark.timeout(30)
def test_killed_vcpu_aborts_a_scheduled_run_and_nothing_leaks():
    me = psutil.Process()

    def kill_one():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for c in me.children():
                try:
                    if c.name() == "smpemu-vcpu1":
                        time.sleep(0.3)
                        os.kill(c.pid, signal.SIGKILL)
                        return
                except psutil.Error:
                    pass
            time.sleep(0.01)

    t = threading.Thread(target=kill_one)
    t.start()
    r = run(pct("deferred-v4", 1, max_decisions=10**7))
    t.join()
    assert r.exit_code == 4
    assert "vcpu 1" in r.aborted and "SIGKILL" in r.aborted, r.aborted
    # the autouse fixture checks /dev/shm; no process of the run is left either
    assert not [c for c in me.children() if c.name().startswith("smpemu-")]


@pytest.mark.timeout(60)
def test_stress_schedule_usage_errors():
    for args, msg in [
        (["--schedule", "fair"], "unknown --schedule 'fair'; choose pct"),
        (["--schedule", "pct", "--delay", "invlpg.after_zap=5"], "--delay and --schedule do not mix"),
        (["--replay-out", "x.json"], "--replay-out needs --schedule pct"),
        (["--schedule", "pct", "--pct-depth", "0"], "--pct-depth must be between 1 and 64"),
        (["--schedule", "pct", "--max-decisions", "0"], "--max-decisions must be between"),
    ]:
        p = cli("stress", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert msg in p.stderr.replace("\n", " "), (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
