"""Forced interleavings: the oracle must catch the seed's races, and only them.

Every scenario runs real vCPU processes over real shared memory and POSIX
semaphores; the interleaving is forced with script events and protocol-point
pauses, so each outcome is deterministic (no timing luck involved).
"""

import pytest

from tests.helpers import kinds, run_script

U00 = ["u", 0, 0]

# The seed's v3 race (Andrea's CPU0/CPU1 diagram), with the remote TLB that
# makes it matter:
#   cpu0: invlpg of page U00 pauses at invlpg.after_set_dirty
#   cpu2: kvm_flush_remote_tlbs(): dirty = 0, requests, acks
#   cpu1: serves that flush, then re-fills its TLB from the spte that v3 has
#         not zapped yet
#   cpu0: resumes and zaps; host reclaims the frame: no spte left, dirty == 0,
#         no flush, free -> cpu1 still maps the freed pfn.
V3_RACE = {
    "events": ["filled", "go", "paused", "resume", "flushed", "zapped", "freed"],
    "cpus": {
        "0": [["touch", U00, 1], ["signal", "filled"], ["wait", "go"],
              ["arm", "invlpg.after_set_dirty", "paused", "resume"],
              ["unmap", U00], ["signal", "zapped"]],
        "1": [["wait", "filled"], ["access", U00, 0], ["signal", "go"],
              ["wait", "flushed"], ["access", U00, 0], ["signal", "resume"],
              ["wait", "freed"], ["access", U00, 0]],
        "2": [["wait", "paused"], ["flush"], ["signal", "flushed"]],
    },
    "host": [["wait", "zapped"], ["reclaim_freed", 0], ["signal", "freed"]],
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_v3_interleaving_loses_the_flush(requests):
    r = run_script(V3_RACE, policy="deferred-v3", requests=requests)
    assert r.aborted is None, r.aborted
    assert kinds(r) == ["lost_flush", "stale_access"]
    lost = [v for v in r.violations if v["kind"] == "lost_flush"][0]
    assert lost["vcpu"] == 1 and lost["reporter"] == 3  # seen by the host at free
    stale = [v for v in r.violations if v["kind"] == "stale_access"][0]
    assert stale["vcpu"] == 1 and stale["pfn"] == lost["pfn"]
    assert r.exit_code == 3


# mmu-lock is absent on purpose: its flush takes mmu_lock, which cpu0 holds
# while paused inside invlpg, so this interleaving cannot happen under it (the
# script could only time out).  The lock is its whole correctness argument.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["deferred-v4", "tlbs-dirty", "eager"])
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_same_interleaving_is_safe_under_correct_policies(policy, requests):
    script = V3_RACE
    if policy in ("eager",):
        # eager never defers, so invlpg.after_set_dirty is never reached:
        # pause after the zap instead (same place in the interleaving)
        script = _repoint(V3_RACE, "invlpg.after_zap")
    r = run_script(script, policy=policy, requests=requests)
    assert r.aborted is None, r.aborted
    assert r.violations == []
    assert r.exit_code == 0


def _repoint(script, point):
    import copy

    s = copy.deepcopy(script)
    for op in s["cpus"]["0"]:
        if op[0] == "arm":
            op[1] = point
    return s


# Andrea's mmu_sync_children case: cpu0 holds a writable TLB entry for a guest
# page-table page; cpu1's invlpg zaps that spte (deferred: no remote flush);
# cpu2's cr3 write syncs the page table: rmap_write_protect finds no writable
# spte, so protected == false.  Unless the sync flushes on dirty too, cpu0
# then writes the page table through its stale writable entry.
WP_RACE = {
    "events": ["w", "z", "s"],
    "cpus": {
        "0": [["pt_write", 1], ["signal", "w"], ["wait", "s"], ["pt_write", 1]],
        "1": [["wait", "w"], ["invlpg_pt", 1], ["signal", "z"]],
        "2": [["wait", "z"], ["cr3", 1], ["signal", "s"]],
    },
}


@pytest.mark.timeout(60)
def test_sync_ignoring_dirty_leaves_a_writable_stale_entry():
    r = run_script(WP_RACE, policy="sync-protected-only")
    assert r.aborted is None, r.aborted
    assert kinds(r) == ["stale_write"]
    assert r.violations[0]["vcpu"] == 0
    assert r.exit_code == 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["deferred-v4", "deferred-v3", "tlbs-dirty", "mmu-lock", "eager"])
def test_sync_that_honours_dirty_is_safe(policy):
    r = run_script(WP_RACE, policy=policy)
    assert r.aborted is None, r.aborted
    assert r.violations == []
