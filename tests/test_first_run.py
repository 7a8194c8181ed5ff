"""What a new user trips over (issue 12): messages that match the flags,
tables that fit 80 columns, exit codes of stuck and truncated runs, one
``--pin`` syntax, ``--version``, help examples."""

import subprocess
import sys

import pytest

from tests.helpers import run_in_pty

CLI = [sys.executable, "-m", "smpemu.cli"]


def cli(*args, timeout=100, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


BAD = [
    (["run", "--guest-mem", "16G"], "at most 4194303 pages of 4K (16G minus 4K; e.g. 16383M)"),
    (["run", "--workload", "trace"], "needs a trace file: --trace-file FILE"),
    (["run", "--duration", "1", "--iterations", "5"], "give --duration or --iterations, not both"),
    (["run", "--trace-file", "x.trace"], "--trace-file is the input of --workload trace (not malloc-touch)"),
    (["info", "--vcpus", "100000"], "--vcpus 100000 is too many: at most 256"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_messages_name_the_flags(args, msg):
    p = cli(*args, timeout=50)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert msg in p.stderr.replace("\n", " "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_workload_descriptions_do_not_repeat_the_name():
    import workloads

    for name, doc in workloads.describe().items():
        assert doc and not doc.startswith(name + ":"), (name, doc)


@pytest.mark.timeout(60)
def test_version_flag():
    from smpemu import __version__

    for flag in ("--version", "-V"):
        p = cli(flag, timeout=50)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == f"smpemu {__version__}"


@pytest.mark.timeout(120)
def test_a_vcpu_stuck_in_a_protocol_point_aborts_with_exit_4_naming_it():
    # every vCPU's first TLB fill sleeps 100 s: none can leave when the run
    # ends; the coordinator kills them after --ack-timeout + 3 s and must say so
    p = cli("run", "--vcpus", "2", "--duration", "1", "--ack-timeout", "1",
            "--delay", "tlb.fill=100000000")
    assert p.returncode == 4, (p.stdout, p.stderr)
    import re

    text = " ".join(p.stdout.split())
    assert re.search(r"aborted: vcpu \d+ \(pid \d+\)", text) and "did not stop" in text, p.stdout
    assert "incomplete" in text and "[green]" not in text


@pytest.mark.timeout(90)
def test_a_replay_file_cut_short_is_incomplete_exit_4(tmp_path):
    import json

    from smpemu.harness.config import RunConfig
    from smpemu.search.baton_loop import run
    from smpemu.search.replay_file import replay_doc, write_doc

    # seed 3 finds the v3 lost flush in its first round (tests/test_schedule.py)
    r = run(RunConfig(policy="deferred-v3", workload="share-unmap", reclaim="freed", seed=3, pin="none",
                      vcpus=2, reclaimers=1, schedule="pct", trace=True, stop_on_violation=True))
    assert r.violations, "seed 3 no longer finds the v3 race: pick another seed"
    doc = replay_doc(r)
    n = len(doc["decisions"])
    assert n > 20
    keep = n // 10
    doc["decisions"] = doc["decisions"][:keep]
    path = tmp_path / "cut.json"
    write_doc(doc, str(path))
    js = tmp_path / "out.json"
    p = cli("replay", str(path), "--json", str(js))
    assert p.returncode == 4, (p.stdout[-2000:], p.stderr[-2000:])
    assert f"incomplete: {path} holds {keep:,} of the {n:,} decisions" in " ".join(p.stdout.split())  # wrapped anywhere
    assert json.loads(js.read_text())["replay"]["incomplete"] is True


@pytest.mark.timeout(120)
def test_replay_names_are_unique_and_replay_out_is_not_overwritten(tmp_path, monkeypatch):
    import os

    from smpemu.harness.clihelp import default_replay_name

    monkeypatch.chdir(tmp_path)
    a = default_replay_name("deferred-v3", 7, now=0)
    assert a.startswith("smpemu-replay-deferred-v3-s7-") and a.endswith(".json")
    open(a, "w").close()
    b = default_replay_name("deferred-v3", 7, now=0)  # same policy, seed and second
    assert b != a and not os.path.exists(b)
    assert default_replay_name("deferred-v3", 8, now=0) != a
    assert default_replay_name("eager", 7, now=0) != a

    existing = tmp_path / "mine.json"
    existing.write_text("keep me")
    args = ("stress", "--policy", "deferred-v3", "--vcpus", "2", "--pin", "none", "--schedule", "pct",
            "--seed", "3", "--timeout", "40", "--replay-out", str(existing))
    p = cli(*args, cwd=tmp_path)
    assert p.returncode == 2 and "exists; pass --force" in p.stderr, (p.stdout, p.stderr)
    assert existing.read_text() == "keep me"
    p = cli(*args, "--force", cwd=tmp_path)
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    assert existing.read_text().startswith("{")
    # without --replay-out: a fresh default name in the current directory, twice
    for _ in range(2):
        p = cli(*args[:-2], cwd=tmp_path)
        assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("smpemu-replay-deferred-v3-s"))
    assert len(names) == 3, names  # a (above) and two runs' (same seed, maybe the same second)


PIN_BAD = [
    (["run", "--pin", "compact;spread"], "one pinning here; ';' separates alternatives only in stress and sweep"),
    (["stress", "--pin", "compact,spread"], "'compact,spread' is not a pinning"),
    (["stress", "--pin", "compact;;spread"], "an empty pinning; separate alternatives with ';'"),
    (["stress", "--pin", "wide"], "',' joins the cores of one list; ';' separates alternatives"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,msg", PIN_BAD, ids=[" ".join(a) for a, _ in PIN_BAD])
def test_pin_errors_name_the_syntax(args, msg):
    p = cli(*args, timeout=50)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert msg in p.stderr.replace("\n", " "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def _two_cores():
    import os

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two allowed cores")
    return cores[:2]


@pytest.mark.timeout(120)
def test_pin_core_list_is_one_pinning_in_run(tmp_path):
    import json

    a, b = _two_cores()
    js = tmp_path / "r.json"
    p = cli("run", "--vcpus", "2", "--iterations", "200", "--pin", f"{a},{b}", "--json", str(js))
    assert p.returncode == 0, p.stderr
    assert [v["cpus"] for v in json.loads(js.read_text())["vcpus"]] == [[a], [b]]


@pytest.mark.timeout(120)
def test_pin_core_list_and_alternatives_in_stress(tmp_path):
    import json

    a, b = _two_cores()
    js = tmp_path / "s.json"
    # rounds of 0.5 s: the first pinned to the list, the second to "none" (4 s: a
    # busy host's first round can take over 1 s, and a second needs 0.5 s left)
    p = cli("stress", "--policy", "mmu-lock", "--vcpus", "2", "--pin", f"{a},{b};none",
            "--timeout", "4", "--round", "0.5", "--no-until-violation", "--json", str(js))
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert f"pin ['{a},{b}', 'none']" in p.stdout
    pins = [r["pin"] for r in json.loads(js.read_text())["rounds"]]
    assert pins[:2] == [f"{a},{b}", "none"], pins


def test_trace_cells_wrap_and_json_fields_are_named():
    from smpemu.harness import trace

    t0 = 1_000_000
    ev = [(t0 + 1000, 2, trace.CODE["flush: requests sent"], 3, 17),
          (t0 + 2000, 0, trace.CODE["TLB fill"], 2560, 15),
          (t0 + 3000, 1, trace.CODE["notifier: dirty?"], 1, 0),
          (t0 + 4000, 0, trace.CODE["VIOLATION"], 1, 15)]
    text = trace.render(ev, n_vcpus=2, t0_ns=t0, mark_ns=t0 + 4000)
    flat = " ".join(text.split())
    for whole in ("flush: requests sent", "targets=3", "ipis_sent=17", "TLB fill slot=2560 pfn=15",
                  ">> VIOLATION kind=1 pfn=15", "notifier: dirty? value=1"):
        assert whole in flat, (whole, text)
    assert all(len(line) <= 10 + 2 + 3 * 30 for line in text.splitlines())
    js = trace.as_json(ev, n_vcpus=2, t0_ns=t0)
    assert js[0] == {"t_us": 1.0, "cpu": "host", "event": "flush: requests sent", "targets": 3, "ipis_sent": 17}
    assert js[1] == {"t_us": 2.0, "cpu": 0, "event": "TLB fill", "slot": 2560, "pfn": 15}
    assert js[2] == {"t_us": 3.0, "cpu": 1, "event": "notifier: dirty?", "value": 1}
    assert all("a" not in e and "b" not in e for e in js)


@pytest.mark.timeout(120)
def test_trace_out_is_the_output_and_trace_file_the_input(tmp_path):
    import json

    out = tmp_path / "events.json"
    p = cli("run", "--vcpus", "2", "--iterations", "300", "--trace-out", str(out))
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["events"] and all({"t_us", "cpu", "event"} <= set(e) for e in d["events"])
    h = cli("run", "--help", env={"COLUMNS": "200", "PATH": ""})
    assert "--trace-out" in h.stdout and "--trace-file" in h.stdout
    assert "Output:" in h.stdout and "Input:" in h.stdout


@pytest.mark.timeout(150)
def test_run_tables_fit_80_columns_without_cutting_anything():
    from smpemu.harness.report import COLUMNS

    code, text = run_in_pty(["run", "--policy", "mmu-lock", "--vcpus", "16", "--iterations", "400"])
    assert code == 0, text[-3000:]
    final = [line.split("\r")[-1] for line in text.splitlines()]
    assert "…" not in text, text
    assert max(len(line) for line in final) <= 80, max(final, key=len)
    for name in COLUMNS:  # the full --json names, split only at the dot (ack_latency_us / p50)
        for part in name.split("."):
            assert part in text, name
    assert "total" in text and "host" in text
    # the legend: columns, oversubscription, and whose IPIs they are
    flat = " ".join(text.split())
    assert "ipis_avoided: targets not kicked" in flat
    assert "16 vCPUs on" in flat and ("oversubscribed" in flat or "not oversubscribed" in flat)
    assert "host: swap pressure" in flat and "of the IPIs" in flat


def test_tables_split_to_any_width_and_latency_is_a_bucket_range():
    from rich.console import Console

    from smpemu.harness.report import fmt_latency, latency_range, run_tables

    row = {"steps": 123_456_789, "steps_per_s": 9_876_543.2, "tlb_hits": 123_456_000, "tlb_misses": 789,
           "faults": 12_345_678, "invlpg": 1_234_567, "flush_requests": 7_654_321, "remote_flushes": 7_654_321,
           "violations": 0, "ipis_sent": 98_765_432, "ipis_received": 98_765_432, "ipis_avoided": 1_234_567,
           "ack_latency_us": {"p50": 2008.2, "p99": 5208.7}}
    result = {"config": {"vcpus": 2}, "vcpus": [{"id": 0, "pid": 1, "cpus": [0], **row},
                                                {"id": 1, "pid": 2, "cpus": [1], **row}],
              "host": {"pid": 3, **row}, "totals": row}
    for width in (60, 80, 120):
        con = Console(width=width, record=True, file=open("/dev/null", "w"))
        for t in run_tables(result, width):
            con.print(t)
        out = con.export_text()
        assert "…" not in out and max(len(x) for x in out.splitlines()) <= width, out
        assert "98,765,432" in out and "123,456,789" in out
    lo, hi = latency_range(2008.2)
    assert lo < 2008.2 < hi and abs(hi / lo - 2 ** (1 / 8)) < 1e-9  # one bucket: 8 per power of two
    assert fmt_latency(2008.2) == f"{lo:,.0f}-{hi:,.0f}" and fmt_latency(None) == "-"


COMMANDS = ("run", "stress", "replay", "sweep", "bench", "list", "info", "clean", "litmus", "version", "check")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_examples_that_fit_80_columns(command):
    import os

    p = cli(command, "--help", env=dict(os.environ, COLUMNS="80"), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Examples:" in p.stdout
    ex = p.stdout[p.stdout.index("Examples:"):]
    rows = [x.strip() for x in ex.splitlines()]
    cmds = [i for i, x in enumerate(rows) if x.startswith("smpemu")]
    assert cmds, ex
    assert all(len(x) <= 80 for x in p.stdout.splitlines()), p.stdout
    # no example wraps: the line after a command is blank, a comment or another command
    for i in cmds:
        nxt = rows[i + 1] if i + 1 < len(rows) else ""
        assert nxt == "" or nxt.startswith(("#", "smpemu")), (rows[i], nxt)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args,what", [
    # mmu-lock: correct with any number of flushers, so each command runs to its end
    (["stress", "--policy", "mmu-lock", "--timeout", "3", "--round", "1", "--vcpus", "2"], "stress"),
    (["run", "--policy", "mmu-lock", "--vcpus", "2", "--duration", "3"], "run"),
])
def test_status_lines_on_stderr_when_not_a_terminal(args, what):
    import os

    # a status every 0.5 s; the command runs >= 3 s and reports progress
    # 10 times a second, so at least one line is due whatever the load
    p = cli(*args, env=dict(os.environ, SMPEMU_STATUS_EVERY="0.5"))
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    lines = [x for x in p.stderr.splitlines() if x.startswith(f"smpemu {what}: ")]
    assert lines, p.stderr
    assert all(x.endswith(" s)") for x in lines)


@pytest.mark.timeout(120)
def test_no_status_lines_in_a_terminal():
    code, text = run_in_pty(["run", "--policy", "mmu-lock", "--vcpus", "2", "--duration", "2"], env={"SMPEMU_STATUS_EVERY": "0.5"})
    assert code == 0, text[-2000:]
    assert "smpemu run: " not in text


@pytest.mark.timeout(120)
def test_ipi_halted_bench_checks_both_sides_are_blocked_in_the_kernel():
    # a functional check of the benchmark's two sides (20 round trips each),
    # no timing assertion: every timed round trip started with the other
    # process asleep in the kernel (state S), as /proc says
    from smpemu.study.bench import ipi_latency as b

    halt_checked, sem_checked = [], []
    assert b.flush_roundtrip(20, b._target_halted, wake=True, checked=halt_checked) > 0
    assert b.sem_pingpong(20, sem_checked) > 0
    for line in halt_checked + sem_checked:
        assert line.startswith("state S before 20/20 round trips, wchan "), line


@pytest.mark.timeout(60)
def test_smpemu_bench_and_python_m_bench_share_options_and_errors(tmp_path):
    import os

    p = cli("bench", "--only", "nope", timeout=50, cwd=tmp_path)  # any directory
    assert p.returncode == 2 and "unknown benchmark(s) nope" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    q = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], capture_output=True, text=True,
                       timeout=50, cwd=root)
    assert q.returncode == 2 and "unknown benchmark(s) nope" in q.stderr, q.stderr


@pytest.mark.timeout(200)
def test_sweep_pin_syntax_table_at_80_columns_and_status(tmp_path):
    import csv
    import os

    a, b = _two_cores()
    # ';' between alternatives, ',' inside the core list: two pinnings, not three
    f = tmp_path / "s.csv"
    code, text = run_in_pty(["sweep", "--vcpus", "2", "--policy", "eager,mmu-lock", "--pin", f"compact;{a},{b}",
                             "--repeat", "1", "--iterations", "200", "--csv", str(f)], timeout=180)
    assert code == 0, text[-3000:]
    rows = list(csv.DictReader(open(f)))
    assert sorted({r["pin"] for r in rows}) == sorted({"compact", f"{a},{b}"})
    assert len([r for r in rows if r["kind"] == "run"]) == 4
    final = [line.split("\r")[-1] for line in text.splitlines()]
    assert "…" not in text and max(len(x) for x in final) <= 80, max(final, key=len)
    for h in ("vcpus", "policy", "pin", "ipis", "remote", "steps/s", "ack p50", "ack p99", "violations"):
        assert h in text, h
    assert "ipis = ipis_sent" in " ".join(text.split())  # the legend names the CSV columns
    # "0,1" is one pinning in sweep as in run
    g = tmp_path / "t.csv"
    p = cli("sweep", "--vcpus", "2", "--policy", "eager", "--pin", f"{a},{b}", "--repeat", "1",
            "--duration", "1", "--csv", str(g), env=dict(os.environ, SMPEMU_STATUS_EVERY="0.2"), timeout=150)
    assert p.returncode == 0, p.stderr
    assert [r["pin"] for r in csv.DictReader(open(g)) if r["kind"] == "run"] == [f"{a},{b}"]
    # not a terminal: a status line (the run lasts >= 1 s, a line is due every 0.2 s)
    assert [x for x in p.stderr.splitlines() if x.startswith("smpemu sweep: ")], p.stderr
    q = cli("sweep", "--pin", "compact,spread", timeout=50)
    assert q.returncode == 2 and "'compact,spread' is not a pinning" in q.stderr, q.stderr


def test_sweep_passes_the_trace_file_to_remote_runs():
    from smpemu.harness.config import RunConfig
    from smpemu.study.remote import cli_args

    a = cli_args(RunConfig(vcpus=2, workload="trace", trace_file="/abs/t.trace", duration=1.0))
    assert a[a.index("--trace-file") + 1] == "/abs/t.trace"


@pytest.mark.timeout(120)
def test_interrupted_stress_says_so_with_a_rounded_time():
    import re
    import signal

    p = subprocess.Popen([*CLI, "stress", "--policy", "mmu-lock", "--vcpus", "2", "--timeout", "60",
                          "--round", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:  # the first finished round: the stress is under way
            if line.lstrip().startswith("round 0:"):
                break
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (rest, err)
    m = re.search(r"interrupted: no violation in (\S+) s", rest)
    assert m and re.fullmatch(r"\d+\.\d", m.group(1)), rest


def test_trace_window_ends_at_the_violation_event_however_busy_the_other_cpus():
    from smpemu.harness.trace import CODE, window

    # the oracle stamps its record at t=100; the VIOLATION event is stamped at
    # 120, after ten events of other CPUs: it must still be in the window
    ev = [(t, 0, CODE["TLB fill"], 1, 2) for t in range(50, 101, 10)]
    ev += [(101 + k, 1, CODE["invlpg"], k, 0) for k in range(10)]
    ev += [(120, 0, CODE["VIOLATION"], 1, 5), (130, 1, CODE["invlpg"], 0, 0)]
    w = window(ev, 100, before=4, after=1)
    assert (120, 0, CODE["VIOLATION"], 1, 5) in w
    assert w[-1] == (130, 1, CODE["invlpg"], 0, 0) and w[0] == (70, 0, CODE["TLB fill"], 1, 2)
