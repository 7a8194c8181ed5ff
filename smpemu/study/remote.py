"""Sweep points on a dask.distributed cluster, as ``smpemu run`` subprocesses.

Why it exists: dask's worker processes are daemonic and may not fork the
vCPU processes themselves, so each point runs as ``python -m smpemu.cli run
... --json tmp`` on a worker and its JSON comes back as the row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_VIOLATION, SmpemuError, UsageError
from smpemu.harness.config import RunConfig


def require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError('--scheduler needs dask.distributed: pip install "dask[distributed]"') from None


def cli_args(cfg: RunConfig) -> list[str]:
    """The ``smpemu run`` arguments of a config (the options a sweep varies or passes)."""
    a = ["--vcpus", cfg.vcpus, "--workload", cfg.workload, "--policy", cfg.policy, "--pin", cfg.pin,
         "--memory-model", cfg.memory_model, "--requests", cfg.requests, "--notifier", cfg.notifier,
         "--range-share", cfg.range_share, "--swap-rate", cfg.swap_rate,
         "--reclaimers", cfg.reclaimers if cfg.reclaimers is not None else 2 if cfg.swap_rate > 0 else 1,
         "--guest-mem", cfg.guest_mem, "--seed", cfg.seed,
         "--preempt-exit", cfg.preempt_exit, "--ipi-route", cfg.ipi_route, "--pcpus", cfg.pcpus,
         "--quantum", cfg.quantum, "--guest-flush", cfg.guest_flush, "--local-flush", cfg.local_flush]
    a += ["--iterations", cfg.iterations] if cfg.iterations else ["--duration", cfg.duration or 10.0]
    if cfg.trace_file:  # the trace workload's input: at this path on the worker too
        a += ["--trace-file", cfg.trace_file]
    return [str(x) for x in a]


def run_subprocess(args: list[str], timeout: float | None = None) -> dict:
    """``python -m smpemu.cli run ARGS --json tmp`` and its JSON (a dask task body)."""
    fd, path = tempfile.mkstemp(prefix="smpemu-sweep-", suffix=".json")
    os.close(fd)
    try:
        p = subprocess.run([sys.executable, "-m", "smpemu.cli", "run", *args, "--json", path],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode in (EXIT_OK, EXIT_VIOLATION, EXIT_ABORTED) and os.path.getsize(path) > 0:
            with open(path) as f:
                return json.load(f)
        last = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise SmpemuError(f"remote run ({' '.join(args)}) failed: {last}")
    finally:
        os.unlink(path)


def _remote_timeout(cfg: RunConfig) -> float:
    return (cfg.duration or 0) * 3 + 600


def sweep_remote(jobs, on_result, client) -> None:
    """Submit every ``(point, RunConfig)`` of ``jobs`` to the dask workers;
    ``on_result(point, result)`` is called as each one finishes."""
    from distributed import as_completed

    futs = {}
    for pt, cfg in jobs:
        f = client.submit(run_subprocess, cli_args(cfg), _remote_timeout(cfg), pure=False,
                          key=f"smpemu-{pt.policy}-{pt.guest_flush}-{pt.pin}-{pt.vcpus}-r{pt.repeat}-{os.urandom(4).hex()}")
        futs[f] = pt
    try:
        for f in as_completed(futs):
            on_result(futs[f], f.result())
    except BaseException:
        client.cancel(list(futs))
        raise


def connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {address}: cannot connect: {e}") from None
