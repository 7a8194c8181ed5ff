"""Placement policies and the lifetime of named POSIX objects."""

import os
import subprocess
import sys

import posix_ipc
import pytest

from smpemu.harness import pinning, resources
from smpemu.errors import UsageError


def test_compact_fills_cores_in_order_and_oversubscribes_in_blocks():
    assert pinning.placement(2, "compact", [0, 1, 2, 3]) == [[0], [1]]
    assert pinning.placement(8, "compact", [0, 1]) == [[0]] * 4 + [[1]] * 4
    assert pinning.placement(3, "compact", [4, 5]) == [[4], [4], [5]]


def test_spread_round_robins_when_oversubscribed():
    p = pinning.placement(5, "spread", [0, 1])
    assert [c[0] for c in p] == [0, 1, 0, 1, 0]


def test_core_list_and_none():
    allowed = pinning.allowed_cores()
    assert pinning.placement(3, "none", allowed) == [allowed] * 3
    lst = ",".join(str(c) for c in allowed)
    assert [c[0] for c in pinning.placement(len(allowed) * 2, lst, allowed)] == allowed * 2
    with pytest.raises(UsageError):
        pinning.placement(2, "0,,1", allowed)
    assert pinning.parse_core_list("0-2,5") == [0, 1, 2, 5]


def test_resource_set_close_is_idempotent_and_unlinks():
    rs = resources.ResourceSet(resources.new_run_id())
    rs.shm("arena", 4096)
    rs.sem("s", 1)
    names = [n for n, pid in resources.list_objects() if pid == os.getpid()]
    assert len(names) == 2
    rs.close()
    rs.close()
    assert not [n for n, pid in resources.list_objects() if pid == os.getpid()]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_removes_dead_runs_and_keeps_live_ones():
    dead = _dead_pid()
    dead_shm = posix_ipc.SharedMemory(f"/smpemu-{dead}-00aa-arena", posix_ipc.O_CREX, size=4096)
    dead_shm.close_fd()
    dead_sem = posix_ipc.Semaphore(f"/smpemu-{dead}-00aa-kick0", posix_ipc.O_CREX)
    dead_sem.close()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live_sem = posix_ipc.Semaphore(f"/smpemu-{live.pid}-00bb-kick0", posix_ipc.O_CREX)
        p = subprocess.run([sys.executable, "-m", "smpemu.cli", "clean"], capture_output=True, text=True, timeout=50)
        assert p.returncode == 0, p.stderr
        left = {n for n, _ in resources.list_objects()}
        assert f"smpemu-{dead}-00aa-arena" not in left
        assert f"sem.smpemu-{dead}-00aa-kick0" not in left
        assert f"sem.smpemu-{live.pid}-00bb-kick0" in left
    finally:
        live.kill()
        live.wait()
        live_sem.unlink()
        live_sem.close()
