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
from workloads.script import host_count, uses_pv
from workloads.script import validate as validate_script

U0, U1 = ["u", 0, 0], ["u", 0, 1]

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
    validate_script(script, n)
    if uses_pv(script):
        raise UsageError(f"scenario {name}: shootdown and preempt ops run on real processes (smpemu run "
                         f"--workload script); smpemu check does not explore them yet")
    setup = script.get("setup", {})
    if not isinstance(setup, dict) or not all(str(k) in cpus and isinstance(v, int) and 0 <= v <= len(cpus[str(k)])
                                              for k, v in setup.items()):
        raise UsageError(f"scenario {name}: 'setup' maps a vCPU to how many of its first ops run before "
                         f"exploration")
    return Scenario(name, script, n, host_count(script), doc, bound)


def run_config(sc: Scenario, policy: str, memory_model: str, requests: str) -> RunConfig:
    """The RunConfig the baton replays a counterexample of ``sc`` with."""
    return RunConfig(reclaimers=sc.n_hosts, vcpus=sc.n_vcpus, workload="script", policy=policy, pin="none", memory_model=memory_model,
                     requests=requests, guest_mem="256K", tlb_size=8, rmap_size=4, procs=1, seed=1,
                     script=sc.script, schedule="replay", sched_steps=1, trace=True,
                     stop_on_violation=True, controlled_drains=True, ack_timeout=10.0)


__all__ = ["SCENARIOS", "Scenario", "load_scenario", "run_config", "USER_BOUND"]
