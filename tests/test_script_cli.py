"""`smpemu run --workload script --script FILE`: a user's scenario from the
command line, on real processes; a bad script is one line and exit 2."""

import json
import subprocess
import sys

import pytest

from tests.test_oracle_scenarios import OVERLAP_RACE, V3_RACE


def cli(*args, timeout=100):
    return subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(120)
def test_cli_runs_a_script_file_and_a_race_exits_3(tmp_path):
    f = tmp_path / "overlap.json"
    f.write_text(json.dumps(OVERLAP_RACE))
    js = tmp_path / "r.json"
    p = cli("run", "--workload", "script", "--script", str(f), "--vcpus", "2", "--guest-mem", "4M",
            "--json", str(js))
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    d = json.loads(js.read_text())
    assert {v["kind"] for v in d["violations"]} == {"lost_flush", "stale_access"}
    assert d["config"]["reclaimers"] == 2 and len(d["host"]["reclaimers"]) == 2
    assert "seen by host1" in p.stdout
    p = cli("run", "--script", str(f), "--vcpus", "2", "--guest-mem", "4M", "--policy", "tlbs-dirty")
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    g = tmp_path / "v3.json"  # today's format: "host" is reclaimer 0
    g.write_text(json.dumps(V3_RACE))
    p = cli("run", "--script", str(g), "--vcpus", "3", "--guest-mem", "4M", "--policy", "deferred-v3")
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])


BAD = [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"cpus": {"0": [["fly"]]}}, "cpu 0 op 0: ['fly'] is not one of"),
    ({"cpus": {"5": [["touch", ["u", 0, 0]]]}}, "cpu '5' is not a vCPU of this run (0..1)"),
    ({"cpus": {"0": [["touch", ["u", 0, 99999]]]}}, "page index 99999 is past vCPU 0's"),
    ({"cpus": {"0": [["touch", 3]]}}, "expected a page [\"u\", vcpu 0..1, index >= 0]"),
    ({"cpus": {"0": [["wait", "nope"]]}}, "unknown event 'nope'"),
    ({"events": ["a", "b"], "cpus": {"0": [["arm", "nowhere", "a", "b"]]}}, "expected [\"arm\", POINT"),
    ({"cpus": {"0": [["cr3", 7]]}}, "guest process 7 does not exist"),
    ({"host": [["touch", ["u", 0, 0]]]}, "host op 0"),
    ({"hosts": {"x": []}}, "hosts key 'x' is not a reclaimer number"),
    ({"host": [], "hosts": {"0": []}}, "not both"),
    ({"cpus": {}, "colour": 1}, "unknown key(s) 'colour'"),
    ({"cpus": {}, "timeout": "soon"}, "\"timeout\" must be a number (got 'soon')"),
    ({"cpus": {}, "timeout": -1}, "\"timeout\" must be > 0"),  # refused at load time, naming file and key
]


@pytest.mark.timeout(120)
def test_bad_scripts_are_one_clear_line(tmp_path):
    for i, (doc, msg) in enumerate(BAD):
        f = tmp_path / f"bad{i}.json"
        f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        p = cli("run", "--script", str(f), "--vcpus", "2", "--guest-mem", "4M", timeout=50)
        assert p.returncode == 2, (doc, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        assert msg in p.stderr.replace("\n", " "), (doc, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for args, msg in ((["--workload", "script"], "--workload script needs --script FILE"),
                      (["--script", str(tmp_path / "missing.json")], "No such file"),
                      (["--workload", "share-unmap", "--script", str(tmp_path / "bad0.json")],
                       "--script is for --workload script")):
        p = cli("run", *args, "--vcpus", "2", timeout=50)
        assert p.returncode == 2 and msg in p.stderr, (args, p.stderr)
