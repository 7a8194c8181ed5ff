"""A script's run ends when every process has run its list: a host that can
never go on is a deadlock (or an abort), never a clean pass.

The issue's case: a host waits for an event nobody posts, the vCPUs finish.
``smpemu check`` used to call that schedule finished ("only hosts left and
none can run": 588 schedules, complete, exit 0), and ``run --workload
script`` ended with the vCPUs (exit 0, reclaims: 0).  Now the end rule is the
workload's (``workloads.hosts_finish``; ``sched.core.Sched.over``), the same
for the free-running coordinator, the baton and the explorer.  A wait that
may legitimately never end says so (``["optional", OP]``) and every way of
running names what it skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smpemu.search.check_cmd import run_check
from tests.helpers import run_script

CPUS = {"0": [["touch", ["u", 0, 0], 1]], "1": [["touch", ["u", 1, 0], 1]]}
NEVER = {"events": ["never"], "cpus": CPUS, "hosts": {"0": [["wait", "never"], ["reclaim", ["u", 1, 0]]]}}
NOTHING_FREED = {"cpus": CPUS, "hosts": {"0": [["reclaim_freed", 1]]}}
OPTIONAL = {"cpus": CPUS, "hosts": {"0": [["optional", ["reclaim_freed", 1]], ["reclaim", ["u", 1, 0]]]}}
SKIPPED = 'host op 0 ["optional", ["reclaim_freed", 1]]'


def cli(*args, timeout=100):
    return subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _file(tmp_path, script, **extra):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({**script, **extra}))
    return str(f)


# -- smpemu check ---------------------------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("script,where", [(NEVER, "host at script.wait (op 0)"),
                                          (NOTHING_FREED, "host at host.idle (op 0)")])
def test_check_a_host_that_can_never_go_on_is_a_deadlock(script, where, tmp_path):
    cr = run_check("mmu-lock", _file(tmp_path, script), timeout=100)
    m = cr.res.minimal
    assert m is not None and cr.exit_code == 3, cr.as_dict()
    assert m.violation["kind"] == "deadlock" and where in m.violation["detail"], m.violation


@pytest.mark.timeout(120)
def test_check_cli_on_the_issue_scenario_does_not_pass(tmp_path):
    p = cli("check", "--policy", "mmu-lock", "--scenario", _file(tmp_path, NEVER), "--jobs", "1")
    assert p.returncode == 3, (p.stdout[-2000:], p.stderr[-2000:])
    assert "VIOLATION deadlock" in p.stdout and "no violation" not in p.stdout
    assert "host at script.wait" in " ".join(p.stdout.split())  # lines wrap to COLUMNS


@pytest.mark.timeout(120)
def test_check_an_optional_wait_is_complete_and_names_what_it_skipped(tmp_path):
    f = _file(tmp_path, OPTIONAL)
    cr = run_check("mmu-lock", f, timeout=100)
    r = cr.res
    assert r.minimal is None and r.complete and cr.exit_code == 0
    assert r.skipped == {SKIPPED: r.schedules}  # nothing is ever freed: skipped in every schedule
    assert cr.as_dict()["skipped"] == {SKIPPED: r.schedules}
    p = cli("check", "--policy", "mmu-lock", "--scenario", f, "--jobs", "1")
    assert p.returncode == 0 and f"skipped: {SKIPPED}" in p.stdout, (p.stdout[-2000:], p.stderr[-2000:])


@pytest.mark.timeout(120)
def test_check_an_optional_wait_that_ends_skips_nothing(tmp_path):
    script = {"cpus": {"0": [["map", ["u", 0, 0]], ["touch", ["u", 0, 0], True], ["unmap", ["u", 0, 0]]],
                       "1": [["access", ["u", 0, 0], False]]},
              "hosts": {"0": [["optional", ["reclaim_freed", 0]]]}}
    cr = run_check("mmu-lock", _file(tmp_path, script), bound=1, timeout=100)
    assert cr.res.complete and cr.exit_code == 0 and cr.res.skipped == {}  # vCPU0 always frees its page


# -- run --workload script: free-running, then under the baton ------------------------------
@pytest.mark.timeout(120)
def test_run_script_a_host_that_can_never_go_on_aborts(tmp_path):
    p = cli("run", "--workload", "script", "--script", _file(tmp_path, NEVER, timeout=1), "--vcpus", "2",
            "--guest-mem", "4M", "--pin", "none")
    assert p.returncode == 4, (p.stdout[-2000:], p.stderr[-2000:])
    assert "aborted" in p.stdout and "'never' not posted within 1" in p.stdout


@pytest.mark.timeout(120)
def test_run_script_an_optional_wait_is_skipped_and_named(tmp_path):
    js = tmp_path / "r.json"
    p = cli("run", "--workload", "script", "--script", _file(tmp_path, OPTIONAL, timeout=1), "--vcpus", "2",
            "--guest-mem", "4M", "--pin", "none", "--json", str(js))
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    assert "skipped" in p.stdout and SKIPPED in p.stdout
    d = json.loads(js.read_text())
    assert d["skipped"] == [SKIPPED] and d["host"]["reclaims"] == 0  # the reclaim after it is skipped too


@pytest.mark.timeout(60)
def test_scheduled_a_host_that_can_never_go_on_is_a_deadlock_and_an_optional_wait_ends_the_run():
    r = run_script(NEVER, vcpus=2, schedule="pct", seed=1)
    assert r.exit_code == 4 and r.schedule["end"] == "deadlock", r.schedule
    assert "schedule deadlock" in r.aborted and "host at script.wait (op 0)" in r.aborted
    r = run_script(OPTIONAL, vcpus=2, schedule="pct", seed=1)
    assert r.exit_code == 0 and r.aborted is None, r.aborted
    assert r.schedule["end"] == "finished" and r.schedule["skipped"] == [SKIPPED] and r.skipped == [SKIPPED]


def test_optional_wraps_only_a_host_wait(tmp_path):
    from smpemu.errors import UsageError
    from workloads.script import validate

    for bad in (["optional", ["reclaim", ["u", 0, 0]]], ["optional"], ["optional", ["wait", "nope"]]):
        with pytest.raises(UsageError, match="optional|event"):
            validate({"events": [], "cpus": CPUS, "hosts": {"0": [bad]}}, 2)
    with pytest.raises(UsageError, match="not one of"):
        validate({"cpus": {"0": [["optional", ["wait", "e"]]]}, "events": ["e"]}, 2)
