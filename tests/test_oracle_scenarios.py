"""Forced interleavings: the oracle must catch the seed's races, and only them.

Every scenario runs real vCPU processes over real shared memory and POSIX
semaphores; the interleaving is forced with script events and protocol-point
pauses, so each outcome is deterministic (no timing luck involved).
"""

import copy

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
def test_same_interleaving_is_safe_under_v4_and_the_correct_policies(policy, requests):
    # v4 closed exactly this window (the v3 one); it loses a flush elsewhere
    # (test_overlapping_flushes_lose_a_flush_under_v4)
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


U01 = ["u", 0, 1]

# The overlapping-flush race (issue 11's diagram), which deferred-v4 loses:
#   cpu0: touches U00 and U01; cpu1 reads U00 (its TLB maps it)
#   cpu0: unmaps U00: zap, wmb, dirty = 1
#   host0 (a reclaimer, the first flusher): reclaims U01: zaps its spte,
#         flushes: dirty = 0, wmb ... paused at flush.after_clear_dirty,
#         its requests not sent yet
#   host1 (a second reclaimer): reclaims U00: no spte left, dirty == 0:
#         no flush; frees the page, which cpu1's TLB still maps
#   cpu1: reads U00: a TLB hit on the freed page
#   host0: resumes; its requests and acks come too late
OVERLAP_RACE = {
    "events": ["filled", "read", "unmapped", "paused", "resume", "freed", "accessed", "end"],
    "cpus": {
        "0": [["touch", U00, 1], ["touch", U01, 1], ["signal", "filled"], ["wait", "read"],
              ["unmap", U00], ["signal", "unmapped"], ["wait", "end"]],
        "1": [["wait", "filled"], ["access", U00, 0], ["signal", "read"], ["wait", "freed"],
              ["access", U00, 0], ["signal", "accessed"], ["wait", "end"]],
    },
    "hosts": {
        "0": [["wait", "unmapped"], ["arm", "flush.after_clear_dirty", "paused", "resume"],
              ["reclaim", U01], ["signal", "end"], ["signal", "end"]],
        "1": [["wait", "paused"], ["reclaim_freed", 0], ["signal", "freed"], ["wait", "accessed"],
              ["signal", "resume"]],
    },
}


def _overlap_for(policy):
    # eager's flush has no dirty to clear: pause it after its kick (the same
    # place: its flush under way, not finished).  mmu-lock's flush holds
    # mmu_lock, which host1's notifier needs: the flusher pauses at the last
    # point before it takes the lock; the interleaving itself cannot happen
    # under mmu-lock, and that is its correctness argument.
    s = copy.deepcopy(OVERLAP_RACE)
    point = {"eager": "ipi.after_kick", "mmu-lock": "notifier.after_unlock"}.get(policy)
    if point:
        s["hosts"]["0"][1][1] = point
    return s


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["deferred-v4", "deferred-v3", "deferred-v4-nowmb"])
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_overlapping_flushes_lose_a_flush_under_v4(policy, requests):
    # every policy that keeps a plain dirty flag: v3 and nowmb as v4
    r = run_script(OVERLAP_RACE, vcpus=2, policy=policy, requests=requests)
    assert r.aborted is None, r.aborted
    assert r.config["reclaimers"] == 2
    assert kinds(r) == ["lost_flush", "stale_access"]
    lost = [v for v in r.violations if v["kind"] == "lost_flush"][0]
    assert lost["vcpu"] == 1 and lost["reporter"] == 3  # seen by host1 (requester 3) at free
    stale = [v for v in r.violations if v["kind"] == "stale_access"][0]
    assert stale["vcpu"] == 1 and stale["pfn"] == lost["pfn"]
    assert r.exit_code == 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "mmu-lock", "eager"])
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_overlapping_flushes_are_safe_under_tlbs_dirty_mmu_lock_eager(policy, requests):
    r = run_script(_overlap_for(policy), vcpus=2, policy=policy, requests=requests)
    assert r.aborted is None, r.aborted
    assert r.violations == []
    assert r.host["reclaimers"][1]["reclaims"] == 1  # host1 did free the page
    assert r.exit_code == 0


# Overlapping flushes and tlbs-dirty's cmpxchg (an ABA): its counter is not
# safe once a flush outside mmu_lock overlaps another and the count comes
# back to the value it read (here two host flushes; `smpemu check --scenario
# aba` needs only one beside a cr3 sync's, docs/timeline.md).
#   host1: flush (tlbs_dirty back to 0 after the guest's own invlpgs)
#   cpu0: invlpg of U01: zap, tlbs_dirty 0 -> 1
#   host0: flush: seen = 1 ... paused before its requests
#   host1: flush: seen = 1, requests, acks, cmpxchg(1, 0): tlbs_dirty = 0
#   host0: resumes, sends its requests, paused after the kick
#   cpu1: serves host0's request, then re-reads U00 (its TLB maps it again)
#   cpu0: unmaps U00: zap, tlbs_dirty 0 -> 1
#   host0: acks in, cmpxchg(1, 0) succeeds: the bump of U00's zap is gone,
#          though host0's request predates it
#   host1: reclaims U00: no spte, tlbs_dirty == 0: no flush; frees it while
#          cpu1's TLB maps it.
# deferred-v4 does not lose this one (U00's dirty = 1 is still there for host1).
ABA_RACE = {
    "events": ["filled", "read", "go1", "reset", "bumped", "p0", "r0", "f1", "k0", "g0", "refilled",
               "h0done", "freed"],
    "cpus": {
        "0": [["touch", U00, 1], ["touch", U01, 1], ["signal", "filled"], ["wait", "read"],
              ["signal", "go1"], ["wait", "reset"], ["invlpg", U01], ["signal", "bumped"], ["wait", "f1"], ["signal", "r0"],
              ["wait", "refilled"], ["unmap", U00], ["signal", "g0"]],
        "1": [["wait", "filled"], ["access", U00, 0], ["signal", "read"], ["wait", "k0"],
              ["access", U00, 0], ["signal", "refilled"], ["wait", "freed"], ["access", U00, 0]],
    },
    "hosts": {
        "0": [["wait", "bumped"], ["arm", "flush.after_clear_dirty", "p0", "r0"],
              ["arm", "ipi.after_kick", "k0", "g0"], ["flush"], ["signal", "h0done"]],
        "1": [["wait", "go1"], ["flush"], ["signal", "reset"],
              ["wait", "p0"], ["flush"], ["signal", "f1"], ["wait", "h0done"], ["reclaim_freed", 0],
              ["signal", "freed"]],
    },
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("requests", ["modern", "2009"])
def test_three_overlapping_flushes_defeat_tlbs_dirty_cmpxchg(requests):
    r = run_script(ABA_RACE, vcpus=2, policy="tlbs-dirty", requests=requests)
    assert r.aborted is None, r.aborted
    assert kinds(r) == ["lost_flush", "stale_access"]
    assert all(v["vcpu"] == 1 for v in r.violations)
    assert r.exit_code == 3
    for policy in ("deferred-v4", "deferred-v3", "deferred-v4-nowmb"):  # a flag, not a counter
        r = run_script(ABA_RACE, vcpus=2, policy=policy, requests=requests)
        assert r.aborted is None, (policy, r.aborted)
        assert r.violations == [], policy
