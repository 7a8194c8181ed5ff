"""The scenarios of ``smpemu check``: the built-in catalog, and loading a user's.

Why it exists: a scenario is what the explorer explores (search/world.py runs
it, search/explore.py enumerates its schedules): a script (workloads/script.py
format; ``hosts`` for several host processes, ``setup`` for the ops that run
before the exploration, ``bound`` for its default preemption bound) small
enough for every schedule with a few preemptions to be run.  docs/check.md
lists each built-in one's actors and operations, and why it is shaped so.
"""

from __future__ import annotations

from dataclasses import dataclass

from smpemu.errors import UsageError, read_json_object
from smpemu.harness.config import RunConfig
from smpemu.kvm import policies
from smpemu.kvm.guest import GuestLayout
from workloads.script import host_count, uses_pv
from workloads.script import validate as validate_script

U0, U1 = ["u", 0, 0], ["u", 0, 1]

# drop-free's actors (aba-sync runs them from a counter at 1): vCPU0 maps U and M, W to U's frame, then clears
# U's pte without invlpg and writes cr3; vCPU1 reads U; host0 flushes once; host1 reclaims U's frame through W
_DROP_FREE = {
    "cpus": {"0": [["map", U0], ["map", U1], ["touch", U0, True], ["touch", U1, False],
                   ["write_pte", ["u", 0, 2], U0], ["write_pte", U0, None], ["cr3", 1]],
             "1": [["access", U0, False], ["access", U0, False], ["access", U0, False]]},
    "hosts": {"0": [["flush"]], "1": [["reclaim", ["u", 0, 2]]]},
    "setup": {"0": 5, "1": 1},
}

