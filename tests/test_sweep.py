"""``smpemu sweep``: rows, medians, resume, Ctrl-C, bad input, the plot, dask."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from smpemu.study import csvlog, grid
from smpemu.errors import UsageError

# two policies that hold with any number of flushers: the rows must be clean
# (deferred-v4 may catch its overlapping-flush race with two reclaimers)
TINY = ["--vcpus", "1,2", "--policy", "eager,mmu-lock", "--iterations", "300", "--repeat", "2"]


def _sweep(*args, timeout=100):
    return subprocess.run([sys.executable, "-m", "smpemu.cli", "sweep", *args],
                          capture_output=True, text=True, timeout=timeout)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _why(p, path):
    """What to show when a sweep did not exit 0: its stderr and any aborted run."""
    bad = [r["aborted"] for r in _rows(path) if r["kind"] == "run" and r["aborted"]] if path.exists() else []
    return f"exit {p.returncode}: {p.stderr[-2000:]} aborted: {bad}"


def _plot_args(png):
    """``--plot PNG`` when matplotlib is installed, else nothing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    return ["--plot", str(png)]


@pytest.mark.timeout(120)
def test_tiny_sweep_writes_rows_medians_json_and_plot(tmp_path):
    out = tmp_path / "s.csv"
    js = tmp_path / "s.json"
    png = tmp_path / "s.png"
    plot = _plot_args(png)
    p = _sweep(*TINY, "--csv", str(out), "--json", str(js), *plot)
    assert p.returncode == 0, _why(p, out)
    rows = _rows(out)
    runs = [r for r in rows if r["kind"] == "run"]
    meds = [r for r in rows if r["kind"] == "median"]
    assert len(runs) == 8 and len(meds) == 4
    assert {(r["vcpus"], r["policy"], r["repeat"]) for r in runs} == {
        (v, pol, rep) for v in ("1", "2") for pol in ("eager", "mmu-lock") for rep in ("0", "1")}
    assert all(r["reclaimers"] == "2" for r in rows)  # the default, wherever the host reclaims
    for col in ("ack_latency_p50_us", "ack_latency_p99_us", "ipis_sent", "remote_flushes", "steps",
                "wall_s", "violations", "pin", "memory_model", "iterations"):
        assert col in rows[0], col
    assert all(int(r["steps"]) >= 300 * int(r["vcpus"]) for r in runs)
    assert all(r["violations"] == "0" and r["aborted"] == "" for r in runs)
    assert all(r["repeat"] == "" for r in meds)
    d = json.loads(js.read_text())
    assert len(d["rows"]) == 12
    assert "ipis/s" in p.stdout  # the summary table
    if plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(120)
def test_resume_skips_runs_already_in_the_csv(tmp_path):
    out = tmp_path / "r.csv"
    p = _sweep(*TINY, "--repeat", "1", "--csv", str(out))
    assert p.returncode == 0, _why(p, out)
    lines = out.read_text().splitlines()
    # keep the header and the first two runs, as if the sweep had been cut short
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.startswith("run,")][:2]
    out.write_text("\n".join(kept) + "\n")
    p = _sweep(*TINY, "--repeat", "1", "--csv", str(out), "--resume")
    assert p.returncode == 0, _why(p, out)
    assert "resuming: 2 of 4 runs already" in p.stderr
    now = out.read_text().splitlines()
    assert now[:3] == kept  # finished rows are left as they were
    runs = [r for r in _rows(out) if r["kind"] == "run"]
    assert len(runs) == 4
    assert len({(r["vcpus"], r["policy"]) for r in runs}) == 4  # nothing ran twice


