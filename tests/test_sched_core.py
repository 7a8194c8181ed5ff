"""The scheduler core (smpemu/sched): one enabled set for the baton and the explorer.

The baton's coordinator (real processes, shared-memory rows) and the
explorer's world (greenlets in one process) are two transports over one
``sched.core.Sched``.  Here both run the decisions of each stored
counterexample of ``smpemu check`` (tests/data/replay-<scenario>-*.json:
every built-in scenario, two and three host processes, drains under tso and
relaxed, the host's sched.out / sched.in on guest-shootdown) and record the enabled set before every decision: they must be
equal at every one.  Then the core's own rules, on their own.
"""

from __future__ import annotations

import json
import pickle
from operator import attrgetter
from pathlib import Path

import pytest

from smpemu.errors import UsageError
from smpemu.sched.choices import CLOCK, Drain, Loc, Step, actor_loc, parse
from smpemu.sched.conds import Cond, Wait
from smpemu.sched.core import Sched
from smpemu.search import strategies
from smpemu.search.baton_loop import run
from smpemu.search.replay_file import load_replay
from smpemu.search.scenarios import SCENARIOS, Scenario, load_scenario
from smpemu.search.world import Proto

CHECK_FILES = sorted(p for p in (Path(__file__).parent / "data").glob("replay-*.json")
                     if json.loads(p.read_text()).get("scenario"))


def baton_enabled(path, monkeypatch) -> list:
    """The baton's enabled set before each decision, on real processes."""
    seen = []
    choose = strategies.Replay.choose

    def recording(self, k, enabled, co):
        seen.append(sorted(enabled))
        return choose(self, k, enabled, co)

    monkeypatch.setattr(strategies.Replay, "choose", recording)
    cfg, doc = load_replay(str(path))
    r = run(cfg)
    assert r.aborted is None, r.aborted
    assert r.schedule["end"] == "violation" and len(seen) == len(doc["decisions"])
    return seen


def _scenario_of(doc):
    """A built-in scenario by its name; a scope search's minimal one from the file's script."""
    if doc["scenario"] in SCENARIOS:
        return load_scenario(doc["scenario"])
    s = doc["script"]
    return Scenario(doc["scenario"], s, max(int(k) for k in s["cpus"]) + 1, doc["reclaimers"])


def explorer_enabled(doc) -> list:
    """The explorer's enabled set before each decision, in its world."""
    c = doc["config"]
    proto = Proto(_scenario_of(doc), c["policy"], c["memory_model"], c["requests"],
                  c.get("notifier", "2009"), c.get("guest_flush", "native"), c.get("local_flush", "concurrent"))
    w = proto.world()
    seen = []
    try:
        for d in doc["decisions"]:
            ch = parse(d)[0]
            seen.append(sorted(w.enabled_actors()))
            assert w.decision(ch) == d  # the same name for the same choice
            w.step(ch)
        assert w.violation is not None and w.violation["kind"] == doc["violation"]["kind"]
    finally:
        w.close()
    return seen