SCENARIOS = {
    "default": {
        "doc": "unmapper vCPU0 (setup: map U and M, touch U and M; then unmap U), remote reader vCPU1 "
               "(setup: read U; then read U twice), vCPU2 writes cr3 (mmu_sync_children), host0 reclaims "
               "the page vCPU0 freed, host1 reclaims M (mapped: its flush is unconditional)",
        # M is touched so that host1's flush does not depend on the dirty flag: it can start before
        # the invlpg's bump and end after it (what the tlbs-dirty plain-store mutant gets wrong)
        "cpus": {"0": [["map", U0], ["map", U1], ["touch", U0, True], ["touch", U1, False], ["unmap", U0]],
                 "1": [["access", U0, False], ["access", U0, False], ["access", U0, False]],
                 "2": [["cr3", 1]]},
        "hosts": {"0": [["reclaim_freed", 0]], "1": [["reclaim", U1]]},
        "setup": {"0": 4, "1": 1},
        "bound": 1,  # v3, v4 and the mutants need <= 1 preemption here (docs/check.md)
    },
    "one-flusher": {
        "doc": "unmapper vCPU0 (setup: map U and M, touch U; then unmap U), reader vCPU1 (setup: read U; "
               "then read U twice), one reclaimer: reclaims M (mapped), then the page vCPU0 freed; no cr3 actor",
        "cpus": {"0": [["map", U0], ["map", U1], ["touch", U0, True], ["unmap", U0]],
                 "1": [["access", U0, False], ["access", U0, False], ["access", U0, False]]},
        "hosts": {"0": [["reclaim", U1], ["reclaim_freed", 0]]},
        "setup": {"0": 3, "1": 1},
        "bound": 2,  # deferred-v4-nowmb under relaxed needs 2
    },
    "three-flushers": {
        "doc": "three flushes overlap: unmapper vCPU0 (setup: map U and M, touch both; then unmap U), "
               "unmapper vCPU1 (setup: map V, touch V; then unmap V), reader vCPU2 (setup: read V; then read "
               "V), host0 reclaims vCPU0's freed page (flushes if dirty), host1 vCPU1's, host2 reclaims M "
               "(mapped: flushes)",
        # tlbs-dirty's ABA: host0 and host2 both read the count after U's bump, host0 clears it,
        # V's bump sets it back to the value host2 read, host2's cmpxchg clears V's bump
        "cpus": {"0": [["map", U0], ["map", U1], ["touch", U0, True], ["touch", U1, False], ["unmap", U0]],
                 "1": [["map", ["u", 1, 0]], ["touch", ["u", 1, 0], True], ["unmap", ["u", 1, 0]]],
                 "2": [["access", ["u", 1, 0], False], ["access", ["u", 1, 0], False]]},
        "hosts": {"0": [["reclaim_freed", 0]], "1": [["reclaim_freed", 1]], "2": [["reclaim", U1]]},
        "setup": {"0": 4, "1": 2, "2": 1},
        "bound": 1,  # tlbs-dirty needs 1
    },
    "sync": {
        "doc": "Andrea's write-protect case: vCPU0 writes a guest page table, invlpgs its kernel "
               "mapping, writes cr3 (sync), writes the page table again; vCPU1 writes it twice; no reclaimer",
        "cpus": {"0": [["pt_write", 1], ["invlpg_pt", 1], ["cr3", 1], ["pt_write", 1]],
                 "1": [["pt_write", 1], ["pt_write", 1]]},
        "hosts": {"0": []},
        "bound": 2,  # sync-protected-only needs 1
    },
    "range-overlap": {
        "doc": "the 2009 notifier race: vCPU0 (setup: map U, touch U; then read U twice), host0 reclaims U "
               "(invalidate_page, under the host pte lock), host1 invalidates U's range (munmap, "
               "madvise(DONTNEED): no pte lock)",
        # under --notifier 2009 the one that finds U's spte gone skips its flush and frees U before the
        # other one, which zapped it, has flushed: every policy loses; 2012 flushes before mmu_unlock
        "cpus": {"0": [["map", U0], ["touch", U0, True], ["access", U0, False], ["access", U0, False]]},
        "hosts": {"0": [["reclaim", U0]], "1": [["invalidate_range", U0]]},
        "setup": {"0": 2},
        "bound": 1,  # every policy loses at 1 under --notifier 2009
    },
    "drop-free": {
        "doc": "the race a4ee1ca4a36e (2.6.38) closed: vCPU0 (setup: map U and M, touch both, map W to U's "
               "frame; then clear U's pte without invlpg and write cr3: sync_page drops U's spte), reader "
               "vCPU1 (setup: read U; then read U twice), host0 one plain flush outside mmu_lock, host1 "
               "reclaims U's frame (found through W)",
        # with no flush and no flag for the drop (2.6.37), host1 finds no spte, skips its flush and frees
        # the frame vCPU1 still maps; 2.6.38's counter makes it flush, unless the bump is seen before the
        # drop (no smp_wmb() until 4.6, --memory-model relaxed) by host0's flush, whose cmpxchg clears it
        **_DROP_FREE,
        "bound": 2,  # eager-2.6.37 needs 0; tlbs-dirty-2.6.38 under relaxed 2
    },
    "aba-sync": {
        "doc": "upstream's own ABA (2.6.38-5.14): drop-free from a counter already at 1 (an earlier "
               "sync_page drop's bump no flush has cleared yet)",
        # vCPU0's sync flush (protected) and host0's plain flush both read 1; the sync clears it, then
        # sync_page's drop bumps it back to 1 after vCPU1 re-filled U; host0's cmpxchg(1, 0) erases
        # that bump; host1 finds no spte and 0, and frees the frame
        **_DROP_FREE,
        "dirty": 1,
        "bound": 1,  # tlbs-dirty-2.6.38 and -4.6 need 0
    },
    "aba": {
        "doc": "tlbs-dirty's ABA from a counter already at 1: unmapper vCPU0 (setup: map U, touch U; then "
               "unmap U), reader vCPU1 (setup: read U; then read U twice), vCPU2 writes cr3 (its sync flushes "
               "under mmu_lock), host0 one plain flush outside mmu_lock, host1 reclaims the page vCPU0 freed",
        # the sync's flush and host0's both read 1; the sync clears it, the unmap bumps it back to 1 after
        # vCPU1 re-filled, host0's cmpxchg(1, 0) clears that bump; host1 sees 0 and frees U
        "cpus": {"0": [["map", U0], ["touch", U0, True], ["unmap", U0]],
                 "1": [["access", U0, False], ["access", U0, False], ["access", U0, False]],
                 "2": [["cr3", 1]]},
        "hosts": {"0": [["flush"]], "1": [["reclaim_freed", 0]]},
        "setup": {"0": 2, "1": 1},
        "dirty": 1,
        "bound": 1,  # tlbs-dirty needs 0, deferred-v4 1
    },
    "sync-drop": {
        "doc": "f81602958c11's missed flush (two guest processes): vCPU0 (process 1; setup: its page U1 maps "
               "process 2's page-table frame; then clears U1's pte without invlpg, invlpgs its page table's "
               "kernel mapping (a kunmap), writes cr3: sync_page drops U1's spte), vCPU2 (process 1; setup: "
               "writes U1; then writes U1 twice), vCPU1 (process 2) writes cr3: that page table is "
               "write-protected; no reclaimer",
        # the page-table frame mapped writable at U1 stands for a frame the guest reused as a page table
        # before its TLB shootdown reached vCPU2; the drop took U1 out of the rmap, so vCPU1's sync finds
        # nothing to protect and flushes only if the policy says so (2.6.38: no)
        "procs": 2,
        "cpus": {"0": [["write_pte", U1, ["pt", 2]], ["write_pte", U1, None], ["invlpg_pt", 1], ["cr3", 1]],
                 "1": [["cr3", 2]],
                 "2": [["access", U1, True], ["access", U1, True], ["access", U1, True]]},
        "setup": {"0": 1, "2": 1},
        "bound": 2,  # tlbs-dirty-2.6.38 needs 1
    },
    # issue 19: guest shootdowns; the host's preemptions are the explorer's own
    # choices (sched.out / sched.in, smpemu/sched/preempt.py), not script ops
    "guest-shootdown": {
        "doc": "vCPU0 (setup: map P, touch P) shoots P down (munmap: guest pte cleared, the guest's TLB "
               "flush by --guest-flush, the frame freed); vCPU1 (setup: read P) reads P, spins until the "
               "frame is freed, reads P again; the host may preempt either vCPU where Linux can (a guest "
               "step, a guest-mode wait) and resume it (sched.out / sched.in decisions)",
        # pv-writeback: vCPU1 preempted, resumed, its entry reads the steal-time copy, vCPU0's cmpxchg adds
        # FLUSH, the write-back wipes it; pv-overwrite: FLUSH added while vCPU1 is preempted, resumed and
        # preempted again before its entry; pv-no-sync: vCPU1 enters (FLUSH: TLB only) and re-fills P from
        # the unsynced spte before vCPU0's own (concurrent) flush zaps it
        "events": ["filled", "freed"],
        "cpus": {"0": [["map", U0], ["touch", U0, True], ["signal", "filled"], ["shootdown", U0],
                       ["signal", "freed"]],
                 "1": [["wait", "filled"], ["access", U0, False], ["access", U0, False], ["spin", "freed"],
                       ["access", U0, False]]},
        "hosts": {"0": []},
        "setup": {"0": 3, "1": 2},
        "bound": 2,  # each PV bug needs 2 here (docs/check.md)
    },
    "two-shootdowns": {
        "doc": "vCPU0 (setup: map P and Q, touch both) shoots P down, then Q; vCPU1 (setup: read P and Q) "
               "reads P, spins until both frames are freed, reads P and Q; the host may preempt and resume "
               "either vCPU: a target preempted, resumed and preempted again between the two shootdowns",
        # the second shootdown finds vCPU1 preempted again (or running): each PV bug can lose either FLUSH
        "events": ["filled", "freed"],
        "cpus": {"0": [["map", U0], ["map", U1], ["touch", U0, True], ["touch", U1, True], ["signal", "filled"],
                       ["shootdown", U0], ["shootdown", U1], ["signal", "freed"]],
                 "1": [["wait", "filled"], ["access", U0, False], ["access", U1, False], ["access", U0, False],
                       ["spin", "freed"], ["access", U0, False], ["access", U1, False]]},
        "hosts": {"0": []},
        "setup": {"0": 5, "1": 3},
        "bound": 2,  # each PV bug needs 2 here too (docs/check.md)
    },
}
USER_BOUND = 2  # a user's scenario file: its default bound


