"""--ipi-route coordinator and --preempt-exit (now --pcpus), with real processes."""

import pytest

from smpemu.harness.config import RunConfig
from smpemu.harness.coordinator import run
from tests.helpers import run_script


@pytest.mark.timeout(60)
def test_coordinator_routes_a_kick_to_a_running_vcpu():
    # the same deterministic scenario as the direct kick test: cpu0 spins in
    # guest mode, cpu1 flushes; the kick now goes through the router thread
    script = {"events": ["ready", "done"],
              "cpus": {"0": [["signal", "ready"], ["spin", "done"]],
                       "1": [["wait", "ready"], ["flush"], ["signal", "done"]]}}
    r = run_script(script, vcpus=2, ipi_route="coordinator")
    assert r.aborted is None, r.aborted
    assert r.vcpus[1]["ipis_sent"] == 1 and r.routed_ipis == 1
    assert r.vcpus[0]["local_flushes"] >= 1  # it took the interrupt and flushed
    # routed delivery is asynchronous: cpu0 may see the kick in its mode word,
    # ack and finish before the router's semaphore post lands, so the post
    # may be consumed (1) or not (0), never more
    assert r.vcpus[0]["ipis_received"] <= 1


@pytest.mark.timeout(120)
def test_coordinator_routing_delivers_the_kicks():
    # mmu-lock: correct with any number of flushers (deferred-v4, the default,
    # may catch its overlapping-flush race with two reclaimers)
    r = run(RunConfig(vcpus=6, iterations=1500, ipi_route="coordinator", seed=2, policy="mmu-lock"))
    assert r.aborted is None, r.aborted
    t = r.totals
    assert t["ipis_sent"] > 0
    # every kick sent is routed; only the kicks still in flight when the run
    # stops (at most one per vCPU) can miss being counted as received
    assert abs(r.routed_ipis - t["ipis_sent"]) <= 1
    assert 0 <= r.routed_ipis - t["ipis_received"] <= 6
    assert r.violations == []


@pytest.mark.timeout(120)
def test_preempt_exit_is_the_host_scheduler_when_oversubscribed():
    # --preempt-exit N is subsumed by --pcpus (docs/decisions.md): it maps to
    # --pcpus <the run's cores> when the vCPUs outnumber them, and only then
    one_core = str(sorted(__import__("os").sched_getaffinity(0))[0])
    over = run(RunConfig(vcpus=4, iterations=1500, cpus=one_core, preempt_exit=32, quantum=1, seed=3,
                         policy="mmu-lock"))
    assert over.aborted is None, over.aborted
    assert over.config["pcpus"] == 1 and over.pv["oversubscription"] == 4
    assert over.totals["preempt_exits"] == over.totals["preemptions"] > 0 and over.violations == []
    plain = run(RunConfig(vcpus=4, iterations=1500, cpus=one_core, seed=3))
    assert plain.totals["preempt_exits"] == 0 and plain.config["pcpus"] == 0
    fits = run(RunConfig(vcpus=1, iterations=1500, preempt_exit=32, seed=3))
    assert fits.totals["preempt_exits"] == 0 and fits.config["pcpus"] == 0  # one vCPU never oversubscribes a core
