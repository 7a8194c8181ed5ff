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
