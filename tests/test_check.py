"""smpemu check: the explorer's counts, its pruning, its verdicts, and their replays.

The explorer is deterministic (no randomness, a logical clock), so every
assertion here is a function of the code: no timing, no luck.  Exploration
times on this 2-core machine shared with other jobs vary a lot, so the long
explorations (correct policies on the default scenario) are marked slow and
the CI versions use the small scenarios; no test asserts a duration.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from smpemu.search.baton_loop import run
from smpemu.search.check_cmd import run_check
from smpemu.sched.choices import Step
from smpemu.search.explore import Explorer
from smpemu.search.replay_file import MATCH_KEYS, identity, load_replay, write_doc
from smpemu.search.scenarios import load_scenario
from smpemu.search.world import Proto
from tests import mutants as M


# -- the engine on synthetic worlds ---------------------------------------------------
class Toy:
    """k straight-line actors; step j of actor a touches word ``words[a][j]``."""

    def __init__(self, words):
        self.words = words
        self.pc = [0] * len(words)
        self.mem = {}
        self.violation = None

    def choices(self):
        return [Step(a) for a, w in enumerate(self.words) if self.pc[a] < len(w)]

    def enabled(self, ch):
        return self.pc[ch.actor] < len(self.words[ch.actor])

    def cond_fp(self, ch):
        return frozenset()

    def step(self, ch):
        a = ch.actor
        addr = self.words[a][self.pc[a]]
        self.pc[a] += 1
        self.mem[addr] = self.mem.get(addr, ()) + (a,)  # the order of writers is the state
        return (set(), {addr, -1000 - a})

    def over(self):
        return not self.choices()

    def deadlock(self):
        return None

    def close(self):
        pass


def count_bounded(lengths, k: int) -> int:
    """Schedules of independent straight-line actors (``lengths[i]`` steps
    each, no blocking) with <= k preemptions, starting free: the closed form
    the unpruned explorer is checked against.

    A schedule is an order of the actors' steps; cutting it into maximal
    runs of one actor, a run that ends before its actor is finished is a
    preemption.  Count by dynamic programming over (steps left per actor,
    last actor, whether it is unfinished) - small inputs only.
    """
    from functools import lru_cache

    n = len(lengths)

    @lru_cache(maxsize=None)
    def go(left, last, budget):
        if all(x == 0 for x in left):
            return 1
        total = 0
        for a in range(n):
            if left[a] == 0:
                continue
            cost = 1 if (last is not None and last != a and left[last] > 0) else 0
            if cost > budget:
                continue
            nl = list(left)
            nl[a] -= 1
            total += go(tuple(nl), a, budget - cost)
        return total

    return go(tuple(lengths), None, k)


def brute_force(lengths, k):
    """Interleavings of straight-line actors with <= k preemptions, by enumeration."""
    seq = [a for a, n in enumerate(lengths) for _ in range(n)]
    count = 0
    for order in set(itertools.permutations(seq)):
        left = list(lengths)
        pre = 0
        last = None
        for a in order:
            if last is not None and a != last and left[last] > 0:
                pre += 1
            left[a] -= 1
            last = a
        count += pre <= k
    return count


def explore_toy(words, k, prune):
    finals = set()
    ex = Explorer(lambda: Toy(words), k, prune=prune,
                  on_terminal=lambda w, cost: finals.add(tuple(sorted(w.mem.items(), key=repr))))
    return ex.run(), finals


@pytest.mark.parametrize("lengths", [(2, 2), (3, 2), (2, 2, 2), (3, 1, 2)])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_unpruned_counts_match_closed_form(lengths, k):
    words = [[(a, j) for j in range(n)] for a, n in enumerate(lengths)]  # private words: independent
    res, _ = explore_toy(words, k, prune=False)
    assert res.complete
    assert res.schedules == count_bounded(lengths, k) == brute_force(lengths, k)
    pruned, finals = explore_toy(words, k, prune=True)
    assert finals == {tuple(sorted((((a, j), (a,)) for a, n in enumerate(lengths) for j in range(n)), key=repr))}
    if k > 0 and len(lengths) > 1:
        assert pruned.schedules < res.schedules  # independent steps: sleep sets cut most orders


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_pruned_and_unpruned_reach_the_same_states_with_conflicts(k):
    # actors share some words: the order of their writes is part of the state
    words = [["x", ("a", 0), "y"], [("b", 0), "x", ("b", 1)], ["y", ("c", 0)]]
    full, f_full = explore_toy(words, k, prune=False)
    red, f_red = explore_toy(words, k, prune=True)
    assert f_full == f_red
    assert red.schedules <= full.schedules


# -- the same comparison on the protocol scenarios -------------------------------------
def state_key(w) -> bytes:
    """A world's final shared state, for comparing explorations: the arena
    (the trace ring and the start time are not state) and the store buffers."""
    b = bytes(w.mv.obj)
    parts = [repr(mm.snapshot()).encode() for _, mm in w.p.buffered_models]
    return b + b"|".join(parts)


def _explore_states(policy, scenario, model, k, prune):
    sc = load_scenario(scenario)
    proto = Proto(sc, policy, model, "modern")
    states, viols = set(), set()

    def terminal(w, cost):
        states.add(state_key(w))
        if w.violation is not None:
            v = w.violation
            viols.add((v["kind"], v["vcpu"], v["slot"], v["pfn"]))

    ex = Explorer(proto.world, k, prune=prune, stop_on_violation=False, on_terminal=terminal,
                  prefix=proto.setup_prefix())
    res = ex.run()
    assert res.complete
    return res, states, viols


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy,scenario,model,k", [
    ("deferred-v4", "one-flusher", "native", 1),
    ("deferred-v3", "one-flusher", "native", 1),
    ("sync-protected-only", "sync", "native", 2),
    ("deferred-v4-nowmb", "one-flusher", "tso", 1),
])
def test_pruning_keeps_final_states_and_violations(policy, scenario, model, k):
    full, s_full, v_full = _explore_states(policy, scenario, model, k, prune=False)
    red, s_red, v_red = _explore_states(policy, scenario, model, k, prune=True)
    assert s_red == s_full
    assert v_red == v_full
    assert red.schedules < full.schedules and red.pruned > 0


# -- verdicts ---------------------------------------------------------------------------
def _found(cr, kind=None):
    m = cr.res.minimal
    assert m is not None, cr.as_dict()
    if kind:
        assert m.violation["kind"] == kind, m.violation
    assert cr.exit_code == 3
    return m


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy", ["deferred-v3", "deferred-v4"])
# 2009 requests: slow (about 80 s of CI for the pair); CI keeps the modern pair, and 2009 requests stay
# covered in CI by the fingerprint's CI subset (tests/data/fingerprint-ci.json: default and sync under 2009)
@pytest.mark.parametrize("requests", ["modern", pytest.param("2009", marks=pytest.mark.slow)])
def test_default_scenario_finds_v3_and_v4(policy, requests):
    cr = run_check(policy, "default", "native", requests, bound=1, timeout=280)
    m = _found(cr)
    assert m.violation["kind"] in ("lost_flush", "stale_access")
    assert m.bound <= 1


@pytest.mark.timeout(300)
def test_one_flusher_nowmb_relaxed_loses_a_flush_and_tso_is_clean():
    cr = run_check("deferred-v4-nowmb", "one-flusher", "relaxed", bound=2, timeout=280)
    m = _found(cr, "lost_flush")
    assert m.bound == 2
    clean = run_check("deferred-v4-nowmb", "one-flusher", "tso", bound=2, timeout=280)
    assert clean.res.minimal is None and clean.res.complete and clean.exit_code == 0


@pytest.mark.timeout(300)
def test_one_flusher_v4_is_clean_under_relaxed():
    cr = run_check("deferred-v4", "one-flusher", "relaxed", bound=2, timeout=280)
    assert cr.res.minimal is None and cr.res.complete, cr.as_dict()["violation"]


@pytest.mark.timeout(120)
def test_sync_protected_only_stale_write():
    cr = run_check("sync-protected-only", "sync", "native", bound=2, timeout=100)
    _found(cr, "stale_write")
    ok = run_check("deferred-v4", "sync", "native", bound=2, timeout=100)
    assert ok.res.minimal is None and ok.res.complete


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "mmu-lock", "eager"])
def test_correct_policies_complete_small_scenarios(policy):
    for scenario, model in (("one-flusher", "relaxed"), ("sync", "tso")):
        cr = run_check(policy, scenario, model, bound=2, timeout=280)
        assert cr.res.minimal is None, (scenario, cr.as_dict()["violation"])
        assert cr.res.complete and cr.exit_code == 0


_DEFAULT_CLEAN = [(p, m, r) for p in ("tlbs-dirty", "mmu-lock", "eager") for r in ("modern", "2009")
                  for m in (("native", "tso", "relaxed") if p == "tlbs-dirty" else ("native",))]
_FASTEST = ("mmu-lock", "native", "modern")  # about 9,000 schedules (docs/check.md)


@pytest.mark.timeout(600)
def test_correct_policy_completes_default_scenario_ci():
    policy, model, requests = _FASTEST
    cr = run_check(policy, "default", model, requests, timeout=550)  # the scenario's default bound
    assert cr.bound == 1
    assert cr.res.minimal is None, cr.as_dict()["violation"]
    assert cr.res.complete and cr.exit_code == 0


@pytest.mark.slow
@pytest.mark.timeout(2000)
@pytest.mark.parametrize("policy,model,requests", [c for c in _DEFAULT_CLEAN if c != _FASTEST])
def test_correct_policies_complete_default_scenario(policy, model, requests):
    cr = run_check(policy, "default", model, requests, timeout=1800)
    assert cr.res.minimal is None, cr.as_dict()["violation"]
    assert cr.res.complete


# tlbs-dirty's ABA (docs/decisions.md): the whole of level 1 takes minutes here,
# so slow; its CI version is the forced real-process test of
# test_oracle_scenarios.py (test_three_overlapping_flushes_defeat_tlbs_dirty_cmpxchg)
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_three_flushers_tlbs_dirty_aba_and_mmu_lock_clean(tmp_path):
    cr = run_check("tlbs-dirty", "three-flushers", "native", timeout=1500, jobs=2)
    m = _found(cr, "lost_flush")
    assert m.bound == 1
    _replays(cr, tmp_path)
    ok = run_check("mmu-lock", "three-flushers", "native", timeout=1500, jobs=2)
    assert ok.res.minimal is None and ok.res.complete


# -- mutants ------------------------------------------------------------------------------
# each mutant of tests/mutants.py, caught on the default scenario under the
# memory model where its change matters; v4-no-zap-wmb needs relaxed, where
# `default` takes about a minute here: slow, and its CI version is the
# one-flusher run of the replay test below (v4 itself is clean there)
_MUTANT_PARAMS = [pytest.param(m, id=m.id, marks=[pytest.mark.slow] if m.model == "relaxed" else [])
                  for m in M.MUTANTS]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mutant", _MUTANT_PARAMS)
def test_mutants_are_caught_on_default(mutant):
    with mutant.apply() as name:
        cr = run_check(name, "default", mutant.model, bound=1, timeout=1100)
    _found(cr)


@pytest.mark.timeout(300)
def test_entry_mutant_needs_a_store_buffer():
    """Without the entry's mb() the mode store waits in the store buffer while
    the request flag is loaded.  The explorer's native model buffers nothing
    (sequential consistency), so there the mutant is clean."""
    with M.entry_without_mb():
        cr = run_check("tlbs-dirty", "one-flusher", "native", bound=2, timeout=280)
    assert cr.res.minimal is None and cr.res.complete


@pytest.mark.timeout(300)
def test_flush_side_wmb_mutant_is_equivalent():
    """v4 without its flush-side wmb: make_request's own wmb (kvm_make_request's
    smp_wmb()) orders dirty = 0 before the request, so it explores cleanly
    where v4 does (tests/mutants.py says why it is equivalent in Linux too)."""
    with M.registered(M.V4NoFlushWmb) as name:
        cr = run_check(name, "one-flusher", "relaxed", bound=2, timeout=280)
    assert cr.res.minimal is None and cr.res.complete


# -- replays on real processes ----------------------------------------------------------------
def _replays(cr, tmp_path):
    path = tmp_path / "r.json"
    write_doc(cr.replay, str(path))
    cfg, doc = load_replay(str(path))
    assert doc["smpemu_replay"] == 3 and doc["scenario"] == cr.scenario  # format 3: sched.out/in (2: drains)
    r = run(cfg)
    assert r.aborted is None, r.aborted
    got = identity(r)
    want = cr.replay["violation"]
    assert got is not None, "not reproduced"
    assert {k: got[k] for k in MATCH_KEYS} == {k: want[k] for k in MATCH_KEYS}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy,scenario,model,k", [
    ("deferred-v4-nowmb", "one-flusher", "relaxed", 2),
    ("deferred-v3", "one-flusher", "native", 2),
    ("sync-protected-only", "sync", "native", 1),
])
def test_counterexamples_reproduce_on_real_processes(policy, scenario, model, k, tmp_path):
    cr = run_check(policy, scenario, model, bound=k, timeout=280)
    _found(cr)
    _replays(cr, tmp_path)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mutant", M.MUTANTS, ids=[m.id for m in M.MUTANTS])
def test_mutant_counterexamples_reproduce_on_real_processes(mutant, tmp_path):
    with mutant.apply() as name:
        cr = run_check(name, mutant.replay_on, mutant.model, timeout=280)  # the scenario's bound
        _found(cr)
        _replays(cr, tmp_path)


@pytest.mark.timeout(300)
def test_two_host_counterexamples_reproduce_on_real_processes(tmp_path):
    cr = run_check("deferred-v4", "default", "native", bound=1, timeout=180)
    _found(cr)
    assert cr.replay["reclaimers"] == 2  # each host process its own actor of the baton
    _replays(cr, tmp_path)


# -- the command line ------------------------------------------------------------------------
def cli(*args, timeout=200):
    return subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(240)
def test_cli_violation_json_replay_and_clean_line(tmp_path):
    js, rep = tmp_path / "c.json", tmp_path / "r.json"
    p = cli("check", "--policy", "sync-protected-only", "--scenario", "sync", "--bound", "1",
            "--json", str(js), "--replay-out", str(rep))
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    assert "VIOLATION stale_write" in p.stdout and "minimal counterexample" in p.stdout
    assert "vCPU0" in p.stdout and "@" in p.stdout
    d = json.loads(js.read_text())
    for k in ("policy", "scenario", "memory_model", "requests", "bound", "complete", "schedules", "pruned",
              "points", "elapsed_s", "schedules_per_s", "violation", "coverage"):
        assert k in d, k
    v = d["violation"]
    for k in ("kind", "vcpu", "gfn", "pfn", "schedule", "preemptions", "trace"):
        assert k in v, k
    assert v["kind"] == "stale_write" and d["coverage"]["start"] > 0
    q = cli("replay", str(rep))
    assert q.returncode == 3, (q.stdout[-2000:], q.stderr[-2000:])
    assert "reproduced" in q.stdout and "the recording had no violation" not in q.stdout
    ok = cli("check", "--policy", "tlbs-dirty", "--scenario", "sync", "--bound", "1")
    assert ok.returncode == 0, (ok.stdout[-2000:], ok.stderr[-2000:])
    text = " ".join(ok.stdout.split())  # lines wrap to COLUMNS
    assert "no violation:" in text and "every schedule with <= 1 preemptions explored (complete" in text


@pytest.mark.timeout(120)
def test_cli_incomplete_and_usage_errors(tmp_path):
    p = cli("check", "--policy", "tlbs-dirty", "--scenario", "default", "--bound", "3", "--timeout", "2")
    assert p.returncode == 4, (p.stdout[-2000:], p.stderr[-2000:])
    assert "INCOMPLETE: timeout at bound" in p.stdout
    for args, msg in ((("--scenario", "nowhere"), "unknown scenario"),
                      (("--policy", "nope"), "unknown policy"),
                      (("--memory-model", "sc"), "unknown memory model"),
                      (("--bound", "-1"), "--bound"),
                      (("--jobs", "0"), "--jobs")):
        q = cli("check", *args)
        assert q.returncode == 2, (args, q.stdout, q.stderr)
        assert "Traceback" not in q.stderr and msg in q.stderr
        assert len(q.stderr.strip().splitlines()) == 1, q.stderr
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"cpus": {"0": [["fly", 1]]}}))
    q = cli("check", "--scenario", str(bad))
    assert q.returncode == 2 and "not one of" in q.stderr


def _outcome(cr):
    r = cr.res
    found = [(f.schedule, f.bound, f.steps, f.choices, f.violation) if f else None for f in (r.first, r.minimal)]
    return (r.complete, r.exhausted, r.done_bound, r.schedules, r.pruned, r.points, r.violations, r.per_level,
            found, list(cr.cover))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy,scenario,model,k", [
    ("deferred-v4-nowmb", "one-flusher", "relaxed", 2),  # a violation at level 2: items of levels 1 and 2
    ("tlbs-dirty", "sync", "tso", 2),  # clean, complete
])
def test_several_processes_explore_exactly_what_one_does(policy, scenario, model, k, monkeypatch):
    from smpemu.search import explore

    monkeypatch.setattr(explore, "MIN_SHARED_ITEMS", 2)  # small scenarios: share every level but 0
    one = run_check(policy, scenario, model, bound=k, timeout=280, jobs=1)
    three = run_check(policy, scenario, model, bound=k, timeout=280, jobs=3)
    assert three.jobs == 3 and three.res.shared > 0 and one.res.shared == 0
    assert _outcome(three) == _outcome(one)


@pytest.mark.timeout(120)
def test_several_processes_time_out_incomplete_and_leave_no_process():
    import multiprocessing

    cr = run_check("tlbs-dirty", "default", "native", bound=3, timeout=3, jobs=2)
    assert not cr.res.complete and cr.res.timed_out and cr.exit_code == 4
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(200)
def test_user_scenario_file_runs(tmp_path):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"cpus": {"0": [["map", ["u", 0, 0]], ["touch", ["u", 0, 0], True],
                                            ["unmap", ["u", 0, 0]]],
                                      "1": [["access", ["u", 0, 0], False]]},
                             "host": [["reclaim_freed", 0]]}))
    cr = run_check("deferred-v4", str(f), "native", bound=1, timeout=150)
    assert cr.res.complete
    assert cr.res.schedules > 1


@pytest.mark.timeout(120)
def test_format_1_replay_files_still_load(tmp_path):
    """stress --schedule pct wrote format 1 (no drains, no scenario): still read."""
    cr = run_check("sync-protected-only", "sync", "native", bound=1, timeout=100)
    doc = dict(cr.replay)
    for k in ("scenario", "reclaimers"):
        doc.pop(k)
    doc["smpemu_replay"] = 1
    doc["config"] = dict(doc["config"], controlled_drains=False)
    path = tmp_path / "v1.json"
    write_doc(doc, str(path))
    cfg, got = load_replay(str(path))
    assert got["smpemu_replay"] == 1 and cfg.schedule == "replay" and cfg.replay == doc["decisions"]
    bad = dict(doc, decisions=doc["decisions"] + [[0, "sb.drain", 5]])
    write_doc(bad, str(path))
    with pytest.raises(Exception, match="decision"):
        load_replay(str(path))  # drain decisions are format 2 and later only


@pytest.mark.timeout(60)
def test_check_refuses_to_overwrite_a_replay_file_unless_forced(tmp_path):
    f = tmp_path / "cex.json"
    f.write_text("{}")
    p = cli("check", "--policy", "deferred-v3", "--scenario", "sync", "--replay-out", str(f))
    assert p.returncode == 2 and "--force" in p.stderr, (p.stdout, p.stderr)
    assert f.read_text() == "{}"
    p = cli("check", "--policy", "sync-protected-only", "--scenario", "sync", "--replay-out", str(f), "--force")
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert json.loads(f.read_text())["smpemu_replay"] == 3
