"""Faithfulness of the kernel model to 2009's KVM, each point forced.

- mmu_sync_children write-protects *and* flushes under mmu_lock (2009's
  mmu_sync_roots held it), so an invlpg cannot run between the write
  protection and the end of the sync's flush.
- An ack never splits a hardware page walk: a vCPU serves flush requests
  between guest steps or in exit handling, never between its spte load and
  its TLB fill.

Real processes and semaphores; the interleavings come from controlled
schedules (one process at a time, a function of the seed) or from script
events and protocol-point pauses.
"""

import pytest

from tests.helpers import run_script

U10 = ["u", 1, 0]

# cpu2's cr3 write syncs an unsync page table (its pt_write made it so)
# while cpu1 faults in and invlpgs a page of its own: the schedules decide
# where cpu1's invlpg falls.  Under mmu_lock, never inside the sync.
SYNC_VS_INVLPG = {
    "cpus": {
        "1": [["touch", U10, 1], ["invlpg", U10], ["touch", U10, 1], ["invlpg", U10]],
        "2": [["pt_write", 1], ["cr3", 1], ["pt_write", 1], ["cr3", 1]],
    },
}


FLUSH_EVENTS = {"notifier: dirty?", "flush: dirty = 0", "flush: requests sent", "flush: all acked",
                "serve: TLB flushed, ack"}


def _sync_windows(events):
    """[(first, last)] indexes of cpu2's syncs: its write-protect up to the
    last event of the flush that follows it (the sync path holds mmu_lock
    over all of that)."""
    out = []
    i = 0
    while i < len(events):
        cpu, ev = events[i]
        if cpu == 2 and ev == "write-protect":
            last = i
            j = i + 1
            while j < len(events):
                c, e = events[j]
                if c == 2 and e in FLUSH_EVENTS:
                    last = j
                elif c == 2:
                    break
                j += 1
            out.append((i, last))
            i = j
        else:
            i += 1
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["deferred-v4", "mmu-lock"])
def test_sync_write_protects_and_flushes_under_mmu_lock(policy):
    syncs = 0
    for seed in range(1, 13):
        r = run_script(SYNC_VS_INVLPG, policy=policy, schedule="pct", seed=seed, trace=True,
                       pct_epoch=2, pct_depth=4)
        assert r.aborted is None, (seed, r.aborted)
        assert r.violations == []
        events = [(e["cpu"], e["event"]) for e in r.trace["events"]]
        for first, last in _sync_windows(events):
            syncs += 1
            assert any(events[k] == (2, "flush: requests sent") for k in range(first, last + 1))
            for k in range(first, last + 1):
                assert events[k] != (1, "zap spte"), f"seed {seed}: cpu1's zap inside cpu2's sync: {events[first:last + 1]}"
    assert syncs > 0  # the sync path really write-protected and flushed


U00 = ["u", 0, 0]

# --requests 2009: cpu1's page walk has loaded U00's spte and pauses before
# the TLB fill; cpu0 unmaps U00 (zap); the flush that follows (cpu0's own
# under eager, the host's notifier before it frees the page under the
# deferred policies) sends its request and pauses after the kick; cpu2
# resumes the walk, then the flusher.  A walk acks nothing: cpu1 fills its
# TLB from the spte it loaded, and only then (taking the kick in guest mode)
# flushes and acks, before the host frees the page.  When the pause at
# tlb.fill acked requests, cpu1 could ack first and fill after, keeping a
# translation of the freed page that nobody would flush: a lost flush under
# a correct policy.
def walk_script(flusher):
    kick = ["arm", "ipi.after_kick", "kicked", "go0"]
    return {
        "events": ["filled", "paused", "resume", "kicked", "go0", "zapped", "end"],
        "cpus": {
            "0": [["touch", U00, 1], ["signal", "filled"], ["wait", "paused"]]
                 + ([kick] if flusher == "cpu0" else []) + [["unmap", U00], ["signal", "zapped"]],
            "1": [["wait", "filled"], ["arm", "tlb.fill", "paused", "resume"], ["access", U00, 0],
                  ["spin", "end"]],
            "2": [["wait", "kicked"], ["signal", "resume"], ["signal", "go0"]],
        },
        "host": [["wait", "zapped"]] + ([kick] if flusher == "host" else [])
                + [["reclaim_freed", 0], ["signal", "end"]],
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy,flusher", [("eager", "cpu0"), ("tlbs-dirty", "host"),
                                            ("mmu-lock", "host"), ("deferred-v4", "host")])
def test_an_ack_never_splits_a_page_walk(policy, flusher):
    # every schedule of seeds 1..12 (a function of the seed); before the
    # fix, cpu1 parked in the walk's pause acked the flush request whenever
    # the schedule ran it before cpu2 resumed it, and the run found a lost
    # flush (seeds 1, 2, ... for eager)
    script = walk_script(flusher)
    for seed in range(1, 13):
        r = run_script(script, policy=policy, requests="2009", schedule="pct", seed=seed)
        assert r.aborted is None, (seed, r.aborted)
        assert r.violations == [], (seed, r.violations[:1])
        assert r.schedule["end"] == "finished"
    r = run_script(script, policy=policy, requests="2009")  # free-running, real blocking waits
    assert r.aborted is None, r.aborted
    assert r.violations == []