@dataclass
class Scenario:
    name: str
    script: dict
    n_vcpus: int
    n_hosts: int
    doc: str = ""
    bound: int = USER_BOUND  # the default --bound for this scenario


def load_scenario(name: str) -> Scenario:
    if name in SCENARIOS:
        d = SCENARIOS[name]
        script = {k: v for k, v in d.items() if k not in ("doc", "bound")}
        doc = d["doc"]
        bound = d["bound"]
    else:
        if not name.endswith(".json"):
            raise UsageError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}, or FILE.json")
        script = read_json_object(name, "scenario")
        doc = "a user's script"
        bound = script.pop("bound", USER_BOUND)
    cpus = script.get("cpus", {})
    if not isinstance(cpus, dict) or not cpus:
        raise UsageError(f"scenario {name}: the script gives no vCPU ops ('cpus')")
    try:
        n = max(int(k) for k in cpus) + 1
    except ValueError:
        raise UsageError(f"scenario {name}: cpu keys must be vCPU numbers") from None
    sc = Scenario(name, script, n, host_count(script), doc, bound)
    cfg = run_config(sc, policies.DEFAULT, "native", "modern")
    validate_script(script, n, GuestLayout.plan(cfg.vcpus, cfg.guest_pages, cfg.procs))  # pages, processes
    if any(isinstance(op, list) and op[:1] == ["preempt"] for ops in cpus.values() if isinstance(ops, list)
           for op in ops):
        raise UsageError(f"scenario {name}: preempt ops run on real processes (smpemu run --workload script); "
                         f"smpemu check explores the host's preemptions itself (sched.out / sched.in)")
    setup = script.get("setup", {})
    if not isinstance(setup, dict) or not all(str(k) in cpus and isinstance(v, int) and 0 <= v <= len(cpus[str(k)])
                                              for k, v in setup.items()):
        raise UsageError(f"scenario {name}: 'setup' maps a vCPU to how many of its first ops run before "
                         f"exploration")
    return sc


def uses_shootdowns(sc: Scenario) -> bool:
    """Does the scenario shoot TLBs down (then --guest-flush matters, and the host may preempt vCPUs)?"""
    return uses_pv(sc.script)


def run_config(sc: Scenario, policy: str, memory_model: str, requests: str, notifier: str = "2009",
               guest_flush: str = "native", local_flush: str = "concurrent") -> RunConfig:
    """The RunConfig the baton replays a counterexample of ``sc`` with."""
    return RunConfig(guest_flush=guest_flush, local_flush=local_flush, reclaimers=sc.n_hosts, vcpus=sc.n_vcpus, workload="script", policy=policy, pin="none", memory_model=memory_model,
                     requests=requests, notifier=notifier, guest_mem="256K", tlb_size=8, rmap_size=4,
                     procs=sc.script.get("procs", 1), seed=1,
                     script=sc.script, schedule="replay", sched_steps=1, trace=True,
                     stop_on_violation=True, controlled_drains=True, ack_timeout=10.0)


__all__ = ["SCENARIOS", "Scenario", "load_scenario", "run_config", "uses_shootdowns", "USER_BOUND"]
