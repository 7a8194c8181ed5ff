"""Shared fixtures: every test must leave /dev/shm as it found it."""

import os

import pytest

from smpemu.harness import resources


def _mine(pids):
    return [n for n, pid in resources.list_objects() if pid in pids]


@pytest.fixture(autouse=True)
def no_leaked_shm():
    """Objects owned by this process (the coordinator of in-process runs)
    must all be unlinked when the test ends."""
    yield
    leaked = _mine({os.getpid()})
    assert not leaked, f"test leaked shared objects: {leaked}"
