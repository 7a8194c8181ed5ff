"""Litmus tests on the memory models, with real processes; and the parser.

Odds of a false failure.  A "Sometimes" outcome must show at least once in
N instances.  Measured on this 2-core machine (10 seeds x 20,000 instances,
idle and with two CPU hogs), the lowest witness rates were 1.8 % for
MP+poonceonces under relaxed and 10 % for SB+poonceonces under tso or
relaxed.  With N = 10,000 that is >= 180 expected witnesses; even at a tenth
of the lowest rate (18 expected) P(no witness) ~ e^-18 ~ 2e-8 per test.
Seeds are fixed; the interleavings are real and are not.
"Never" outcomes must not show at all: any witness is a failure.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from smpemu.errors import EXIT_OK, EXIT_VIOLATION, AbortError, UsageError
from smpemu.litmus import format_result, litmus_command, parse_file, parse_text, run_test
from smpemu.litmus import runner as litmus_runner
from smpemu.harness.resources import list_objects

LITMUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "litmus"
LITMUS_FILES = sorted(LITMUS_DIR.glob("*.litmus")) if LITMUS_DIR.is_dir() else []
needs_shared = pytest.mark.skipif(not LITMUS_FILES, reason=f"no litmus tests in {LITMUS_DIR} (shared/ is beside the clone in CI)")
N = 10_000  # instances per run; see the module docstring for the odds


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test leaves no POSIX object of this process and no child alive."""
    yield
    mine = f"smpemu-{os.getpid()}-"
    assert not [n for n, _ in list_objects() if mine in n]
    assert not multiprocessing.active_children()


def shared(name: str) -> Path:
    path = LITMUS_DIR / f"{name}.litmus"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.litmus"
    path.write_text(text)
    return path


LB = """C LB+poonceonces

(* Result: Sometimes   (in the LKMM; never with a store buffer) *)

{}

P0(int *x, int *y)
{
	int r0;

	r0 = READ_ONCE(*x);
	WRITE_ONCE(*y, 1);
}

P1(int *x, int *y)
{
	int r0;

	r0 = READ_ONCE(*y);
	WRITE_ONCE(*x, 1);
}

exists (0:r0=1 /\\ 1:r0=1)
"""

WRC = """C WRC+poonceonces+Once

(* Result: Sometimes   (in the LKMM; never in a multi-copy-atomic model) *)

{}

P0(int *x) { WRITE_ONCE(*x, 1); }

P1(int *x, int *y) { int r0; r0 = READ_ONCE(*x); WRITE_ONCE(*y, 1); }

P2(int *x, int *y) { int r1; int r2; r1 = READ_ONCE(*y); r2 = READ_ONCE(*x); }

exists (1:r0=1 /\\ 2:r1=1 /\\ 2:r2=0)
"""

ATOMICS = """C cmpxchg-vs-store
(* Result: Never *)
{ x = 0; }
P0(int *x) { WRITE_ONCE(*x, 2); }
P1(int *x) { int r0; r0 = cmpxchg(x, 0, 1); }
P2(int *x) { int r1; r1 = xchg(&x, 3); }
exists (1:r0=2 /\\ x=1 \\/ 1:r0=0 /\\ 2:r1=0 \\/ (x=2 /\\ 2:r1=2))
"""


# -- the shared litmus tests --------------------------------------------------------------


@needs_shared
@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", LITMUS_FILES, ids=lambda p: p.stem)
def test_shared_litmus_agrees_with_result_line_under_relaxed(path):
    test = parse_file(path)
    assert test.expected in ("Never", "Sometimes", "Always"), f"{path} has no Result: line"
    res = run_test(test, iterations=N, model="relaxed", seed=11)
    assert res.observation == test.expected, format_result(res)


@needs_shared
@pytest.mark.timeout(30)
@pytest.mark.parametrize("model", ["tso", "relaxed"])
def test_sb_shows_under_store_buffer_models(model):
    res = run_test(parse_file(shared("SB+poonceonces")), iterations=N, model=model, seed=12)
    assert res.observation == "Sometimes", format_result(res)


