"""The paravirtual TLB flush and its three historical bugs, as forced interleavings.

Real vCPU processes, real semaphores (tests.helpers.run_script); each
interleaving is forced with script events, protocol-point pauses and the
``preempt`` op (the host scheduler's sched-out/sched-in).  Each buggy
variant loses (the guest-level oracle, check 4, sees a translation its
shootdown should have removed), and ``pv`` and ``native`` survive the very
same interleaving.  The host policy is ``mmu-lock`` (its invlpg defers the
remote flush): under ``eager`` the initiator's trapped invlpg flushes every
vCPU, a preempted one at its next entry, which hides all three bugs
(docs/pv-flush.md).

vCPU0 owns page P (its frame F) and shoots it down; vCPU1 cached P in its
TLB and is preempted; the host process only conducts (signals).
"""

import copy

import pytest

from tests.helpers import kinds, run_script

P = ["u", 0, 0]
METHODS = ["native", "pv", "pv-writeback", "pv-overwrite", "pv-no-sync"]

# b043138246a4 (pv-writeback): vCPU1 is scheduled in; its entry's
# record_steal_time pauses between reading the steal-time struct (PREEMPTED)
# and writing it back; meanwhile vCPU0's shootdown finds vCPU1 preempted and
# cmpxchg's FLUSH into its byte instead of sending an IPI; the write-back
# then stores preempted = 0 over it: no flush at entry, and after vCPU0 frees
# F, vCPU1 still reads P through its old entry.  (pv pauses at the same
# place, before its xchg of the guest's byte: the xchg sees FLUSH.  native:
# vCPU0's IPI is pending at vCPU1's entry.)
WRITEBACK = {
    "events": ["filled", "out1", "in1", "paused1", "resume1", "go0", "sent0", "resume0", "entered", "freed",
               "done"],
    "cpus": {
        "0": [["map", P], ["touch", P, 1], ["signal", "filled"], ["wait", "go0"],
              ["arm", "shootdown.ipis_sent", "sent0", "resume0"], ["shootdown", P], ["signal", "freed"],
              ["wait", "done"]],
        "1": [["wait", "filled"], ["access", P, 0], ["arm", "ENTRY", "paused1", "resume1"],
              ["preempt", "out1", "in1"], ["access", P, 0], ["signal", "entered"], ["spin", "freed"],
              ["access", P, 0], ["signal", "done"]],
    },
    "host": [["wait", "out1"], ["signal", "in1"], ["wait", "paused1"], ["signal", "go0"], ["wait", "sent0"],
             ["signal", "resume1"], ["wait", "entered"], ["signal", "resume0"]],
}

# 8c6de56a42e0 (pv-overwrite): vCPU1 is preempted; vCPU0's shootdown leaves
# FLUSH in its byte; vCPU1 is scheduled in and preempted again before it
# entered: the second sched-out stores PREEMPTED over PREEMPTED|FLUSH.
OVERWRITE = {
    "events": ["filled", "out1", "in1", "out2", "in2", "go0", "sent0", "resume0", "entered", "freed", "done"],
    "cpus": {
        "0": [["map", P], ["touch", P, 1], ["signal", "filled"], ["wait", "go0"],
              ["arm", "shootdown.ipis_sent", "sent0", "resume0"], ["shootdown", P], ["signal", "freed"],
              ["wait", "done"]],
        "1": [["wait", "filled"], ["access", P, 0], ["preempt", "out1", "in1"], ["preempt", "out2", "in2"],
              ["access", P, 0], ["signal", "entered"], ["spin", "freed"], ["access", P, 0], ["signal", "done"]],
    },
    "host": [["wait", "out1"], ["signal", "go0"], ["wait", "sent0"], ["signal", "in1"], ["wait", "out2"],
             ["signal", "in2"], ["wait", "entered"], ["signal", "resume0"]],
}

