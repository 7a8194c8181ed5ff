"""Counterexamples a person can read (issue 20): harness/explain.py.

The paragraph is checked against the trace it explains: each test finds, in
the trace's own rows, the stale fill, the read of the dirty flag and the
row that wrote the value read (by footprint), and asserts the paragraph
cites those decision numbers and that value; a paragraph that named other
decisions (or one written from the policy's name) fails.  Counterexamples
come from the explorer (a second or so each) or from the recorded replay
files of tests/data (deferred-v4's overlap needs ~30 s to find), run again
in-process.  The 80-column test runs ``smpemu check`` in a pseudo-terminal
of 80 columns (and with COLUMNS=80 in a pipe).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smpemu.harness import explain
from smpemu.harness.counterexample import render_counterexample
from smpemu.kvm import events as ev
from smpemu.sched.choices import parse
from smpemu.search.check_cmd import replay_schedule, run_check
from smpemu.search.scenarios import load_scenario
from smpemu.search.world import Proto
from tests.helpers import run_in_pty

DATA = Path(__file__).parent / "data"


def from_file(name):
    doc = json.loads((DATA / name).read_text())
    c = doc["config"]
    proto = Proto(load_scenario(doc["scenario"]), c["policy"], c["memory_model"], c["requests"],
                  c.get("notifier", "2009"))
    chs = [parse(d)[0] for d in doc["decisions"]]
    return replay_schedule(proto, chs, len(proto.setup_prefix()))


def found(policy, scenario, model="native", bound=None):
    cr = run_check(policy, scenario, model, bound=bound, timeout=120, jobs=1)
    assert cr.counterexample is not None, (policy, scenario, model)
    return cr.counterexample


def rows_with(tr, pred):
    """(row index, row, code, a, b) of every event matching ``pred``."""
    return [(i, r, c, a, b) for i, r in enumerate(tr.rows) for c, a, b in r.events if pred(r, c, a, b)]


def cited(para, tr, i):
    return f"#{tr.rows[i].n}" in para


def dirty_writer(tr, before):
    """The last row before ``before`` whose footprint writes the dirty flag."""
    da = explain.dirty_addr(tr.layout)
    return max(i for i in range(before) if da in tr.rows[i].w)


def check_lost_flush(tr):
    """The facts of a lost flush, found in the trace; the paragraph must cite them."""
    v = tr.violation
    para = explain.explain(tr)
    fill = rows_with(tr, lambda r, c, a, b: r.actor == v["vcpu"] and c == ev.TLB_FILL and a == v["slot"])[-1]
    free = rows_with(tr, lambda r, c, a, b: c == ev.FREE and b == v["pfn"])[-1]
    freer = free[1].actor
    read = [e for e in rows_with(tr, lambda r, c, a, b: r.actor == freer and c in (ev.NOTIFIER_DIRTY, ev.COUNT_READ))
            if e[0] <= free[0]][-1]
    w = dirty_writer(tr, read[0])
    assert f"{tr.names[freer]} freed pfn {v['pfn']}" in para and cited(para, tr, free[0]), para
    assert f"filled at #{tr.rows[fill[0]].n}" in para, para
    assert f"read dirty = {read[3]} at #{tr.rows[read[0]].n}" in para, para
    assert cited(para, tr, w) and tr.names[tr.rows[w].actor] in para, para
    return para, read, w


def test_v3_one_flusher_paragraph():
    ce = found("deferred-v3", "one-flusher", bound=2)
    tr = ce["trace"]
    para, read, w = check_lost_flush(tr)
    assert read[3] == 0  # the skipped flush read 0 ...
    # ... written by a flush that cleared the flag before the zap, with the stale fill in between
    zap = rows_with(tr, lambda r, c, a, b: c == ev.ZAP and a == tr.violation["slot"])[-1]
    fill = rows_with(tr, lambda r, c, a, b: r.actor == tr.violation["vcpu"] and c == ev.TLB_FILL)[-1]
    assert w < fill[0] < zap[0]
    assert "before the zap reached memory" in para and cited(para, tr, zap[0])


def test_v4_overlap_paragraph():
    ce = from_file("replay-default-deferred-v4-native.json")
    tr = ce["trace"]
    para, read, w = check_lost_flush(tr)
    wa = tr.rows[w].actor
    # the writer's flush cleared the flag and had not finished when the page was freed
    assert any(c == ev.FLUSH_CLEARED for c, _, _ in tr.rows[w].events)
    assert not rows_with(tr, lambda r, c, a, b: r.actor == wa and c == ev.FLUSH_ACKED and r.n > tr.rows[w].n)
    assert f"by {tr.names[wa]}'s flush in progress" in para, para


def test_tlbs_dirty_aba_paragraph():
    ce = found("tlbs-dirty", "aba")
    tr = ce["trace"]
    para, read, w = check_lost_flush(tr)
    cx = [e for e in rows_with(tr, lambda r, c, a, b: c == ev.COUNT_CMPXCHG) if e[0] == w]
    assert cx, "the value read was written by a cmpxchg"
    _, row, _, seen, got = cx[0]
    assert seen == got  # it cleared: the count had come back to what it read
    cread = [e for e in rows_with(tr, lambda r, c, a, b: r.actor == row.actor and c == ev.COUNT_READ) if e[0] < w][-1]
    assert f"cmpxchg(count, {seen}, 0), which found {got}" in para and cited(para, tr, cread[0]), para
    # the update it erased: a dirty mark between its read and its cmpxchg, cited
    bump = [e for e in rows_with(tr, lambda r, c, a, b: c == ev.SET_DIRTY) if cread[0] < e[0] < w]
    assert bump and all(cited(para, tr, e[0]) for e in bump), para


def test_stale_write_paragraph():
    ce = found("tlbs-dirty-2.6.38", "sync-drop")
    tr = ce["trace"]
    v = tr.violation
    assert v["kind"] == "stale_write"
    para = explain.explain(tr)
    wp = rows_with(tr, lambda r, c, a, b: c == ev.WRITE_PROTECT and a == v["gfn"])[-1]
    fill = rows_with(tr, lambda r, c, a, b: r.actor == v["vcpu"] and c == ev.TLB_FILL and a == v["slot"])[-1]
    drop = rows_with(tr, lambda r, c, a, b: c == ev.ZAP and a == v["slot"])[-1]
    assert f"{tr.names[v['vcpu']]} wrote pfn {v['pfn']}" in para, para
    assert f"filled at #{tr.rows[fill[0]].n}" in para and cited(para, tr, wp[0]) and cited(para, tr, drop[0]), para
    assert ("found no spte to protect" in para) == (wp[4] == 0), para


def test_tso_marks_counted_and_drain_named():
    ce = from_file("replay-one-flusher-deferred-v3-tso.json")
    tr = ce["trace"]
    text = render_counterexample(tr, 80)
    full = ce["rendered_full"]
    p, d, _ = explain.counts(tr)
    # the counts are the marks of the complete diagram, and the focused one shows each mark
    assert p == len(re.findall(r"\* @", full)) and d == full.count("~ drain")
    assert p == len(re.findall(r"\* @", text)) and d == text.count("~ drain") and d >= 1
    assert explain.counts_text(tr).startswith(f"{p} preemption")
    assert "~ drain: dirty reaches memory" in text and "word " not in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_word_names():
    proto = Proto(load_scenario("default"), "deferred-v4", "native", "modern")
    L, names = proto.layout, ["vCPU0", "vCPU1", "vCPU2", "host0", "host1"]
    assert explain.word_name(L, explain.dirty_addr(L), names) == "dirty"
    assert explain.word_name(L, L["spte"].addr(3), names) == "spte[slot 3]"
    assert explain.word_name(L, L["mode"].addr(1, 0), names) == "vCPU1.mode"
    assert explain.word_name(L, L["req_seq"].addr(1, 3), names) == "req_seq[vCPU1, host0]"


def test_focused_is_a_slice_and_fits():
    ce = from_file("replay-default-deferred-v4-native.json")
    tr = ce["trace"]
    for width in (60, 80, 160):
        text = render_counterexample(tr, width)
        assert all(len(line) <= width for line in text.splitlines()), width
    text = render_counterexample(tr, 80)
    shown = [int(m) for m in re.findall(r"^\s*(\d+) ", text, re.M)]
    assert shown == list(range(1, len(shown) + 1)) and len(shown) < len(tr.rows)  # numbered consecutively
    rows_text = text[:text.index("What happened:")]
    for n in set(re.findall(r"#(\d+)", explain.explain(tr))):  # every decision the paragraph cites has its row
        assert re.search(rf"^\s*\d+ #{n} ", rows_text, re.M), n
    # no actor with nothing shown (vCPU2 never runs here), no event-less scheduling point
    assert "vCPU2" not in text and "@lock." not in text
    assert "--full" in text
    # the event path (a real run's rings, no footprints) tells the same story from the same events
    evs = [(k, r.actor, c, a, b) for k, r in enumerate(tr.rows) for c, a, b in r.events]
    et = explain.from_events(evs, 3, 2, tr.violation)
    para = explain.explain(et)
    assert "host0 freed pfn 1" in para and "read dirty = 0" in para and "host1's flush" in para, para


@pytest.mark.timeout(200)
def test_counterexample_at_80_columns_in_a_pty_and_a_pipe(tmp_path):
    args = ["check", "--policy", "deferred-v3", "--scenario", "one-flusher", "--memory-model", "tso", "-j", "1"]
    code, text = run_in_pty(args, timeout=150, columns_env=False)  # the width from the terminal alone
    assert code == 3, text[-2000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    lines = plain.split("\n")
    assert "What happened:" in plain and "~ drain: dirty" in plain, plain
    assert max(map(len, lines)) <= 80, [x for x in lines if len(x) > 80]
    js = tmp_path / "c.json"
    p = subprocess.run([sys.executable, "-m", "smpemu.cli", *args, "--json", str(js)], capture_output=True, text=True,
                       timeout=150, env={**os.environ, "COLUMNS": "80"})
    assert p.returncode == 3 and "What happened:" in p.stdout
    v = json.loads(js.read_text())["violation"]
    # the counts in the JSON and in the header are the marks the rendering shows
    assert v["marked_preemptions"] == len(re.findall(r"\* @", p.stdout)) and v["drains"] == p.stdout.count("~ drain")
    assert f"({v['marked_preemptions']} preemption" in p.stdout and f", {v['drains']} drain" in p.stdout
    assert " ".join(v["explanation"].split()[:12]) in " ".join(p.stdout.split())
    assert max(map(len, p.stdout.splitlines())) <= 80, [x for x in p.stdout.splitlines() if len(x) > 80]
    # --full: today's complete diagram, one column per CPU (wider than 80 on purpose)
    f = subprocess.run([sys.executable, "-m", "smpemu.cli", *args, "--full"], capture_output=True, text=True,
                       timeout=150, env={**os.environ, "COLUMNS": "80"})
    assert f.returncode == 3 and "@lock.mmu_lock" in f.stdout and "What happened:" not in f.stdout


@pytest.mark.timeout(200)
def test_replay_of_a_check_file_renders_as_check(tmp_path):
    """``replay`` runs a check file's decisions on real processes, and renders them as ``check``
    does (the schedule again in-process, for its footprints): same paragraph, same numbers."""
    rep = tmp_path / "r.json"
    env = {**os.environ, "COLUMNS": "80"}
    c = subprocess.run([sys.executable, "-m", "smpemu.cli", "check", "--policy", "tlbs-dirty-2.6.38", "--scenario",
                        "sync-drop", "-j", "1", "--replay-out", str(rep)], capture_output=True, text=True,
                       timeout=150, env=env)
    assert c.returncode == 3, c.stdout[-2000:]
    r = subprocess.run([sys.executable, "-m", "smpemu.cli", "replay", str(rep)], capture_output=True, text=True,
                       timeout=150, env=env)
    assert r.returncode == 3 and "reproduced" in r.stdout, r.stdout[-2000:]

    def para(text):
        return " ".join(text[text.index("What happened:"):].split("\n\n")[0].split("\n")[:8])
    assert "What happened:" in r.stdout and para(r.stdout).split(". ")[:3] == para(c.stdout).split(". ")[:3]
    assert max(map(len, r.stdout.splitlines())) <= 80, [x for x in r.stdout.splitlines() if len(x) > 80]


@pytest.mark.timeout(200)
def test_stress_prints_the_focused_events_and_what_happened(tmp_path):
    """A real run's rings (no footprints): sliced on the words, slots and pfns the events name."""
    p = subprocess.run([sys.executable, "-m", "smpemu.cli", "stress", "--policy", "deferred-v3", "--reclaimers", "1",
                        "--seed", "1", "--timeout", "60", "--replay-out", str(tmp_path / "r.json")],
                       capture_output=True, text=True, timeout=150, env={**os.environ, "COLUMNS": "80"})
    assert p.returncode == 3, p.stdout[-2000:]
    text = p.stdout[p.stdout.index("the events that led to it:"):]
    text = text[:text.index("\nseed ")]  # the rendering ends where the replay file's line starts
    assert max(map(len, text.splitlines())) <= 80, [x for x in text.splitlines() if len(x) > 80]
    m = re.search(r"mapped it \(slot (\d+), filled at #(\d+)\)", " ".join(text.split()))
    assert m, text
    slot, fill = m.groups()
    # the fill it cites is a row shown with that number: the victim's fill of that slot
    assert re.search(rf"^\s*\d+ #{fill} +vCPU\d+ +.*TLB fill slot {slot} ", text, re.M), text