@pytest.mark.timeout(120)
def test_ctrl_c_keeps_finished_rows_and_exits_130(tmp_path):
    out = tmp_path / "i.csv"
    p = subprocess.Popen([sys.executable, "-m", "smpemu.cli", "sweep", "--vcpus", "1,2", "--policy", "eager",
                          "--duration", "1", "--repeat", "3", "--csv", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and len(out.read_text().splitlines()) >= 2):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no row within 60 s"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    runs = [r for r in _rows(out) if r["kind"] == "run"]
    assert 1 <= len(runs) < 6


BAD = [
    (["--vcpus", "1,x"], "'x' is not a number"),
    (["--vcpus", "1,,2"], "expected a comma-separated list"),
    (["--vcpus", "0"], "every count must be at least 1"),
    (["--policy", "eager,nope"], "unknown policy 'nope'"),
    (["--workload", "nope"], "unknown workload 'nope'"),
    (["--pin", "compact,wide"], "expected compact, spread, none"),
    (["--repeat", "0"], "--repeat must be >= 1"),
    (["--iterations", "5", "--duration", "1"], "not both"),
    (["--csv", "/nonexistent-dir/x.csv"], "does not exist"),
    (["--json", "/"], "is a directory"),
    (["--plot", "/nonexistent-dir/p.png"], "does not exist"),
    (["--resume"], "--resume needs --csv"),
    (["--guest-mem", "1K"], "too small"),
    (["--memory-model", "arm"], "unknown memory model 'arm'"),
    (["--workload", "trace"], "needs a trace file"),
    (["--workload", "script"], "use smpemu run --workload script --script FILE"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(args, msg):
    p = _sweep(*args, timeout=50)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert msg in p.stderr.replace("\n", " "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.timeout(60)
def test_bad_trace_line_is_named_before_any_run(tmp_path):
    f = tmp_path / "t.trace"
    f.write_text("touch 0\ntouch 99999\n")
    p = _sweep("--workload", "trace", "--trace-file", str(f), "--vcpus", "2", timeout=50)
    assert p.returncode == 2, p.stderr
    assert f"trace {f} line 2: page 99999" in p.stderr


@pytest.mark.timeout(10)
def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    o = grid.SweepOptions(vcpus=[1], policies=["eager"], iterations=10, plot_path=str(tmp_path / "p.png"))
    with pytest.raises(UsageError, match=r"pip install -e \.\[plot\]"):
        grid.validate(o)


@pytest.mark.timeout(10)
def test_exit_code_and_medians():
    run = {"kind": "run", "vcpus": 2, "policy": "eager", "pin": "compact", "violations": 0,
           "aborted": "", "exit_code": 0, "ipis_sent": 10, "ack_latency_p50_us": None}
    rows = [dict(run, repeat=0, ipis_sent=10), dict(run, repeat=1, ipis_sent=30),
            dict(run, repeat=2, ipis_sent=20)]
    m = csvlog.median_row(rows)
    assert m["kind"] == "median" and m["ipis_sent"] == 20 and m["ack_latency_p50_us"] is None
    assert grid.exit_code(rows) == 0
    assert grid.exit_code(rows + [dict(run, aborted="vcpu 1 died")]) == 4
    assert grid.exit_code(rows + [dict(run, aborted="x"), dict(run, violations=2)]) == 3
    assert grid.flatten({"a": 1, "ack_latency_us": {"p50": 2, "p99": 3}}) == {
        "a": 1, "ack_latency_p50_us": 2, "ack_latency_p99_us": 3}


@pytest.mark.timeout(150)
def test_scheduler_runs_points_on_dask_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "d.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        p = _sweep("--scheduler", cluster.scheduler_address, "--vcpus", "1,2", "--policy", "eager",
                   "--iterations", "200", "--repeat", "1", "--csv", str(out), timeout=120)
    assert p.returncode == 0, _why(p, out)
    runs = [r for r in _rows(out) if r["kind"] == "run"]
    assert sorted(r["vcpus"] for r in runs) == ["1", "2"]
    assert all(int(r["steps"]) >= 200 for r in runs)


@pytest.mark.timeout(180)
def test_guest_flush_is_an_axis_and_the_shootdown_view(tmp_path):
    # 3 vCPUs on 1 emulated pCPU: preemptions, so pv drops targets native IPIs
    out = tmp_path / "g.csv"
    png = tmp_path / "g.png"
    plot = _plot_args(png)
    p = _sweep("--workload", "guest-shootdown", "--guest-flush", "native,pv", "--pcpus", "1", "--quantum", "5",
               "--vcpus", "3", "--policy", "mmu-lock", "--duration", "1", "--repeat", "1", "--csv", str(out), *plot)
    assert p.returncode == 0, _why(p, out)
    runs = {r["guest_flush"]: r for r in _rows(out) if r["kind"] == "run"}
    assert set(runs) == {"native", "pv"}
    for r in runs.values():
        assert r["pcpus"] == "1" and float(r["oversubscription"]) == 3.0 and int(r["shootdowns"]) > 0
    assert float(runs["native"]["ipis_per_shootdown"]) == 2.0
    assert int(runs["pv"]["shootdown_ipis_avoided"]) > 0
    assert "IPIs per" in p.stdout  # the shootdown summary
    if plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
