"""Fault injection with real processes: signals, killed and stopped vCPUs,
a killed coordinator, concurrent runs.  After each: the expected exit code
and message, no smpemu object of that run left in /dev/shm, no survivor."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from smpemu.harness import resources

N = 4
HOSTS = 2  # host reclaimer processes of a default run


def start_run(*extra, vcpus=N):
    return subprocess.Popen(
        # a policy correct with any number of flushers: no violation may end
        # the run with exit 3 before the test does what it is about
        [sys.executable, "-m", "smpemu.cli", "run", "--vcpus", str(vcpus), "--duration", "60",
         "--policy", "mmu-lock", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_children(p, n, timeout=30.0):
    """Bounded wait until the coordinator has forked n processes and they run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = psutil.Process(p.pid).children()
        except psutil.NoSuchProcess:
            break
        if len(kids) >= n and _cpu_seconds(kids) > 0.2 * n:
            return [k.pid for k in kids]  # forked, and past the start barrier: they burn CPU
        time.sleep(0.05)
    raise AssertionError(f"coordinator did not start {n} processes within {timeout} s")


def _cpu_seconds(procs):
    total = 0.0
    for k in procs:
        try:
            t = k.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def objects_of(pid):
    return [n for n, owner in resources.list_objects() if owner == pid]


def assert_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    assert not alive, f"processes survived: {alive}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_coordinator_keeps_partial_results(tmp_path, sig, code):
    out = tmp_path / "r.json"
    p = start_run("--json", str(out))
    kids = wait_children(p, N + HOSTS)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    d = json.loads(out.read_text())
    assert d["interrupted"] == signal.Signals(sig).name
    assert d["totals"]["steps"] > 0  # the partial results are there
    assert "interrupted" in stdout
    assert objects_of(p.pid) == []
    assert_gone(kids)


@pytest.mark.timeout(90)
def test_sigkill_of_coordinator_then_clean():
    p = start_run()
    kids = wait_children(p, N + HOSTS)
    p.kill()
    p.wait(10)
    assert_gone(kids)  # parent-death signal: vCPUs do not outlive the coordinator
    assert objects_of(p.pid), "a SIGKILLed coordinator cannot unlink: objects expected"
    c = subprocess.run([sys.executable, "-m", "smpemu.cli", "clean"], capture_output=True, text=True, timeout=30)
    assert c.returncode == 0, c.stderr
    assert objects_of(p.pid) == []


@pytest.mark.timeout(90)
def test_sigkill_of_a_vcpu_aborts_with_exit_4():
    p = start_run("--ack-timeout", "2")
    kids = wait_children(p, N + HOSTS)
    victim = sorted(kids)[1]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 4, (stdout, stderr)
    assert f"(pid {victim}) died" in stdout or "did not ack" in stdout or "could not take" in stdout, stdout
    assert objects_of(p.pid) == []
    assert_gone(kids)


@pytest.mark.timeout(90)
def test_sigstop_of_a_vcpu_is_noticed_within_the_ack_timeout():
    p = start_run("--ack-timeout", "2")
    kids = wait_children(p, N + HOSTS)
    victim = sorted(kids)[0]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGSTOP)
    stdout, stderr = p.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode == 4, (stdout, stderr)
    # whoever waits on the stopped vCPU first reports it: a requester ("did
    # not ack"), a lock waiter, a vCPU whose fault waits on an invalidation
    # that waits on it, or the coordinator's watchdog ("stopped")
    assert "aborted:" in stdout and any(m in stdout for m in (
        "did not ack", "stopped", "could not take", "invalidation still running")), stdout
    assert elapsed < 30  # bounded: a few ack timeouts, not the 60 s duration
    assert objects_of(p.pid) == []
    assert_gone(kids)


@pytest.mark.timeout(120)
def test_two_concurrent_runs_do_not_share_objects():
    a = subprocess.Popen([sys.executable, "-m", "smpemu.cli", "run", "--vcpus", "3", "--duration", "6",
                          "--policy", "mmu-lock"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([sys.executable, "-m", "smpemu.cli", "run", "--vcpus", "3", "--duration", "6",
                          "--policy", "mmu-lock"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_children(a, 3 + HOSTS)
    wait_children(b, 3 + HOSTS)
    names_a, names_b = set(objects_of(a.pid)), set(objects_of(b.pid))
    assert names_a and names_b and not (names_a & names_b)
    for p in (a, b):
        out, err = p.communicate(timeout=100)
        assert p.returncode == 0, err
        assert objects_of(p.pid) == []


def test_a_run_too_big_for_dev_shm_says_so_before_starting(monkeypatch):
    import shutil

    from smpemu.harness.config import RunConfig
    from smpemu.harness.coordinator import plan
    from smpemu.errors import UsageError

    real = shutil.disk_usage

    def tiny(path):  # /dev/shm with 1 MiB free
        u = real(path)
        return u._replace(free=1 << 20)

    monkeypatch.setattr(shutil, "disk_usage", tiny)
    with pytest.raises(UsageError, match="needs .* MiB of shared memory"):
        plan(RunConfig(vcpus=16, guest_mem="256M"))
