"""Helpers for tests that run real emulations."""

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