def test_there_is_a_counterexample_of_each_scenario():
    scenarios = {json.loads(p.read_text())["scenario"] for p in CHECK_FILES}
    assert scenarios == {"default", "one-flusher", "three-flushers", "sync", "guest-shootdown", "scope"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", CHECK_FILES, ids=[p.stem for p in CHECK_FILES])
def test_baton_and_explorer_enable_the_same_actors_at_every_decision(path, monkeypatch):
    doc = json.loads(path.read_text())
    b = baton_enabled(path, monkeypatch)
    x = explorer_enabled(doc)
    assert len(b) == len(x) == len(doc["decisions"])
    diff = [(k, doc["decisions"][k], b[k], x[k]) for k in range(len(b)) if b[k] != x[k]]
    assert not diff, diff[:5]
    assert any(len(e) > 1 for e in b)  # there were choices to make
    if any(d[1] == "sb.drain" for d in doc["decisions"]):
        assert any(not parse(d)[0].is_step for d in doc["decisions"])


# -- the core's rules, on their own ---------------------------------------------------------
class _Sem:
    def __init__(self, v):
        self.v = v


def _sched(n_vcpus=2, n_hosts=1, every_actor=True):
    return Sched(n_vcpus, n_hosts, every_actor, attrgetter("v"))


def test_a_watched_word_or_a_post_enables_a_waiter():
    mem = [0] * 8
    s = _sched()
    sem = _Sem(0)
    s.parked(0, 4, Cond(Wait((3,), None, None), mem))
    s.parked(1, 7, Cond(Wait((), None, sem), mem))
    s.parked(2, 11, Cond(Wait((), range(4, 8, 2), None), mem))
    assert s.enabled(mem) == []
    mem[3] = 1
    assert s.enabled(mem) == [0]
    sem.v = 1
    mem[6] = 5
    assert s.enabled(mem) == [0, 1, 2]


def test_only_timed_waits_left_their_time_is_up():
    mem = [0] * 4
    s = _sched()
    s.parked(0, 7, Cond(Wait((1,), None, None, timed=True), mem))
    s.parked(1, 7, Cond(Wait((2,), None, None), mem))
    s.finished(2)
    s.last = 0
    assert s.enabled(mem) == [0]  # nobody else may run: the timer expires
    s.last = 1
    assert s.enabled(mem) == [0]  # another actor ran since it parked


def test_the_end_rule_is_per_workload_and_a_stuck_host_is_a_deadlock():
    mem = [0] * 4
    s = _sched(every_actor=True)  # a script: hosts run a list too
    s.finished(0)
    s.finished(1)
    s.parked(2, 11, Cond(Wait((1,), None, None), mem))
    en = s.enabled(mem)
    assert en == [] and not s.over(en)
    assert s.stuck() == "no process can run: host at script.wait"
    stress = _sched(every_actor=False)  # its hosts reclaim for ever: the vCPUs end the run
    stress.finished(0)
    stress.finished(1)
    assert stress.over([2])


def test_an_optional_wait_may_end_the_run_and_is_named():
    mem = [0] * 4
    s = _sched()
    s.finished(0)
    s.parked(1, 11, Cond(Wait((1,), None, None), mem))
    s.parked(2, 9, Cond(Wait((2,), None, None, optional=True), mem), op=1)
    assert not s.over(s.enabled(mem))  # vCPU 1 waits for ever, not optionally
    s.finished(1)
    assert s.over(s.enabled(mem)) and s.skipped() == [2]
    assert s.where(2) == "host at host.idle (op 1)"


def test_choices_are_interned_named_and_parsed():
    assert Step(3) is Step(3) and Drain(1, 40) is Drain(1, 40) and Drain(1, 40) is not Drain(2, 40)
    assert pickle.loads(pickle.dumps([Step(3), Drain(1, 40)])) == [Step(3), Drain(1, 40)]
    assert Step(3).loc == Drain(3, 7).loc == actor_loc(3) != actor_loc(2)
    assert Step(2).name("lock.mmu_lock") == [2, "lock.mmu_lock"] and Drain(1, 40).name() == [1, "sb.drain", 40]
    assert parse([1, "sb.drain", 40]) == (Drain(1, 40), None) and parse([0, "step"]) == (Step(0), "step")
    for bad in ([0, "sb.drain"], [0, "nowhere"], [True, "step"], [0, "sb.drain", -1], "x"):
        with pytest.raises(UsageError):
            parse(bad)
    assert pickle.loads(pickle.dumps(CLOCK)) == CLOCK and isinstance(CLOCK, Loc) and CLOCK != "sem clock"


def test_the_baton_row_holds_what_a_wait_asks():
    from smpemu.sched import row

    W = [0] * 16
    sem = object()
    w = Wait((5, 9), range(20, 32, 4), sem, timed=True, optional=True)
    row.publish(W, 0, 6, 3, w, {id(sem): 2}, op=4)
    state, point, count, got, op = row.read(W, 0, ["a", "b", sem])
    assert (state, point, count, op) == (row.PARKED, 6, 3, 4)
    assert (got.words, got.rng, got.sem, got.timed, got.optional) == ((5, 9), range(20, 32, 4), sem, True, True)
    row.publish(W, 0, 1, 4, None, {}, op=-1)
    assert row.read(W, 0, [])[3] is None
    row.send(W, 0, Drain(2, 77))
    assert row.pending(W, 0) and row.take(W, 0, 2) is Drain(2, 77) and not row.pending(W, 0)
    with pytest.raises(ValueError, match="at most two words"):
        Wait.of("wait.ack", (1, 2, 3), None, False, False)


def test_a_new_kind_of_command_is_added_in_one_place(monkeypatch):
    from smpemu.sched import choices, row

    monkeypatch.setattr(choices, "COMMANDS", dict(choices.COMMANDS))
    monkeypatch.setattr(choices, "BY_CODE", dict(choices.BY_CODE))
    monkeypatch.setattr(row, "BY_CODE", choices.BY_CODE)

    class Poke(choices.Command):
        """A command without argument (as issue 19's sched.out would be)."""
        __slots__ = ()
        tag = "test.poke"
        code = 99
        has_arg = False

        def apply(self, ctx):
            ctx.append(self.actor)

    choices.register(Poke)
    c, point = parse([1, "test.poke"])
    assert c is Poke(1) and point is None and not c.is_step and c.name() == [1, "test.poke"]
    W = [0] * 16
    row.send(W, 0, c)
    got = row.take(W, 0, 1)
    done = []
    got.apply(done)
    assert got is c and done == [1]
    with pytest.raises(UsageError):
        parse([1, "test.poke", 3])