@needs_shared
@pytest.mark.timeout(30)
@pytest.mark.parametrize("model", ["tso", "native"])
def test_mp_without_fences_never_shows_under_tso_and_native(model):
    res = run_test(parse_file(shared("MP+poonceonces")), iterations=N, model=model, seed=13)
    assert res.positive == 0, format_result(res)
    assert sum(res.histogram.values()) == N


@needs_shared
@pytest.mark.timeout(30)
@pytest.mark.parametrize("model", ["native", "tso", "relaxed"])
@pytest.mark.parametrize(
    "path", [p for p in LITMUS_FILES if parse_file(p).expected == "Never"], ids=lambda p: p.stem
)
def test_never_tests_never_show_under_any_model(path, model):
    res = run_test(parse_file(path), iterations=N, model=model, seed=14)
    assert res.positive == 0 and not res.violation, format_result(res)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("model", ["native", "tso", "relaxed"])
def test_store_buffers_never_show_lb_or_non_mca_outcomes(tmp_path, model):
    """No load reordering and one memory: LB and WRC never show (see docs)."""
    for text, name in ((LB, "LB"), (WRC, "WRC")):
        res = run_test(parse_file(write(tmp_path, name, text)), iterations=N // 2, model=model, seed=15)
        assert res.positive == 0, format_result(res)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("model", ["native", "tso", "relaxed"])
def test_plain_store_and_cmpxchg_on_one_word_are_atomic(tmp_path, model):
    res = run_test(parse_file(write(tmp_path, "atomics", ATOMICS)), iterations=N // 2, model=model, seed=16)
    assert res.positive == 0, format_result(res)
    assert len(res.histogram) >= 2  # really concurrent: more than one outcome


# -- the command ------------------------------------------------------------------------


@needs_shared
@pytest.mark.timeout(60)
def test_command_on_a_directory_prints_reports_and_summary(capsys):
    assert litmus_command([str(LITMUS_DIR)], iterations=N, memory_model="relaxed", seed=21) == EXIT_OK
    out = capsys.readouterr().out
    for path in LITMUS_FILES:
        test = parse_file(path)
        assert f"Test {test.name} Allowed" in out
        assert f"Observation {test.name} {test.expected} " in out
    assert "States " in out and "Positive: " in out and "Witnesses" in out
    assert "Condition exists (1:r0=1 /\\ 1:r1=0) is validated" in out
    assert "Condition exists (0:r0=0 /\\ 1:r0=0) is NOT validated" in out
    summary = out[out.index("Test  ") :]
    assert "FAILED" not in summary and summary.count(" OK") == len(LITMUS_FILES)


@needs_shared
@pytest.mark.timeout(30)
def test_command_exits_3_when_a_never_test_shows(tmp_path, capsys):
    wrong = shared("MP+poonceonces").read_text().replace("Result: Sometimes", "Result: Never")
    path = write(tmp_path, "MP-claimed-never", wrong)
    assert litmus_command([str(path)], iterations=N, memory_model="relaxed", seed=22) == EXIT_VIOLATION
    assert "Observation MP+poonceonces Sometimes" in capsys.readouterr().out


@needs_shared
@pytest.mark.timeout(30)
def test_command_summary_marks_an_allowed_outcome_not_seen(capsys):
    paths = [str(shared("MP+poonceonces")), str(shared("SB+poonceonces"))]
    assert litmus_command(paths, iterations=2000, memory_model="tso", seed=23) == EXIT_OK
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("MP+poonceonces "))
    assert "NOT SEEN" in row


def test_command_rejects_bad_input(tmp_path):
    good = write(tmp_path, "SB", LB)
    with pytest.raises(UsageError, match="unknown memory model 'pso'"):
        litmus_command([str(good)], memory_model="pso")
    with pytest.raises(UsageError, match="must be positive"):
        litmus_command([str(good)], iterations=0)
    with pytest.raises(UsageError, match="does not exist"):
        litmus_command([str(tmp_path / "missing.litmus")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no \\*.litmus file"):
        litmus_command([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match="no litmus file"):
        litmus_command([])
    bad = write(tmp_path, "bad", LB.replace("WRITE_ONCE(*y, 1);", "spin_lock(y);"))
    with pytest.raises(UsageError, match=f"{bad}:12: unsupported statement 'spin_lock'"):
        litmus_command([str(good), str(bad)])  # checked before anything runs


# -- failures of the thread processes ---------------------------------------------------------


def _sabotage(monkeypatch, thread: int, action) -> None:
    """Make litmus thread ``thread`` run ``action`` at its 5th instance."""
    real = litmus_runner._compile_thread

    def compile_thread(th, var_base, reg_base, ns):
        body = real(th, var_base, reg_base, ns)
        if th.index != thread:
            return body

        def sabotaged(i):
            if i == 5:
                action()
            body(i)

        return sabotaged

    monkeypatch.setattr(litmus_runner, "_compile_thread", compile_thread)


def _raise():
    raise RuntimeError("injected failure")


@pytest.mark.timeout(30)
def test_a_dying_thread_aborts_the_run_and_everything_is_cleaned(tmp_path, monkeypatch):
    _sabotage(monkeypatch, 1, _raise)
    with pytest.raises(AbortError, match=r"P1 \(pid \d+\) died in batch 0: RuntimeError: injected failure"):
        run_test(parse_file(write(tmp_path, "LB", LB)), iterations=1000, model="tso", timeout=5.0)


@pytest.mark.timeout(30)
def test_a_stuck_thread_aborts_the_run_within_the_timeout(tmp_path, monkeypatch):
    _sabotage(monkeypatch, 0, threading.Event().wait)  # blocks forever
    with pytest.raises(AbortError, match="P1 .* died .* did not reach instance 7 within 1.0 s"):
        run_test(parse_file(write(tmp_path, "LB", LB)), iterations=1000, model="relaxed", timeout=1.0)


# -- the parser -----------------------------------------------------------------------------

FULL = """C Everything
"a doc string"
(*
 * Result: Sometimes
 *)
{
	int x;
	int y = 1;
	z=2;
	1:r9 = 7;
}

P0(int *x, int *y, int *z)
{
	int r0 = 5, r1;
	// a comment
	WRITE_ONCE(*x, 1); /* another */
	smp_store_release(y, r0);
	smp_store_release(&z, -3);
	smp_wmb(); smp_rmb(); smp_mb();
	r1 = smp_load_acquire(x);
	r0 = READ_ONCE(*z);
	r1 = r0;
}

P1(int *x, int *y)
{
	int r0;
	r0 = xchg(x, 2);
	r2 = cmpxchg(&y, 1, 4);
}

exists (0:r0=1 /\\ ~(1:r0=0 \\/ x=2) /\\ (y=1 \\/ 1:r9=7))
"""


def test_parser_reads_the_whole_subset():
    t = parse_text(FULL, "full.litmus")
    assert t.name == "Everything" and t.expected == "Sometimes" and t.quantifier == "exists"
    assert t.init == {"x": 0, "y": 1, "z": 2}
    p0, p1 = t.threads
    assert p0.params == ["x", "y", "z"] and p0.regs == {"r0": 5, "r1": 0}
    assert [(op.kind, op.reg, op.var, op.args) for op in p0.ops] == [
        ("store", None, "x", (1,)),
        ("store_release", None, "y", ("r0",)),
        ("store_release", None, "z", (-3,)),
        ("wmb", None, None, ()),
        ("rmb", None, None, ()),
        ("mb", None, None, ()),
        ("load_acquire", "r1", "x", ()),
        ("load", "r0", "z", ()),
        ("assign", "r1", None, ("r0",)),
    ]
    assert p0.ops[0].line == 17
    assert p1.regs == {"r9": 7, "r0": 0, "r2": 0}
    assert [(op.kind, op.args) for op in p1.ops] == [("xchg", (2,)), ("cmpxchg", (1, 4))]
    assert t.atomic_vars() == {"x", "y"}
    assert t.condition_vars() == ["x", "y"]
    assert t.condition_display() == "(0:r0=1 /\\ ~(1:r0=0 \\/ x=2) /\\ (y=1 \\/ 1:r9=7))"


@needs_shared
def test_parser_reads_the_shared_files():
    for path in LITMUS_FILES:
        t = parse_file(path)
        assert t.name == path.stem and t.expected in ("Never", "Sometimes")
        assert len(t.threads) == 2 and set(t.init) == {"x", "y"}


def test_condition_without_parentheses_and_other_quantifiers():
    base = "C t\n{}\nP0(int *x) { int r0; r0 = READ_ONCE(*x); }\n"
    t = parse_text(base + "exists 0:r0=0 /\\ x=0\n")
    assert t.condition_display() == "(0:r0=0 /\\ x=0)"
    assert parse_text(base + "~exists (0:r0=1)").quantifier == "~exists"
    assert parse_text(base + "forall (0:r0=0 \\/ 0:r0=1)").quantifier == "forall"
    assert parse_text(base + "exists (0:r0=1) /\\ (x=1)").condition_display() == "((0:r0=1) /\\ (x=1))"


def good_lines():
    return [
        "C bad",  # 1
        "{}",  # 2
        "P0(int *x)",  # 3
        "{",  # 4
        "\tint r0;",  # 5
        "\tWRITE_ONCE(*x, 1);",  # 6
        "}",  # 7
        "exists (0:r0=0)",  # 8
    ]


@pytest.mark.parametrize(
    "line, replacement, message",
    [
        (6, "\tspin_lock(x);", "6: unsupported statement 'spin_lock'"),
        (6, "\tif (r0 == 1) WRITE_ONCE(*x, 1);", "6: unsupported statement 'if'"),
        (6, "\tr0 = atomic_inc_return(x);", "6: unsupported operation 'atomic_inc_return'"),
        (6, "\tWRITE_ONCE(*y, 1);", "6: P0 uses 'y', which is not one of its parameters"),
        (6, "\tWRITE_ONCE(*x, r7);", "6: P0: unknown register 'r7'"),
        (6, "\tWRITE_ONCE(*x, 1)", "7: expected ';' after a statement, found '}'"),
        (6, "\tx = 1;", "6: cannot assign to shared variable 'x'"),
        (6, "\tWRITE_ONCE(*x, 1); @", "6: unexpected character '@'"),
        (3, "P0(spinlock_t *x)", "3: unsupported parameter type 'spinlock_t'"),
        (3, "P1(int *x)", "3: expected thread P0, found 'P1'"),
        (2, "{ int *p = &x; }", "2: pointer variables in the initial state are not supported"),
        (8, "exists (0:r5=0)", "8: condition names unknown register 0:r5"),
        (8, "exists (w=0)", "8: condition names unknown variable 'w'"),
        (8, "exists (0:r0=0", "8: expected ')' closing the condition, found end of file"),
        (8, "locations [x;]", "8: unsupported item 'locations'"),
        (8, "", "missing final condition"),
        (1, "C", "1: expected 'C <name>'"),
        (1, "AArch64 bad", "1: expected 'C <name>'"),
    ],
)
def test_parse_errors_name_file_and_line(line, replacement, message):
    lines = good_lines()
    lines[line - 1] = replacement
    with pytest.raises(UsageError) as err:
        parse_text("\n".join(lines) + "\n", "bad.litmus")
    assert str(err.value).startswith("bad.litmus:")
    assert message in str(err.value)


def test_parse_errors_for_comments_and_files(tmp_path):
    with pytest.raises(UsageError, match="x.litmus:2: unterminated comment"):
        parse_text("C t\n(* never closed\n{}\n", "x.litmus")
    with pytest.raises(UsageError, match="unknown Result 'Maybe'"):
        parse_text("C t\n(* Result: Maybe *)\n{}\nP0(int *x) { WRITE_ONCE(*x, 1); }\nexists (x=1)\n")
    with pytest.raises(UsageError, match="empty litmus file"):
        parse_text("\n\n", "e.litmus")
    with pytest.raises(UsageError, match="cannot read litmus file"):
        parse_file(tmp_path / "nope.litmus")
    (tmp_path / "bin.litmus").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="cannot read litmus file"):
        parse_file(tmp_path / "bin.litmus")
