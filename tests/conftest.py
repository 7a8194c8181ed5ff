"""Shared fixtures: every test must leave /dev/shm as it found it."""

import os

import pytest

from smpemu.harness import resources

# GNU readline, imported with pdb while pytest starts, exports COLUMNS=80 (and
# LINES) into the process environment (not into os.environ), so every smpemu
# a test starts inherited it; since issue 20 smpemu honours COLUMNS outside a
# terminal, and its output would wrap at 80.  Unset it: a test that wants a
# width passes COLUMNS itself (tests/test_first_run.py, tests/test_exits.py).
for _name in ("COLUMNS", "LINES"):
    os.environ[_name] = ""
    del os.environ[_name]  # unsetenv(3), which the children's environment follows


def _mine(pids):
    return [n for n, pid in resources.list_objects() if pid in pids]


@pytest.fixture(autouse=True)
def no_leaked_shm():
    """Objects owned by this process (the coordinator of in-process runs)
    must all be unlinked when the test ends."""
    yield
    leaked = _mine({os.getpid()})
    assert not leaked, f"test leaked shared objects: {leaked}"
