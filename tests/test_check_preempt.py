"""``smpemu check`` explores the host's preemptions (issue 19).

The guest-shootdown scenario's vCPUs may be preempted by the host where
Linux can (``sched.out``) and resumed (``sched.in``): choices of the
explorer, each sched.out one preemption of the bound
(smpemu/sched/preempt.py).  Each PV flush bug is found by itself at the
scenario's default bound (2) and not below it; pv and native are explored
completely with no violation; eager masks all three (its invlpg flushes
every vCPU, the preempted one at its entry); sleep sets lose nothing with
the new choices; each counterexample replays on real processes
(tests/test_replay_data.py replays the stored ones, format 3).
"""

from __future__ import annotations

import json

import pytest

from smpemu.errors import UsageError
from smpemu.sched.choices import SchedIn, SchedOut, parse
from smpemu.sched.core import Sched
from smpemu.search.check_cmd import run_check
from smpemu.search.explore import Explorer
from smpemu.search.replay_file import load_replay
from smpemu.search.scenarios import load_scenario
from smpemu.search.world import Proto
from tests.test_check import state_key

BUGS = ["pv-writeback", "pv-overwrite", "pv-no-sync"]


def _check(method, **kw):
    kw.setdefault("policy", "mmu-lock")
    return run_check(kw.pop("policy"), "guest-shootdown", guest_flush=method, timeout=120, **kw)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", BUGS)
def test_each_pv_bug_found_at_the_default_bound(method):
    cr = _check(method)
    m = cr.res.minimal
    assert m is not None and m.violation["kind"] == "guest_stale", cr.as_dict()
    assert m.violation["vcpu"] == 1 and m.bound == 2 and cr.exit_code == 3
    dec = cr.replay["decisions"]
    assert [1, "sched.out"] in dec and [1, "sched.in"] in dec  # the host preempted the target
    assert cr.replay["smpemu_replay"] == 3
    if method == "pv-overwrite":  # preempted again before it entered
        outs = [i for i, d in enumerate(dec) if d == [1, "sched.out"]]
        assert len(outs) == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", BUGS)
def test_no_pv_bug_needs_fewer_preemptions(method):
    cr = _check(method, bound=1)
    assert cr.res.minimal is None and cr.res.complete


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["pv", "native"])
def test_pv_and_native_are_clean_and_complete(method):
    cr = _check(method)
    assert cr.res.minimal is None and cr.res.complete and cr.exit_code == 0
    assert cr.res.schedules > 100  # the preemptions were explored (bound 1 alone is 80)
    assert cr.cover[__import__("smpemu.kvm.points", fromlist=["x"]).SCHED_POINTS.index("steal.record")] > 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", BUGS)
def test_eager_masks_every_pv_bug(method):
    # docs/check.md: eager's trapped invlpg flushes every vCPU (kvm_flush_remote_tlbs), a
    # preempted one at its next entry: the lost FLUSH does not matter
    cr = _check(method, policy="eager")
    assert cr.res.minimal is None and cr.res.complete


@pytest.mark.timeout(60)
def test_no_sync_needs_the_concurrent_local_flush():
    cr = _check("pv-no-sync", local_flush="first")
    assert cr.res.minimal is None and cr.res.complete


# -- sleep sets with preemption choices -----------------------------------------------------
def _states(method, k, prune):
    proto = Proto(load_scenario("guest-shootdown"), "mmu-lock", "native", "modern", guest_flush=method)
    states, viols, kinds = set(), set(), set()

    def terminal(w, cost):
        states.add(state_key(w))
        if w.violation is not None:
            v = w.violation
            viols.add((v["kind"], v["vcpu"], v["slot"], v["pfn"]))

    def world(trace=None):  # which kinds of choice were made
        w = proto.world(trace)
        step = w.step

        def tracked(ch):
            kinds.add(type(ch).__name__)
            return step(ch)
        w.step = tracked
        return w

    ex = Explorer(world, k, prune=prune, stop_on_violation=False, on_terminal=terminal,
                  prefix=proto.setup_prefix())
    res = ex.run()
    assert res.complete
    return res, states, viols, kinds


def _same(method, k):
    full, s_full, v_full, kinds = _states(method, k, prune=False)
    red, s_red, v_red, _ = _states(method, k, prune=True)
    assert {"SchedOut", "SchedIn"} <= kinds
    assert s_red == s_full and v_red == v_full
    assert red.schedules < full.schedules and red.pruned > 0
    return v_full


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["pv", "pv-overwrite"])
def test_pruning_keeps_states_with_preemptions(method):
    _same(method, 1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pruning_keeps_states_and_the_violation_with_preemptions():
    assert _same("pv-writeback", 2)  # the violation found both ways (about a minute unpruned)


# -- choices, scheduler state, replay format -------------------------------------------------
def test_sched_choices_parse_and_cost():
    assert parse([1, "sched.out"]) == (SchedOut(1), None)
    assert parse([0, "sched.in"]) == (SchedIn(0), None)
    assert SchedOut(1).name() == [1, "sched.out"] and SchedIn(1).name() == [1, "sched.in"]
    assert SchedOut(1).cost == 1 and SchedIn(1).cost is None  # sched.in: a drain's rule
    with pytest.raises(UsageError):
        parse([1, "sched.out", 3])


def test_a_preempted_vcpu_is_not_enabled():
    s = Sched(2, 1, True, lambda sem: 0)
    assert s.enabled(None) == [0, 1, 2]
    SchedOut(1).on_sched(s)
    assert s.enabled(None) == [0, 2] and not s.over([0, 2])
    assert "(preempted)" in s.where(1)
    SchedIn(1).on_sched(s)
    assert s.enabled(None) == [0, 1, 2]


def test_format_2_refuses_sched_decisions(tmp_path):
    cr = _check("pv-overwrite")
    doc = dict(cr.replay)
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    cfg, _ = load_replay(str(p))
    assert [1, "sched.out"] in cfg.replay
    doc["smpemu_replay"] = 2
    p.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="decision"):
        load_replay(str(p))


def test_check_refuses_preempt_ops_and_guest_flush_without_shootdowns(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"events": ["a", "b"], "cpus": {"0": [["preempt", "a", "b"]]}}))
    with pytest.raises(UsageError, match="preempt"):
        load_scenario(str(p))
    with pytest.raises(UsageError, match="no guest shootdown"):
        run_check("mmu-lock", "one-flusher", guest_flush="pv")
    with pytest.raises(UsageError, match="guest-flush"):
        run_check("mmu-lock", "guest-shootdown", guest_flush="bogus")
