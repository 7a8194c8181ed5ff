"""smpemu verdicts: the configurations it derives, its table, and the committed tables it made.

The committed small-scope table (tests/data/verdicts-small.md) is regenerated
by the command line it records and must agree with it (verdicts, not times);
the README shows the verdict part of docs/verdicts-default.md as it is.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from smpemu.kvm import policies
from smpemu.kvm.policies.base import DeferredPolicy, Policy
from smpemu.search import verdicts as V

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "verdicts-small.md"
DEFAULT_TABLE = ROOT / "docs" / "verdicts-default.json"  # and its rendering, verdicts-default.md


def smpemu(*args, timeout=120):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


# -- which configurations --------------------------------------------------------------------------------------

class _LoadsOnly(Policy):
    name = "test-loads-only"

    def flush_cond(self, ctx, cond, site):
        if cond or ctx.mm.load(ctx.a_dirty):
            self.flush_remote(ctx)


class _WmbOnly(Policy):
    name = "test-wmb-only"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)
        ctx.mm.wmb()


class _SuperOnly(_LoadsOnly):
    name = "test-super"

    def zap(self, ctx, mmu, slot, gfn, site):
        mm = ctx.mm
        mm.store(ctx.a_dirty, 1)


class _CallsSuper(_SuperOnly):
    name = "test-calls-super"

    def zap(self, ctx, mmu, slot, gfn, site):
        super().zap(ctx, mmu, slot, gfn, site)  # the parent's store runs: it counts


class _Overrides(_SuperOnly):
    name = "test-overrides"

    def zap(self, ctx, mmu, slot, gfn, site):
        mmu.zap_spte(slot, gfn)  # the parent's store never runs: it does not count


def test_memory_models_follow_the_policys_own_accesses():
    assert V.memory_models(_LoadsOnly) == ("native",)
    assert V.memory_models(_WmbOnly) == ("native", "tso", "relaxed")
    assert V.own_memory_ops(_CallsSuper) >= {"store", "load"}
    assert "store" not in V.own_memory_ops(_Overrides)
    assert V.memory_models(_Overrides) == ("native",)
    # the registry's policies: derived from their code, each at least native
    for name, cls in policies.POLICIES.items():
        ops = V.own_memory_ops(cls)
        models = V.memory_models(cls)
        assert models[0] == "native"
        assert (len(models) > 1) == bool(ops & set(V.MODEL_OPS)), name
    assert "wmb" in V.own_memory_ops(DeferredPolicy)


def test_configurations_cover_notifier_and_requests_for_every_policy():
    names = list(policies.POLICIES)
    cfgs = V.configurations(names)
    for p in names:
        mine = {(c.memory_model, c.notifier, c.requests) for c in cfgs if c.policy == p}
        want = {(m, n, q) for m in V.memory_models(policies.POLICIES[p]) for n in V.NOTIFIERS for q in V.REQUESTS}
        assert mine == want, p
    r = smpemu("verdicts", "--list-configs", "--policy", "eager,deferred-v4")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("eager:", "deferred-v4:"))]
    assert len(lines) == len(V.configurations(["eager", "deferred-v4"]))
    assert "rule:" in r.stdout


def test_usage_errors_are_one_line_exit_2():
    for args in (["--policy", "no-such", "--scope", "2"], ["--scope", "0"], ["--scope", "many"],
                 ["--scope", "2", "--bound", "-1"], ["--scope", "2", "--jobs", "0"],
                 ["--scope", "2", "--timeout", "0"]):
        r = smpemu("verdicts", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, args


# -- the table -------------------------------------------------------------------------------------------------

def _row(policy, mm, n, q, mf=None, violation=None, complete=True):
    return {"policy": policy, "memory_model": mm, "notifier": n, "requests": q, "max_flushers": mf,
            "complete": complete, "incomplete_reason": None if complete else "timeout at scenario 2",
            "scenarios": 3 if complete else 1, "total": 3, "schedules": 7, "elapsed_s": 1.5,
            "violation": violation}


def _doc(rows, elapsed=9.0):
    return {"scope": 3, "bound": 1, "jobs": 1, "rule": V.RULE_TEXT, "rows": rows, "elapsed_s": elapsed,
            "complete": all(r["complete"] for r in rows),
            "configurations": [{"policy": r["policy"], "memory_model": r["memory_model"], "notifier": r["notifier"],
                                "requests": r["requests"]} for r in rows if r["max_flushers"] is None]}


def test_rendering_says_clean_broken_and_incomplete_and_times_do_not_count():
    v = {"kind": "lost_flush", "ops": 4, "preemptions": 1, "steps": 30, "scenario": {"cpus": {"0": [["unmap", 0]]}}}
    rows = [_row("eager", "native", "2009", "modern"),
            _row("deferred-v4", "native", "2009", "modern", violation=v),
            _row("deferred-v4", "native", "2009", "modern", mf=1),
            _row("mmu-lock", "native", "2009", "modern", complete=False)]
    doc = _doc(rows)
    md = V.render_markdown(doc, "smpemu verdicts --scope 3")
    assert "lost_flush: 4 ops, 1 preemptions / 1 flusher: clean" in md
    assert "INCOMPLETE (1 of 3 scenarios; timeout at scenario 2)" in md
    assert "| `eager` | tso, relaxed | not explored" in md
    assert '{"cpus":{"0":[["unmap",0]]}}' in md
    assert V.exit_code(doc) == 4 and V.exit_code(_doc(rows[:3])) == 0
    slower = _doc([dict(r, elapsed_s=r["elapsed_s"] * 7) for r in rows], elapsed=99.0)
    md2 = V.render_markdown(slower, "smpemu verdicts --scope 3")
    assert md2 != md and V.verdict_content(md2) == V.verdict_content(md)
    other = _doc([rows[0], dict(rows[1], violation=dict(v, preemptions=0))] + rows[2:])
    assert V.verdict_content(V.render_markdown(other, "smpemu verdicts --scope 3")) != V.verdict_content(md)
    assert "Made by `smpemu verdicts --scope 3`" in V.table_block(md)
    partial = dict(_doc(rows[:1]), finished=False, complete=False)
    assert "PARTIAL: 1 rows so far" in V.render_markdown(partial, "smpemu verdicts --scope 3")
    assert "PARTIAL" not in md


# -- the committed tables --------------------------------------------------------------------------------------

def _command_of(md: str) -> list:
    line = next(ln for ln in md.splitlines() if ln.startswith("Made by `"))
    return shlex.split(line.split("`")[1])


@pytest.mark.timeout(600)  # about 20 CPU seconds; minutes of wall clock on a loaded machine
def test_committed_small_table_is_what_the_tool_computes(tmp_path):
    committed = SMALL.read_text()
    cmd = _command_of(committed)
    assert cmd[:2] == ["smpemu", "verdicts"]
    out = tmp_path / "v.md"
    r = smpemu(*cmd[1:], "--jobs", "1", "--markdown", str(out), timeout=580)
    assert r.returncode == 0, r.stderr  # complete: a committed table with an INCOMPLETE row would flake
    assert V.verdict_content(out.read_text()) == V.verdict_content(committed)


def test_readme_shows_the_default_scope_table():
    readme = (ROOT / "README.md").read_text()
    begin = "<!-- verdicts: the verdict part of docs/verdicts-default.md (tests/test_verdicts.py compares) -->"
    shown = readme[readme.index(begin) + len(begin):readme.index("<!-- /verdicts -->")].strip() + "\n"
    table = DEFAULT_TABLE.with_suffix(".md").read_text()
    assert shown == V.table_block(table)
    # the committed table is whole: the README's text says every configuration was searched (a table cut
    # short says PARTIAL in the first line the README shows: test_rendering_says_clean_broken_and_...)
    assert "PARTIAL" not in shown and "not run" not in table and "INCOMPLETE" not in table
    saved = json.loads(DEFAULT_TABLE.read_text())
    assert saved["finished"] and saved["interrupted"] is None
    assert all(r["complete"] for r in saved["rows"])


def test_committed_default_markdown_is_the_rendering_of_its_json():
    # the .md is what `smpemu verdicts --render docs/verdicts-default.json` writes: nobody edited it
    doc = json.loads(DEFAULT_TABLE.read_text())
    assert V.render_markdown(doc, doc["command"]) == DEFAULT_TABLE.with_suffix(".md").read_text()


def test_render_of_saved_rows_checks_the_configurations(tmp_path):
    import dataclasses

    cfgs = V.configurations(["eager"])
    rows = [_row(c.policy, c.memory_model, c.notifier, c.requests) for c in cfgs]
    doc = dict(_doc(rows), policies=["eager"], finished=True, command="smpemu verdicts --scope 3 --policy eager")
    doc["configurations"] = [dataclasses.asdict(c) for c in cfgs]
    saved = tmp_path / "t.json"
    saved.write_text(json.dumps(doc))
    r = smpemu("verdicts", "--render", str(saved), "--markdown", str(tmp_path / "t.md"))
    assert r.returncode == 0, r.stderr
    assert V.verdict_content((tmp_path / "t.md").read_text()) == V.verdict_content(
        V.render_markdown(doc, doc["command"]))
    doc["configurations"] = doc["configurations"][1:]  # not what the rule gives
    saved.write_text(json.dumps(doc))
    r = smpemu("verdicts", "--render", str(saved))
    assert r.returncode == 2 and "configurations" in r.stderr


# -- --resume ---------------------------------------------------------------------------------------------------

def _fake_search(calls, breaking=("deferred-v4",)):
    """A scope search that records its settings: a broken policy at max-flushers unlimited, else clean."""
    from smpemu.search.scope_types import ScopeResult, ScopeViolation

    def search(st):
        calls.append(st)
        v = None
        if st.policy in breaking and st.max_flushers is None:
            v = ScopeViolation("lost_flush", {"cpus": {}}, 2, 1, 9, {}, described=f"{st.policy} {st.notifier}")
        return ScopeResult(st, True, 5, 5, 11, 0.1, v, explored_ops=st.scope)

    return search


def test_resume_keeps_complete_rows_and_runs_the_rest(tmp_path):
    """A table interrupted after some rows, resumed: the kept rows are not run again, the missing ones
    are, and the table is the one a single run makes (in the configurations' order, native first run)."""
    names = ["eager", "deferred-v4"]
    calls = []
    full = V.run_table(names, 2, 1, search=_fake_search(calls))
    assert len(calls) == len(full["rows"]) and full["complete"]
    assert [c.memory_model for c in calls] == sorted((c.memory_model for c in calls),
                                                     key=V.MODELS_ORDER.index)  # native first
    part = full["rows"][:5]
    calls2 = []
    again = V.run_table(names, 2, 1, search=_fake_search(calls2), done_rows=part + [dict(full["rows"][5],
                                                                                         complete=False)])
    assert len(calls2) == len(full["rows"]) - 5  # the incomplete row runs again
    assert sum(bool(r.get("resumed")) for r in again["rows"]) == 5
    assert V.verdict_content(V.render_markdown(again, "x")) == V.verdict_content(V.render_markdown(full, "x"))


def test_resume_refuses_another_table_or_other_code(tmp_path):
    names = ["eager"]
    doc = V.run_table(names, 1, 1, search=_fake_search([]))
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    assert len(V.resumable_rows(str(f), 1, 1, names, None)) == len(doc["rows"])
    assert V.resumable_rows(str(tmp_path / "none.json"), 1, 1, names, None) == []
    for args, what in (((2, 1, names, None), "another table"), ((1, 1, names, 60.0), "--timeout")):
        with pytest.raises(V.UsageError, match=what):
            V.resumable_rows(str(f), *args)
    f.write_text(json.dumps(dict(doc, fingerprint="0" * 16)))
    with pytest.raises(V.UsageError, match="other code"):
        V.resumable_rows(str(f), 1, 1, names, None)
    r = smpemu("verdicts", "--scope", "1", "--policy", "eager", "--resume")
    assert r.returncode == 2 and "--json" in r.stderr and "Traceback" not in r.stderr


def test_fingerprint_covers_the_protocol_not_the_printing():
    import smpemu.search.verdicts as mod
    from pathlib import Path

    fp = V.code_fingerprint()
    assert fp == V.code_fingerprint() and len(fp) == 16
    root = Path(mod.__file__).resolve().parents[2]
    covered = {p.relative_to(root).as_posix() for top in ("smpemu", "workloads") for p in (root / top).rglob("*.py")}
    assert {"smpemu/kvm/mmu.py", "smpemu/search/scope_enum.py", "smpemu/search/explore.py",
            "workloads/script.py"} <= covered - V._NOT_VERDICT_CODE
    assert V._NOT_VERDICT_CODE <= covered  # no stale name in the exclusions


def test_an_interrupted_search_stops_the_table():
    """Ctrl-C (or SIGTERM) stops the search it lands in, and the table stops there: the rows so far,
    PARTIAL, the interruption's exit code; --resume would run the interrupted row again."""
    from smpemu.search.scope_types import ScopeResult

    calls = []
    inner = _fake_search(calls)

    def search(st):
        if len(calls) == 2:
            calls.append(st)
            r = ScopeResult(st, False, 1, 5, 3, 0.1, None, incomplete_reason="interrupted (SIGINT)")
            r.interrupted = "SIGINT"
            return r
        return inner(st)

    doc = V.run_table(["eager", "deferred-v4"], 2, 1, search=search)
    assert len(calls) == 3 and len(doc["rows"]) == 3 and doc["interrupted"] == "SIGINT"
    assert not doc["finished"] and not doc["rows"][-1]["complete"] and V.exit_code(doc) == 130
    assert "PARTIAL: 3 rows so far" in V.render_markdown(doc, "x")


@pytest.mark.timeout(240)
def test_ctrl_c_leaves_a_table_that_resume_continues(tmp_path):
    """SIGINT during a row: exit 130, INCOMPLETE on stderr, the table so far in the --json file
    (written whole), whose complete rows --resume keeps.  The signal is sent once the first row
    (mmu-lock's 2009 lost flush, seconds) is printed; its one-flusher row at scope 3 takes minutes."""
    import signal
    import time

    js = tmp_path / "t.json"
    p = subprocess.Popen([sys.executable, "-u", "-m", "smpemu.cli", "verdicts", "--scope", "3", "--policy",
                          "mmu-lock", "--jobs", "1", "--json", str(js)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        t0 = time.monotonic()
        for line in p.stdout:
            if line.startswith("  mmu-lock "):
                break
            assert time.monotonic() - t0 < 150, "no row in 150 s"
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 130, (rest, err)
    assert "INCOMPLETE: interrupted (SIGINT)" in err and "Traceback" not in err, err
    doc = json.loads(js.read_text())
    # the signal lands in the second search (its row: incomplete) or just before it (no second row)
    assert doc["interrupted"] == "SIGINT" and doc["rows"][0]["complete"] and len(doc["rows"]) in (1, 2)
    assert all(not r["complete"] for r in doc["rows"][1:])
    assert len(V.resumable_rows(str(js), 3, 1, ["mmu-lock"], None)) == 1
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("smpemu-") and str(p.pid) in f]


def test_code_of_ignores_prose_not_code():
    a = 'def f(x):\n    """Doc."""\n    # a comment\n    return x + 1\n'
    b = 'def f(x):\n    """Another doc, longer."""\n\n    return x + 1  # another comment\n'
    c = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert V.code_of(a) == V.code_of(b) != V.code_of(c)
    assert V.code_of('"""Module doc."""\nX = 1\n') == V.code_of("X = 1\n")


# -- --confirm: a saved table's counterexamples on real processes ------------------------------------------------


@pytest.mark.timeout(300)
def test_confirm_reproduces_every_minimal_scenario_of_the_committed_table(tmp_path):
    # every violation row of the committed default-scope table: re-derived by check --scenario (same kind,
    # preemptions, drains, steps) and replayed with real vCPU and host processes (a few seconds)
    n = len([r for r in json.loads(DEFAULT_TABLE.read_text())["rows"] if r.get("violation")])
    assert n >= 1
    out = tmp_path / "c.json"
    r = smpemu("verdicts", "--confirm", str(DEFAULT_TABLE), "--json", str(out), timeout=280)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    res = json.loads(out.read_text())
    assert res["total"] == n and res["confirmed"] == n
    assert all(x["rederived"] and x["reproduced"] for x in res["rows"])
    assert f"confirmed {n} of {n} minimal breaking scenarios" in r.stdout


@pytest.mark.timeout(120)
def test_confirm_says_which_row_does_not_hold(tmp_path):
    doc = json.loads(DEFAULT_TABLE.read_text())
    rows = [r for r in doc["rows"] if r.get("violation") and r["violation"]["ops"] == 2
            and r["memory_model"] == "native"][:3]
    assert len(rows) == 3
    rows[0]["violation"]["steps"] += 1  # an edited row: the explorer finds another counterexample
    rows[1]["policy"], rows[1]["notifier"] = "mmu-lock", "2012"  # a clean setting: no violation at all
    saved = tmp_path / "t.json"
    saved.write_text(json.dumps({**doc, "rows": rows}))
    r = smpemu("verdicts", "--confirm", str(saved), "--json", str(tmp_path / "c.json"))
    assert r.returncode == 4, r.stdout + r.stderr
    assert r.stdout.count("NOT CONFIRMED") == 2
    assert "another minimal counterexample: steps" in r.stdout and "finds no violation" in r.stdout
    assert "confirmed 1 of 3" in r.stdout
    res = json.loads((tmp_path / "c.json").read_text())
    assert [x["reproduced"] for x in res["rows"]] == [False, False, True]


def test_confirm_usage_errors_are_one_line_exit_2(tmp_path):
    (tmp_path / "x.json").write_text('{"not": "a table"}')
    for args in (["--confirm", str(tmp_path / "none.json")], ["--confirm", str(tmp_path / "x.json")],
                 ["--confirm", str(DEFAULT_TABLE), "--resume"]):
        r = smpemu("verdicts", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, args
