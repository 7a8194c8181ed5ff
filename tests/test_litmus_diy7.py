r"""Litmus files as herdtools writes them (issue 20).

diy7, and mlisa2c7 translating its tests to kernel C, write ``key=value``
info lines (``Hash``, ``Cycle``, ``Relax``, ``Safe``, ``Generator``,
``Prefetch``, ``Com``, ``Orig``) between the name line and the initial
state, and name memory locations in brackets in the condition
(``exists ([x]=2 /\ [y]=2)``); herd7 accepts both.  The corpus files
tests/litmus/diy7-*.litmus are written by hand in mlisa2c7's layout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smpemu.errors import EXIT_OK, EXIT_USAGE, UsageError
from smpemu.litmus import command as C
from smpemu.litmus import exhaustive as X
from smpemu.litmus import program as G
from smpemu.litmus import litmus_command, parse_file, parse_text

CORPUS = Path(__file__).resolve().parent / "litmus"
R = CORPUS / "diy7-R.litmus"
W22 = CORPUS / "diy7-2+2W.litmus"
DIY7_KEYS = ["Hash", "Cycle", "Relax", "Safe", "Generator", "Prefetch", "Com", "Orig"]


def exact(path_or_test, mm: str) -> tuple[str, set]:
    test = path_or_test if not isinstance(path_or_test, Path) else parse_file(path_or_test)
    prog = G.build(test)
    res = X.explore(prog, mm)
    assert res.complete and res.stuck == 0
    return res.verdict(prog), res.states


def test_the_diy7_files_parse_with_their_info_lines_and_generated_c():
    t = parse_file(R)
    assert list(t.info) == DIY7_KEYS
    assert t.info["Cycle"] == "Fre PodWW Wse PodWR" and t.info["Relax"] == "PodWR"
    assert t.info["Prefetch"] == "0:x=F,0:y=W,1:y=F,1:x=T"  # the value keeps its '=', ':' and ','
    assert t.info["Generator"] == "diy7 (version 7.56)"
    assert t.expected == "Sometimes"  # the Result comment sits between the info lines and '{}'
    # 'int* x' without a space, 'int r0 = READ_ONCE(*x);' declared where it is loaded
    assert [th.params for th in t.threads] == [["x", "y"], ["x", "y"]]
    assert t.threads[1].param_types == {"x": "int", "y": "int"} and t.threads[1].regs == {"r0": 0}
    assert t.condition == ("and", ("eq", ("var", "y"), ("val", 2)), ("eq", ("reg", 1, "r0"), ("val", 0)))
    assert t.condition_display() == "([y]=2 /\\ 1:r0=0)" and t.columns() == ["1:r0", "y"]
    w = parse_file(W22)
    assert w.condition == ("and", ("eq", ("var", "x"), ("val", 2)), ("eq", ("var", "y"), ("val", 2)))
    assert w.info["Cycle"] == "Wse PodWW Wse PodWW" and w.info["Relax"] == "PodWW"


def test_exact_verdicts_of_the_diy7_files():
    """R is store buffering's cousin: every model has it.  2+2W needs each
    thread's stores to reach memory out of order: relaxed only."""
    for mm in ("tso", "relaxed"):
        assert exact(R, mm) == ("Sometimes", {(0, 1), (0, 2), (1, 1), (1, 2)})
    assert exact(W22, "tso") == ("Never", {(1, 1), (1, 2), (2, 1)})
    assert exact(W22, "relaxed") == ("Sometimes", {(1, 1), (1, 2), (2, 1), (2, 2)})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mm", ["tso", "relaxed"])
def test_command_json_carries_the_info_and_the_report_prints_it_as_litmus7(tmp_path, capsys, mm):
    out_json = tmp_path / "o.json"
    code = litmus_command([str(R), str(W22), str(CORPUS / "SB.litmus")], iterations=2000, memory_model=mm,
                          seed=41, json_path=str(out_json))  # fmt: skip
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    r, w, sb = json.loads(out_json.read_text())["tests"]
    assert (r["name"], r["model"]) == ("R", "Sometimes")
    assert (w["name"], w["model"]) == ("2+2W", "Never" if mm == "tso" else "Sometimes")
    assert list(r["info"]) == DIY7_KEYS and r["info"]["Cycle"] == "Fre PodWW Wse PodWR"
    assert r["info"]["Relax"] == "PodWR" and w["info"]["Relax"] == "PodWW"
    assert sb["info"] == {}  # a file without info lines
    # litmus7's order and forms: after the condition, Relax with the verdict, no Prefetch
    report = out[out.index("Test R Allowed") : out.index("Test 2+2W Allowed")]
    relax = f"Relax R {'Ok' if r['positive'] else 'No'} PodWR"
    tail = report[report.index("Condition exists ([y]=2 /\\ 1:r0=0) ") :].split("\n")
    assert tail[1:8] == [
        "Hash=00000000000000000000000000000000",
        "Cycle=Fre PodWW Wse PodWR",
        relax,
        "Safe=Fre Wse PodWW",
        "Generator=diy7 (version 7.56)",
        "Com=Ws Fr",
        "Orig=PodWW Wse PodWR Fre",
    ]
    assert tail[8].startswith("Observation R ") and "Prefetch" not in out


