"""Helpers for tests that run real emulations."""

import subprocess
import sys

from smpemu.harness.config import RunConfig
from smpemu.search.baton_loop import run  # scheduled or not (the baton loop by injection)


def run_script(script, vcpus=3, policy="deferred-v4", requests="modern", **kw):
    """Run a scripted scenario: real processes, real semaphores, no host reclaim."""
    kw.setdefault("ack_timeout", 10.0)
    cfg = RunConfig(vcpus=vcpus, workload="script", policy=policy, requests=requests,
                    script=script, guest_mem="4M", swap_rate=0, procs=1, pin="none", **kw)
    return run(cfg)


def kinds(result):
    return sorted({v["kind"] for v in result.violations})


def run_in_pty(args, columns=80, timeout=100, env=None, columns_env=True):
    """Run the CLI with stdout and stderr on a pseudo-terminal of ``columns``
    columns (as in an 80-column xterm); returns (exit code, text without
    ANSI escapes).  ``columns_env=False`` leaves COLUMNS and LINES out of the
    environment, so the CLI can only learn its width from the terminal."""
    import fcntl
    import os
    import pty
    import re
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = dict(os.environ, **(env or {}), COLUMNS=str(columns), LINES="50", TERM="xterm")
    if not columns_env:
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.Popen([sys.executable, "-m", "smpemu.cli", *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
        code = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r\n", "\n")
    return code, text
