"""Every user mistake: one line on stderr, exit 2, no traceback."""

import subprocess
import sys

import pytest

BAD = [
    (["run", "--vcpus", "0"], "--vcpus must be at least 1"),
    (["run", "--vcpus", "-3"], "--vcpus must be at least 1"),
    (["run", "--vcpus", "100000"], "too many"),
    (["run", "--workload", "nope"], "unknown workload 'nope'; choose one of: malloc-touch"),
    (["run", "--policy", "nope"], "unknown policy 'nope'; choose one of: eager"),
    (["run", "--memory-model", "arm"], "unknown memory model 'arm'"),
    (["run", "--pin", "wide"], "expected compact, spread, none or a core list"),
    (["run", "--pin", "0,999"], "not allowed here"),
    (["run", "--pin", "1-0"], "expected compact, spread, none or a core list"),
    (["run", "--cpus", "999"], "not allowed here"),
    (["run", "--duration", "0"], "--duration must be > 0"),
    (["run", "--duration", "-5"], "--duration must be > 0"),
    (["run", "--iterations", "0"], "--iterations must be >= 1"),
    (["run", "--guest-mem", "lots"], "bad size 'lots'"),
    (["run", "--guest-mem", "1K"], "too small"),
    (["run", "--guest-mem", "64G"], "too large"),
    (["run", "--requests", "1999"], "choose modern or 2009"),
    (["run", "--ack-timeout", "0"], "--ack-timeout must be > 0"),
    (["run", "--delay", "nowhere=5"], "unknown protocol point 'nowhere'"),
    (["run", "--delay", "tlb.fill=x"], "is not a number"),
    (["run", "--share", "2"], "--share must be between 0 and 1"),
    (["run", "--json", "/nonexistent-dir/x.json"], "does not exist"),
    (["run", "--json", "/"], "is a directory"),
    (["info", "--vcpus", "0"], "--vcpus must be at least 1"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line(args, msg):
    p = subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True, timeout=50)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert msg in p.stderr.replace("\n", " "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.timeout(60)
def test_list_and_info_and_help():
    for args in (["list"], ["info", "--vcpus", "16", "--pin", "spread"], ["run", "--help"], ["--help"]):
        p = subprocess.run([sys.executable, "-m", "smpemu.cli", *args], capture_output=True, text=True, timeout=50)
        assert p.returncode == 0, (args, p.stderr)
    p = subprocess.run([sys.executable, "-m", "smpemu.cli", "list"], capture_output=True, text=True, timeout=50)
    for name in ("eager", "deferred-v3", "deferred-v4", "malloc-touch"):
        assert name in p.stdout


@pytest.mark.timeout(60)
def test_a_command_that_fails_to_import_drops_no_other_and_says_why():
    # sys.modules[name] = None makes importing it raise ImportError: a broken
    # sweep module must leave replay and check registered, and sweep itself
    # must say why it cannot run (exit 1), not vanish
    code = ("import sys; sys.modules['smpemu.study.sweep'] = None; sys.argv = ['smpemu'] + sys.argv[1:]; "
            "from smpemu.cli import main; main()")

    def cli(*args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=50)

    for cmd in ("replay", "check"):
        p = cli(cmd, "--help")
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    p = cli("sweep", "--vcpus", "1,2")
    assert p.returncode == 1 and "smpemu sweep: unavailable: smpemu.study.sweep failed to import" in p.stderr, \
        (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
