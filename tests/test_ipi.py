"""The request/kick/ack path with real processes and real POSIX semaphores."""

import pytest

from tests.helpers import run_script


@pytest.mark.timeout(60)
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_running_vcpu_is_kicked_and_acks(requests):
    # cpu0 is in guest mode (it signals "ready" from guest mode, then spins
    # there taking interrupts); cpu1's flush must kick it and wait for its ack.
    script = {
        "events": ["ready", "done"],
        "cpus": {
            "0": [["signal", "ready"], ["spin", "done"]],
            "1": [["wait", "ready"], ["flush"], ["signal", "done"]],
        },
    }
    r = run_script(script, vcpus=2, requests=requests)
    assert r.aborted is None, r.aborted
    c0, c1 = r.vcpus
    assert c1["ipis_sent"] == 1
    assert c0["ipis_received"] == 1
    assert c0["local_flushes"] >= 1
    assert c1["ack_latency_us"]["p50"] is not None  # it really waited for the ack
    assert r.exit_code == 0


@pytest.mark.timeout(60)
def test_two_requesters_one_kick_one_flush_answers_both():
    # (events are semaphores: one post wakes one waiter)
    # cpu0 sits in guest mode not taking interrupts.  cpu1 flushes first and
    # pauses after its kick loop: it moved cpu0 to EXITING and kicked it.  Only
    # then cpu2 flushes (it was halted until "s2") and pauses after its kick
    # loop: it found cpu0 already EXITING (no second IPI, but it waits for the
    # ack) and cpu1 outside guest mode (inside its flush).  Then cpu0 takes
    # the interrupt: one flush acks both requesters.
    script = {
        "events": ["ready", "k1", "g1", "s2", "k2", "g2", "go", "d1", "d2", "end"],
        "cpus": {
            "0": [["signal", "ready"], ["busy", "go"], ["spin", "end"]],
            "1": [["wait", "ready"], ["arm", "ipi.after_kick", "k1", "g1"], ["flush"], ["signal", "d1"]],
            "2": [["wait", "s2"], ["arm", "ipi.after_kick", "k2", "g2"], ["flush"], ["signal", "d2"]],
        },
        "host": [["wait", "k1"], ["signal", "s2"], ["wait", "k2"], ["signal", "g1"], ["signal", "g2"],
                 ["signal", "go"], ["wait", "d1"], ["wait", "d2"], ["signal", "end"]],
    }
    r = run_script(script, vcpus=3)
    assert r.aborted is None, r.aborted
    c0, c1, c2 = r.vcpus
    assert c0["ipis_received"] == 1  # one IPI, although two requesters waited on it
    assert c1["ipis_sent"] >= 1  # cpu1 kicked cpu0 (and cpu2 too if it found it in guest mode)
    # cpu2 kicked nobody: cpu0 was EXITING, cpu1 outside guest mode; a second
    # kick of an exiting vCPU, or a kick of a vCPU outside guest mode, fails here
    assert c2["ipis_sent"] == 0 and c2["ipis_avoided"] == 2
    assert c1["ack_latency_us"]["p50"] is not None and c2["ack_latency_us"]["p50"] is not None
    assert r.exit_code == 0


@pytest.mark.timeout(60)
def test_vcpu_outside_guest_mode_is_not_waited_for_and_flushes_on_entry():
    # cpu0 is halted (outside guest mode): a modern flush neither kicks nor
    # waits for it; cpu0 serves the request when it re-enters guest mode.
    # cpu1 waits until cpu0 *is* halted (its halted flag, set after it left
    # guest mode), not for a signal cpu0 could only post before halting.
    script = {
        "events": ["flushed"],
        "cpus": {
            "0": [["wait", "flushed"]],
            "1": [["wait_halted", 0], ["flush"], ["signal", "flushed"]],
        },
    }
    r = run_script(script, vcpus=2)
    assert r.aborted is None, r.aborted
    c0, c1 = r.vcpus
    assert c1["ipis_sent"] == 0 and c1["ipis_avoided"] == 1  # its one target, cpu0, not kicked
    assert c1["ack_latency_us"]["p50"] is None  # and not waited for
    assert c0["local_flushes"] >= 1  # served on entry


@pytest.mark.timeout(60)
def test_fault_racing_an_invalidation_retries():
    # The host pauses inside invalidate_range (notifier count raised, sptes
    # zapped, flush not yet sent).  cpu0 faults a new page meanwhile: the
    # mmu_notifier_retry check must make it retry, not install the spte.
    script = {
        "events": ["hp", "hr", "v0r", "v0g", "ok"],
        "cpus": {
            "0": [["touch", ["u", 0, 0], 1], ["signal", "ok"], ["wait", "hp"],
                  ["arm", "fault.retry", "v0r", "v0g"], ["touch", ["u", 0, 1], 1]],
            "1": [["wait", "v0r"], ["signal", "hr"], ["signal", "v0g"]],
        },
        "host": [["wait", "ok"], ["arm", "notifier.after_unlock", "hp", "hr"], ["reclaim", ["u", 0, 0]]],
    }
    r = run_script(script, vcpus=2)
    assert r.aborted is None, r.aborted
    assert r.vcpus[0]["fault_retries"] >= 1
    assert r.host["reclaims"] == 1
    assert r.violations == []
