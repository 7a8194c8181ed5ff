"""Exits that tell the truth (issue 20): a full disk keeps the verdict's exit
code, a run that explored nothing is not a pass, SIGTERM is 143 everywhere,
infinite or absurd numbers are one line and exit 2 (from the command line, a
script and a replay file), a hand-edited replay file is blamed on its key,
options are checked before any header, COLUMNS is honoured, and --iterations
N is N steps.  Every command here runs a few seconds at most; each wait is
bounded by the subprocess timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "smpemu.cli"]
FULL = "/dev/full"
needs_full = pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full on this host")


def cli(*args, timeout=90, env=None, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def one_line(p) -> str:
    return " ".join(p.stderr.split())


def usage(*args):
    """A command that must stop at its option checks, run in this process
    (click's runner: no interpreter start-up per case)."""
    from typer.testing import CliRunner

    from smpemu import cli as C

    return CliRunner().invoke(C.app, list(args))


# -- a full disk keeps the verdict -------------------------------------------------------------------------
LOST = "cannot write /dev/full: No space left on device"


@needs_full
@pytest.mark.timeout(120)
@pytest.mark.parametrize("args,code", [
    # a violation stays exit 3, its verdict printed
    (["check", "--policy", "deferred-v3", "--scenario", "one-flusher", "--json", FULL], 3),
    (["check", "--policy", "deferred-v3", "--scenario", "one-flusher", "--replay-out", FULL, "--force"], 3),
    # a clean result whose output was lost is incomplete: 4, never 0
    (["check", "--policy", "mmu-lock", "--scenario", "one-flusher", "--json", FULL], 4),
    (["run", "--policy", "mmu-lock", "--vcpus", "2", "--iterations", "300", "--json", FULL], 4),
    (["sweep", "--vcpus", "1", "--policy", "eager", "--repeat", "1", "--duration", "0.3", "--csv", FULL], 4),
], ids=["check-json-violation", "check-replay-out-violation", "check-json-clean", "run-json", "sweep-csv"])
def test_a_full_disk_keeps_the_verdict_and_its_code(args, code, tmp_path):
    p = cli(*args, cwd=tmp_path)
    assert p.returncode == code, (p.stdout[-1500:], p.stderr[-1500:])
    assert LOST in one_line(p), p.stderr
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    if code == 3:
        assert "VIOLATION" in p.stdout and "replay file:" not in p.stdout  # no claim the file is there
    else:
        assert "was not written (exit 4)" in one_line(p)


@needs_full
@pytest.mark.timeout(120)
def test_stress_and_replay_keep_exit_3_on_a_full_disk(tmp_path):
    r = tmp_path / "r.json"
    p = cli("stress", "--policy", "deferred-v3", "--vcpus", "2", "--seed", "3", "--reclaimers", "1",
            "--timeout", "20", "--replay-out", str(r), "--json", FULL, cwd=tmp_path)
    assert p.returncode == 3, (p.stdout[-1500:], p.stderr[-1500:])
    assert LOST in one_line(p) and r.exists()
    p = cli("replay", str(r), "--json", FULL, cwd=tmp_path)
    assert p.returncode == 3, (p.stdout[-1500:], p.stderr[-1500:])
    assert LOST in one_line(p) and "reproduced" in p.stdout


def test_an_output_path_that_is_a_directory_says_so(tmp_path):
    for args in (["stress", "--replay-out", str(tmp_path)], ["check", "--replay-out", str(tmp_path)],
                 ["run", "--json", str(tmp_path)], ["litmus", "tests/litmus", "--json", str(tmp_path)]):
        p = usage(*args)
        assert p.exit_code == 2 and f"{tmp_path}: is a directory" in one_line(p), (args, p.stderr)
        assert "--force" not in p.stderr


def test_sweep_checks_the_plot_format_before_the_first_run(tmp_path):
    pytest.importorskip("matplotlib")
    p = usage("sweep", "--vcpus", "1", "--repeat", "1", "--plot", str(tmp_path / "out.txt"))
    assert p.exit_code == 2 and "unknown format 'txt'" in one_line(p), p.stderr
    assert not p.stdout.strip() and not (tmp_path / "out.txt").exists(), "nothing ran"


# -- nothing explored is not a pass ----------------------------------------------------------------------
def test_stress_that_explored_nothing_exits_4(monkeypatch):
    """The CLI's rule, with the search replaced by one that ran no round
    (the real stress always runs its first round: next test)."""
    from typer.testing import CliRunner

    import smpemu.search.stress as st
    from smpemu import cli as C

    monkeypatch.setattr(st, "stress", lambda *a, **k: st.StressResult(False, [], 0.0))
    r = CliRunner().invoke(C.app, ["stress", "--policy", "mmu-lock", "--timeout", "0.5"])
    assert r.exit_code == 4, r.output
    assert "no verdict" in r.output and "nothing was explored" in r.output


@pytest.mark.timeout(60)
def test_a_short_stress_timeout_still_runs_a_round():
    p = cli("stress", "--policy", "mmu-lock", "--vcpus", "2", "--timeout", "0.2")
    assert p.returncode == 0, (p.stdout[-1500:], p.stderr[-1500:])
    text = " ".join(p.stdout.split())
    assert "round 0:" in text and " 0 round(s)" not in text and " 0 guest steps" not in text


def test_stress_refuses_the_script_workload():
    p = usage("stress", "--workload", "script")
    assert p.exit_code == 2 and "stress does not run --workload script" in one_line(p)
    assert "Traceback" not in p.stderr


@pytest.mark.timeout(60)
def test_stress_takes_a_trace_file(tmp_path):
    f = tmp_path / "ops.trace"
    f.write_text("touch 0 w\nread 1 0\ncpu 0: unmap 0\n")
    p = cli("stress", "--workload", "trace", "--trace-file", str(f), "--policy", "mmu-lock", "--vcpus", "2",
            "--timeout", "0.5")
    assert p.returncode == 0, (p.stdout[-1500:], p.stderr[-1500:])
    assert "workload trace" in p.stdout


# -- SIGTERM is 143 ---------------------------------------------------------------------------------------
@pytest.mark.timeout(90)
def test_sigterm_during_a_sweep_exits_143(tmp_path):
    csv = tmp_path / "s.csv"
    p = subprocess.Popen([*CLI, "sweep", "--vcpus", "1,2", "--policy", "eager", "--repeat", "3", "--duration", "2",
                          "--csv", str(csv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=tmp_path)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (csv.exists() and csv.stat().st_size):
        time.sleep(0.1)  # the first run is in: the second is running now
    assert csv.exists(), "the sweep never finished its first run"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=40)
    assert p.returncode == 143, (out[-1500:], err[-1500:])
    assert "interrupted" in err and "--resume" in err
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("smpemu-") and str(p.pid) in n]


# -- numbers: infinite, absurd, from a file ---------------------------------------------------------------
@pytest.mark.parametrize("args,msg", [
    (["run", "--ack-timeout", "inf"], "--ack-timeout must be a finite number (got inf)"),
    (["run", "--ack-timeout", "1e308"], "--ack-timeout must be <= 604800"),
    (["run", "--duration", "inf"], "--duration must be a finite number (got inf)"),
    (["stress", "--timeout", "inf"], "--timeout must be a finite number"),
    (["stress", "--ack-timeout", "nan"], "--ack-timeout must be a finite number"),
    (["check", "--timeout", "inf"], "--timeout must be a finite number"),
    (["sweep", "--duration", "inf"], "--duration must be a finite number"),
    (["run", "--swap-rate", "inf"], "--swap-rate must be a finite number"),
])
def test_infinite_numbers_are_one_line_exit_2(args, msg):
    p = usage(*args)
    assert p.exit_code == 2, (p.stdout, p.stderr)
    assert msg in one_line(p) and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not p.stdout.strip(), "nothing printed before the error"


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("replay")
    f = d / "r.json"
    p = cli("check", "--policy", "deferred-v3", "--scenario", "one-flusher", "--replay-out", str(f))
    assert p.returncode == 3, p.stdout[-1500:]
    return json.loads(f.read_text())


@pytest.mark.parametrize("key,value,msg", [
    ("ack_timeout", float("inf"), "config.ack_timeout must be a finite number"),
    ("ack_timeout", -1, "config.ack_timeout must be > 0"),
    ("vcpus", "two", "config.vcpus is 'two'"),
    ("vcpus", 100000, "config.vcpus 100000 is too many"),
    ("policy", "nope", "config.policy: unknown policy 'nope'"),
])
def test_a_hand_edited_replay_file_is_blamed_on_its_key(replay_file, key, value, msg, tmp_path):
    doc = json.loads(json.dumps(replay_file))
    doc["config"][key] = value
    f = tmp_path / "edited.json"
    f.write_text(json.dumps(doc))  # inf is written as Infinity, which json (and smpemu) reads back
    p = cli("replay", str(f))
    assert p.returncode == 2, (p.stdout[-1000:], p.stderr)
    assert f"replay file {f}: {msg}" in one_line(p), p.stderr
    assert "--vcpus" not in p.stderr and "decision 0" not in p.stderr


# -- validate first, then print ------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["check", "--bound", "-1"], ["check", "--timeout", "0"], ["check", "--memory-model", "bogus"],
    ["info", "--pin", "bogus"], ["litmus", "tests/litmus", "--memory-model", "bogus"],
])
def test_bad_options_print_no_header(args):
    p = usage(*args)
    assert p.exit_code == 2 and not p.stdout.strip(), (p.stdout, p.stderr)


def test_columns_is_honoured_outside_a_terminal():
    p = cli("list", env=dict(os.environ, COLUMNS="80"))
    assert p.returncode == 0
    assert max(map(len, p.stdout.splitlines())) <= 80
    wide = cli("list", env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert max(map(len, wide.stdout.splitlines())) > 80  # without COLUMNS a pipe gets 160 (smpemu/cli.py)


# -- --iterations N is N steps ------------------------------------------------------------------------
@pytest.mark.timeout(90)
@pytest.mark.parametrize("workload", ["malloc-touch", "cr3-switch"])  # cr3-switch: exits (cr3 writes) too
def test_iterations_is_exactly_n_steps_per_vcpu(workload, tmp_path):
    js = tmp_path / "r.json"
    p = cli("run", "--vcpus", "3", "--iterations", "2000", "--workload", workload, "--policy", "mmu-lock",
            "--json", str(js))
    assert p.returncode == 0, (p.stdout[-1500:], p.stderr[-1500:])
    d = json.loads(js.read_text())
    assert [v["steps"] for v in d["vcpus"]] == [2000] * 3
    assert d["totals"]["steps"] == 6000
