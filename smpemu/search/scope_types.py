"""The scope search's settings and results, and what every part of it shares.

Why it exists: the API (search/scope.py re-exports it) is used by the
search (search/scope_run.py), the command (search/scope_cmd.py) and
``smpemu verdicts``; it lives apart from the search so that none of them
imports another in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smpemu.search.scope_enum import Limits, Scn, flushers, scenarios_of_size, to_script

BATCH = 16  # scenarios per work item


@dataclass(frozen=True)
class ScopeSettings:
    policy: str
    scope: int
    bound: int = 1
    max_flushers: int | None = None
    memory_model: str = "native"
    requests: str = "modern"
    notifier: str = "2012"
    jobs: int = 1
    timeout: float | None = None
    scheduler: str | None = None
    vcpus: int = 3  # actors: vCPU0 (maps the start's pages) and up to vcpus - 1 vCPUs caching U
    hosts: int = 2  # host processes
    pages: int = 2  # start states of up to this many pages
    procs: int = 2  # 2: the two-process start too (scope_enum.reused_letters), 1: not


@dataclass
class ScopeViolation:
    kind: str
    scenario: dict  # script format (with setup and bound): check --scenario FILE, run --workload script
    ops: int
    preemptions: int
    steps: int
    replay_doc: dict
    described: str = ""  # one line: the programs
    rendered: str = ""  # the counterexample as CPU columns
    violation: dict = field(default_factory=dict)  # kind, vcpu, slot, gfn, pfn
    cost: str = ""  # as the diagram marks them: "1 preemption", "0 preemptions, 1 drain" (harness/explain.py)
    drains: int = 0  # store-buffer drains the counterexample's diagram marks (in order or not)
    # The preemptions the diagram marks.  Not ``preemptions - drains``: ``preemptions`` is the explorer's
    # level, where only a drain out of order costs one, so a drain in order would make that negative.
    marked_preemptions: int | None = None


@dataclass
class ScopeResult:
    settings: ScopeSettings
    complete: bool
    scenarios: int  # explored (complete ones)
    total: int  # in the scope (after reduction and the --max-flushers filter)
    schedules: int
    elapsed: float
    violation: ScopeViolation | None
    incomplete_reason: str | None = None
    sizes: list = field(default_factory=list)  # per size: scenarios, schedules, seconds, violations
    explored_ops: int = 0  # every scenario of up to this many ops was explored (complete)
    interrupted: str | None = None  # "SIGINT" or "SIGTERM": the search was stopped (incomplete)


def zap_flushes(policy: str, memory_model: str = "native", requests: str = "modern", notifier: str = "2012") -> bool:
    """Does the policy's zap flush?  Measured, not looked up: vCPU0 invlpgs a page
    vCPU1 caches, alone (one schedule), and we look for a flush's requests."""
    from smpemu.kvm import events as ev
    from smpemu.search.scenarios import Scenario
    from smpemu.search.world import Proto

    s = Scn(START_PROBE, (("invlpg", ("u", 0, 0)),), ((),), ())
    script = to_script(s)
    proto = Proto(Scenario("probe", script, 2, 1), policy, memory_model, requests, notifier)
    events = []
    setup = proto.setup_prefix()
    w = proto.world(trace=events)
    try:
        for ch in setup:
            w.step(ch)
        n0 = len(events)
        while w.live[0] and 0 in w.enabled_actors():
            w.step(proto.steps[0])
    finally:
        w.close()
    return any(code in ("flush_sent", ev.FLUSH_SENT) for (_, code, *_r) in events[n0:])


from smpemu.search.scope_enum import Start  # noqa: E402

START_PROBE = Start(1, 0)


def scope_scenarios(st: ScopeSettings, size: int, zf: bool) -> list[Scn]:
    out = []
    for s in scenarios_of_size(size, Limits(st.vcpus, st.hosts, st.pages, st.procs)):
        if st.max_flushers is not None and flushers(s, zf) > st.max_flushers:
            continue
        out.append(s)
    return out


__all__ = ["ScopeSettings", "ScopeViolation", "ScopeResult", "zap_flushes", "scope_scenarios", "BATCH"]