def test_info_lines_as_herd7_reads_them():
    body = "\n{}\nP0(int *x) { WRITE_ONCE(*x, 1); }\nexists (x=1)\n"
    t = parse_text('C t\n"PodWW Rfe"\nCycle = Rfe PodRR  \r\nRelax=\n(* c *)\nCom=Rf Fr\nCycle=second\nk.e/y-2=v' + body)
    assert t.info == {"Cycle": "Rfe PodRR", "Relax": "", "Com": "Rf Fr", "k.e/y-2": "v"}  # the first Cycle wins
    assert t.expected is None and t.threads[0].params == ["x"]
    assert parse_text("C t" + body).info == {}
    # only before the initial state: after it a key=value line is C, and wrong C here
    with pytest.raises(UsageError, match=r"t.litmus:4: unsupported item 'Cycle'"):
        parse_text("C t" + body.replace("\nexists", "\nCycle=Rfe\nexists"), "t.litmus")


def test_bracketed_locations_in_condition_filter_and_locations():
    base = "C t\n{}\nP0(int *x, int *y) { int r0 = READ_ONCE(*x); WRITE_ONCE(*y, r0); }\n"
    bare, brk = parse_text(base + "exists (x=1 /\\ y=1)"), parse_text(base + "exists ([x]=1 /\\ [y]=1)")
    assert bare.condition == brk.condition and brk.condition_display() == "([x]=1 /\\ [y]=1)"
    # on the right a bare name is an address, a bracketed one the variable's value
    assert parse_text(base + "exists (0:r0=x)").condition[2] == ("addr", "x")
    assert parse_text(base + "exists (0:r0=[x])").condition[2] == ("var", "x")
    assert parse_text(base + "exists ([x]=[y])").condition == ("eq", ("var", "x"), ("var", "y"))
    assert parse_text(base + "exists ([x]=0:r0)").condition == ("eq", ("var", "x"), ("reg", 0, "r0"))
    assert parse_text(base + "exists ([x]!=1)").condition == ("not", ("eq", ("var", "x"), ("val", 1)))
    t = parse_text(base + "locations [x; [y]; 0:r0;]\nfilter ([x]=0)\nexists (not ([y]=0))")
    assert t.locations == [("var", "x"), ("var", "y"), ("reg", 0, "r0")]
    assert t.filter == ("eq", ("var", "x"), ("val", 0)) and t.columns() == ["0:r0", "y", "x"]
    assert exact(parse_text(base + "exists ([y]=1)"), "relaxed")[0] == "Never"  # x is never 1
    assert exact(parse_text(base + "exists ([y]=[x])"), "relaxed")[0] == "Always"


@pytest.mark.parametrize(
    "cond, message",
    [
        ("[0:r0]=0", "t.litmus:3: [0:r0] in the condition: brackets name a shared variable, not a register (write 0:r0)"),
        ("[r0]=0", "t.litmus:3: [r0] in the condition: 'r0' is a register, not a shared variable (write 0:r0)"),
        ("[z]=0", "t.litmus:3: condition names unknown location [z]"),
        ("x=[z]", "t.litmus:3: condition names unknown location [z]"),
        ("[x=0", "t.litmus:3: expected ']' closing '[x', found '='"),
        ("[1]=0", "t.litmus:3: expected a shared variable inside '[...]', found '1'"),
    ],
)
def test_a_bad_bracket_is_one_clear_line(cond, message):
    text = f"C t\n{{}}\nP0(int *x) {{ int r0 = READ_ONCE(*x); }} exists ({cond})\n"
    with pytest.raises(UsageError) as e:
        parse_text(text, "t.litmus")
    assert str(e.value) == message


@pytest.mark.timeout(60)
def test_a_bad_bracket_is_an_error_row_and_exit_2_from_the_cli(tmp_path):
    bad = tmp_path / "R-bad.litmus"
    bad.write_text(R.read_text().replace("exists ([y]=2 /\\ 1:r0=0)", "exists ([y]=2 /\\ [1:r0]=0)"))
    out_json = tmp_path / "o.json"
    cmd = [sys.executable, "-m", "smpemu.cli", "litmus", str(bad), str(R), "--iterations", "300", "--seed", "42"]
    proc = subprocess.run(cmd + ["--json", str(out_json)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    line = f"smpemu litmus: {bad}:37: [1:r0] in the condition: brackets name a shared variable, not a register (write 1:r0)"
    assert line + "\n" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    rows = json.loads(out_json.read_text())["tests"]
    assert [(x["status"], x["model"]) for x in rows] == [(C.ERROR, None), ("OK", "Sometimes")]
    assert rows[0]["error"] == line.removeprefix("smpemu litmus: ") and rows[0]["info"] == {}