# b53e84eed08b (pv-no-sync): vCPU0 clears P's guest pte (its page table is
# unsync: no exit), leaves FLUSH for the preempted vCPU1 and pauses before its
# own flush (4ce94eabac16's order: the local flush beside the remote ones);
# vCPU1 enters: the FLUSH empties its TLB, but the shadow pte still maps F
# (nobody synced it), so its next access re-fills the old translation; vCPU0
# then invlpgs P and frees F.
NO_SYNC = {
    "events": ["filled", "out1", "in1", "go0", "sent0", "resume0", "entered", "freed", "done"],
    "cpus": {
        "0": [["map", P], ["touch", P, 1], ["signal", "filled"], ["wait", "go0"],
              ["arm", "shootdown.ipis_sent", "sent0", "resume0"], ["shootdown", P], ["signal", "freed"],
              ["wait", "done"]],
        "1": [["wait", "filled"], ["access", P, 0], ["preempt", "out1", "in1"], ["access", P, 0],
              ["signal", "entered"], ["spin", "freed"], ["access", P, 0], ["signal", "done"]],
    },
    "host": [["wait", "out1"], ["signal", "go0"], ["wait", "sent0"], ["signal", "in1"], ["wait", "entered"],
             ["signal", "resume0"]],
}

SCENARIOS = {"pv-writeback": WRITEBACK, "pv-overwrite": OVERWRITE, "pv-no-sync": NO_SYNC}


def _script(bug, method):
    s = copy.deepcopy(SCENARIOS[bug])
    for op in s["cpus"]["1"]:
        if op[0] == "arm" and op[1] == "ENTRY":
            # the entry's read/clear: pv-writeback splits it (copy in, write back):
            # pause between the two; the others do it in one xchg: pause before it
            op[1] = "steal.record.writeback" if method == "pv-writeback" else "steal.record"
    return s


def _run(bug, method, policy="mmu-lock", local_flush="concurrent"):
    r = run_script(_script(bug, method), vcpus=2, policy=policy, guest_flush=method, local_flush=local_flush)
    assert r.aborted is None, r.aborted
    return r


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["mmu-lock", "deferred-v4"])  # host policies whose invlpg defers its flush
@pytest.mark.parametrize("bug", list(SCENARIOS))
def test_each_pv_bug_loses_its_flush(bug, policy):
    r = _run(bug, bug, policy=policy)
    assert kinds(r) == ["guest_stale"]
    v = r.violations[0]
    assert v["vcpu"] == 1 and v["reporter"] == 1  # vCPU1 reached the freed frame through its old entry
    assert r.exit_code == 3
    t = r.totals
    assert t["shootdown_ipis_avoided"] == 1 and t["shootdown_ipis"] == 0  # vCPU1 was skipped: no IPI
    assert t["pv_flushes"] == (1 if bug == "pv-no-sync" else 0)  # the FLUSH was honoured only there


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["pv", "native"])
@pytest.mark.parametrize("bug", list(SCENARIOS))
def test_pv_and_native_survive_the_same_interleaving(bug, method):
    r = _run(bug, method)
    assert r.violations == []
    t = r.totals
    if method == "pv":
        assert t["shootdown_ipis_avoided"] == 1 and t["pv_flushes"] == 1  # skipped, flushed at entry
    else:
        assert t["shootdown_ipis"] == 1 and t["shootdown_ipis_avoided"] == 0  # an IPI, handled at entry
    assert r.vcpus[0]["shootdowns"] == 1


@pytest.mark.timeout(60)
def test_no_sync_needs_the_local_flush_beside_the_remote_ones():
    # before 4ce94eabac16 the initiator's own invlpg zapped the shadow pte
    # before the FLUSH was even left: nothing stale to re-fill
    r = _run("pv-no-sync", "pv-no-sync", local_flush="first")
    assert r.violations == [] and r.totals["pv_flushes"] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bug", list(SCENARIOS))
def test_eager_masks_every_pv_bug(bug):
    # eager's invlpg flushes every vCPU (kvm_flush_remote_tlbs): the preempted
    # one serves that request at its next entry, or acks it in guest mode
    r = _run(bug, bug, policy="eager")
    assert r.violations == []
