"""``smpemu check``: explore a scenario's interleavings up to a preemption bound.

Why it exists: ``stress`` and ``--schedule pct`` sample interleavings; a
"no violation" from them covers only what they happened to produce.  This
command runs the explorer (smpemu.search.explore) over a scenario
(smpemu.search.scenarios) and says exactly what it covered: every schedule
with <= K preemptions, or where it stopped.  A violation is printed as its
minimal counterexample (fewest preemptions, then fewest steps, among the
schedules of the level where the first one appeared), as CPU columns, and
can be written as a replay file (format 3) that ``smpemu replay`` runs on
real vCPU processes and POSIX semaphores.

Exit codes: 3 a violation, 0 none and complete, 4 incomplete (the timeout,
or a worker process that died or stopped: the result names it and counts
the work items lost), 130 / 143 interrupted by SIGINT / SIGTERM (what was
explored so far is reported, marked incomplete), 2 a usage error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_VIOLATION, UsageError
from smpemu.harness.config import check_notifier
from smpemu.harness.coordinator import Signals
from smpemu.harness import explain
from smpemu.harness.counterexample import fit, line_width, render_counterexample, term_width
from smpemu.memory.model import MODELS
from smpemu.search.explore import Explorer
from smpemu.search.scenarios import SCENARIOS, USER_BOUND, load_scenario
from smpemu.search.world import Proto
from smpemu.kvm.points import POINT_NAMES, SCHED_POINTS
from smpemu.search.counterexample import _replay_doc, replay_schedule  # noqa: F401 (check_cmd's names)

# the default bound is the scenario's: >= the preemptions every known bug needs on it (docs/check.md)
DEFAULT_TIMEOUT = 150.0


@dataclass
class CheckResult:
    policy: str
    scenario: str
    memory_model: str
    requests: str
    bound: int
    res: object  # explore.Result
    cover: list
    counterexample: dict | None = None  # decisions, rendered, events
    replay: dict | None = None
    extra: dict = field(default_factory=dict)
    jobs: int = 1  # processes that shared the exploration
    notifier: str = "2009"  # the mmu notifier's flush ordering (--notifier)
    guest_flush: str | None = None  # a guest-shootdown scenario's --guest-flush (and --local-flush)
    local_flush: str | None = None

    @property
    def exit_code(self) -> int:
        if self.res.minimal is not None:
            return EXIT_VIOLATION
        if self.res.interrupted:
            return EXIT_SIGINT if self.res.interrupted == "SIGINT" else EXIT_SIGTERM
        return EXIT_OK if self.res.complete else EXIT_ABORTED

    def as_dict(self) -> dict:
        r = self.res
        el = max(r.elapsed_s, 1e-9)
        v = None
        m = r.minimal
        if m is not None:
            v = {k: m.violation.get(k) for k in ("kind", "vcpu", "slot", "gfn", "pfn", "reporter")}
            v.update(schedule=m.schedule, preemptions=m.bound, steps=m.steps,
                     first_schedule=r.first.schedule, first_s=round(r.first.t_s, 3), trace=(self.counterexample or {}).get("events"))
            if "detail" in m.violation:
                v["detail"] = m.violation["detail"]
            tr = (self.counterexample or {}).get("trace")
            if tr is not None:  # the marks as the diagram shows them, and what happened (harness/explain.py)
                p, d, _ = explain.counts(tr)
                v.update(marked_preemptions=p, drains=d, explanation=explain.explain(tr))
        return {
            "policy": self.policy, "scenario": self.scenario, "memory_model": self.memory_model,
            "requests": self.requests, "notifier": self.notifier, "bound": self.bound, "complete": r.complete,
            **({"guest_flush": self.guest_flush, "local_flush": self.local_flush} if self.guest_flush else {}),
            "explored_bound": r.done_bound, "exhausted": r.exhausted,
            "timed_out": r.timed_out, "interrupted": r.interrupted, "lost": r.lost,
            "unexplored_items": r.unexplored,
            "schedules": r.schedules, "pruned": r.pruned, "points": r.points,
            "elapsed_s": round(r.elapsed_s, 3), "cpu_s": round(r.cpu_s, 3), "jobs": self.jobs, "shared_items": r.shared,
            "schedules_per_s": round(r.schedules / el, 1),
            "points_per_cpu_s": round(r.points / max(r.cpu_s, 1e-9), 1),
            "points_per_s": round(r.points / el, 1),
            "points_per_schedule": round(r.points / max(r.schedules, 1), 1),
            "protocol_s": round(r.step_s, 3), "reset_s": round(r.build_s, 3),
            # of the time the processes spent exploring, the part outside the protocol code
            "busy_s": round(r.busy_s, 3),
            "explorer_overhead": round(1 - r.step_s / max(r.busy_s, 1e-9), 3),
            "per_level": r.per_level, "violation": v,
            # a scenario's optional waits that never ended: op -> schedules that ended with it waiting
            "skipped": dict(r.skipped),
            "coverage": {SCHED_POINTS[i]: c for i, c in enumerate(self.cover) if c},
            # protocol points no schedule reached: windows never tried
            "never_reached": [SCHED_POINTS[i] for i, c in enumerate(self.cover)
                              if not c and SCHED_POINTS[i] in POINT_NAMES],
        }


def _check_jobs(jobs) -> None:
    if not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise UsageError(f"--jobs must be between 1 and 256 (got {jobs})")


def check_options(scenario, memory_model, requests, notifier, timeout, bound):
    """Every option check of ``check``, before its header is printed:
    (the scenario, the bound)."""
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r}; choose one of: {', '.join(MODELS)}")
    if requests not in ("modern", "2009"):
        raise UsageError(f"unknown --requests {requests!r}; choose modern or 2009")
    check_notifier(notifier)
    if timeout is not None:
        from smpemu.errors import check_number

        check_number("--timeout", timeout, 0, 7 * 86400.0, lo_open=True)  # finite: the explorer's deadline
    sc = load_scenario(scenario)
    if bound is None:
        bound = sc.bound
    if not isinstance(bound, int) or not 0 <= bound <= 20:
        raise UsageError(f"--bound must be between 0 and 20 (got {bound})")
    return sc, bound


def run_check(policy, scenario: str = "default", memory_model: str = "native", requests: str = "modern",
              bound: int | None = None, timeout: float | None = DEFAULT_TIMEOUT, prune: bool = True,
              max_schedules: int | None = None, jobs: int = 1, notifier: str = "2009",
              guest_flush: str | None = None, local_flush: str = "concurrent") -> CheckResult:
    """Explore; ``policy`` is a policy name or a Policy subclass (mutants).
    ``jobs``: processes sharing each level's work (the result is the same);
    ``notifier``: "2009" (flush after mmu_unlock) or "2012" (before it);
    ``guest_flush``, ``local_flush``: a guest-shootdown scenario's guest
    (kvm/steal.py; default native), whose vCPUs the host may preempt."""
    sc, bound = check_options(scenario, memory_model, requests, notifier, timeout, bound)
    guest_flush, local_flush = guest_of(sc, guest_flush, local_flush)
    _check_jobs(jobs)
    proto = Proto(sc, policy, memory_model, requests, notifier, guest_flush or "native", local_flush or "concurrent")
    pname = policy if isinstance(policy, str) else policy.name
    # SIGINT/SIGTERM stop the exploration between two schedules (or the wait
    # for the workers): what was explored is reported, marked interrupted
    with Signals() as sig:
        setup = proto.setup_prefix()
        ex = Explorer(proto.world, bound, prune=prune, timeout=timeout, max_schedules=max_schedules,
                      prefix=setup, jobs=jobs, counters=proto.cover, interrupted=lambda: sig.got)
        res = ex.run()
        cr = CheckResult(pname, sc.name, memory_model, requests, bound, res, proto.cover, jobs=ex.jobs,
                         notifier=notifier, guest_flush=guest_flush, local_flush=local_flush)
        if res.minimal is not None:
            cr.counterexample = replay_schedule(proto, res.minimal.choices, len(setup))
            cr.replay = _replay_doc(cr, proto, sc)
        if sig.got and not res.interrupted:  # after the exploration: still asked to stop
            res.interrupted, res.complete = sig.got, False
    return cr


def guest_of(sc, guest_flush, local_flush):
    """(--guest-flush, --local-flush) for scenario ``sc``: None, None for a
    scenario with no guest shootdown (refusing them), else the method (default native)."""
    from smpemu.kvm.steal import METHODS
    from smpemu.search.scenarios import uses_shootdowns

    if not uses_shootdowns(sc):
        if guest_flush is not None:
            raise UsageError(f"--guest-flush: scenario {sc.name} has no guest shootdown (try --scenario "
                             f"guest-shootdown)")
        return None, None
    guest_flush = guest_flush or "native"
    if guest_flush not in METHODS:
        raise UsageError(f"unknown --guest-flush {guest_flush!r}; choose one of: {', '.join(METHODS)}")
    if local_flush not in ("first", "concurrent"):
        raise UsageError(f"unknown --local-flush {local_flush!r}; choose first or concurrent")
    return guest_flush, local_flush


def summary_line(cr: CheckResult) -> str:
    r = cr.res
    el = max(r.elapsed_s, 1e-9)
    speed = (f"{r.points:,} points in {r.elapsed_s:.1f} s: {r.points / el:,.0f} points/s, "
             f"{r.schedules / el:,.1f} schedules/s, {r.points / max(r.schedules, 1):.1f} points/schedule, "
             f"protocol code {r.step_s / max(r.busy_s, 1e-9):.0%} of the exploring time; CPU {r.cpu_s:.1f} s"
             f"{f' in {cr.jobs} processes' if cr.jobs > 1 else ''}: "
             f"{r.points / max(r.cpu_s, 1e-9):,.0f} points per CPU second")
    if r.minimal is not None:
        m = r.minimal
        done = "" if r.complete else f" ({_stopped_text(r)}: the minimal among those explored)"
        tr = (cr.counterexample or {}).get("trace")
        cost = explain.counts_text(tr) if tr is not None else f"{m.bound} preemptions"  # as the diagram marks them
        return (f"VIOLATION {m.violation['kind']}: first at schedule {r.first.schedule}, bound {r.first.bound}; "
                f"minimal counterexample: schedule {m.schedule}, {cost}, {m.steps} steps{done}"
                f"\n{speed}")
    skipped = "".join(f"\nskipped: {what} (an optional wait that did not end, and the ops after it) in "
                      f"{n:,} of the schedules" for what, n in sorted(r.skipped.items()))
    if r.complete:
        extra = (f"; no schedule needs more than {r.done_bound} preemptions" if r.exhausted and r.done_bound < cr.bound
                 else "")
        return (f"no violation: {r.schedules:,} schedules (+{r.pruned:,} pruned), every schedule with <= "
                f"{cr.bound} preemptions explored (complete{extra}){skipped}\n{speed}")
    covered = (f"every schedule with <= {r.done_bound} preemptions explored" if r.done_bound >= 0
               else "not even bound 0 finished")
    return f"no violation in {r.schedules:,} schedules, {_stopped_text(r)} ({covered}){skipped}\n{speed}"


def _stopped_text(r) -> str:
    """Why an exploration (explore.Result) stopped before it was complete, and what it lost."""
    if r.interrupted:
        why = f"INTERRUPTED ({r.interrupted}) at bound {r.level}"
    elif r.timed_out:
        why = f"INCOMPLETE: timeout at bound {r.level}"
    else:
        return f"INCOMPLETE: {r.lost}"
    return f"{why}; {r.lost}" if r.lost else why


def register(app, out, err, guard) -> None:
    import typer

    @app.command("check", epilog="Examples:\n\n" + "\n\n".join((
        "# the seed's race: v3 loses a flush (every interleaving of 2 preemptions)\n"
        "smpemu check --policy deferred-v3 --scenario one-flusher",
        "# v4 holds on the same scenario, at the same bound\n"
        "smpemu check --policy deferred-v4 --scenario one-flusher",
        "# keep v3's counterexample as a replay file, then run it on real processes\n"
        "smpemu check --policy deferred-v3 --scenario one-flusher --replay-out v3.json\n"
        "smpemu replay v3.json",
    )))
    @guard
    def check(
        policy: Optional[str] = typer.Option(None, help="Flush policy (smpemu list; default deferred-v4, "
                                             "mmu-lock for a guest-shootdown scenario: docs/check.md)."),
        scenario: Optional[str] = typer.Option(None, help=" | ".join(SCENARIOS) + " | FILE.json (script format; "
                                               "default: default, guest-shootdown with --guest-flush)."),
        guest_flush: Optional[str] = typer.Option(None, help="A guest-shootdown scenario's TLB shootdowns: native | "
                                                  "pv | pv-writeback | pv-overwrite | pv-no-sync (kvm/steal.py)."),
        local_flush: str = typer.Option("concurrent", help="The initiator's own flush: first (<= 5.12) | "
                                        "concurrent (5.13+, 4ce94eabac16)."),
        memory_model: str = typer.Option("native", help="native | tso | relaxed (drains explored)."),
        requests: str = typer.Option("modern", help="modern | 2009 request semantics."),
        notifier: str = typer.Option("2009", help="2009 (the mmu notifier flushes after mmu_unlock) | 2012 (before "
                                     "it, 565f3be21746)."),
        bound: Optional[int] = typer.Option(None, help="Explore every schedule with at most this many preemptions "
                                            "(default: the scenario's, docs/check.md: "
                                            + ", ".join(f"{n} {d['bound']}" for n, d in SCENARIOS.items())
                                            + f", a file {USER_BOUND})."),
        timeout: Optional[float] = typer.Option(None, help=f"Give up (exit 4, INCOMPLETE) after this many seconds "
                                                f"(default {DEFAULT_TIMEOUT:g}; with --scope: none)."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write the results here."),
        replay_out: Optional[str] = typer.Option(None, "--replay-out",
                                                 help="Write the counterexample as a replay file (smpemu replay)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing --replay-out file."),
        no_prune: bool = typer.Option(False, "--no-prune", help="Explore without sleep sets (slower, same verdict)."),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                           help="Processes sharing each bound level's schedules (default: the "
                                                "usable CPUs; the result is the same for any number)."),
        full: bool = typer.Option(False, "--full", help="Print the counterexample's every decision, one column "
                                  "per CPU (default: the steps that lead to the violation, and what happened)."),
        scope: Optional[str] = typer.Option(None, "--scope", help="Explore every scenario of up to N operations "
                                            "instead of one scenario ('default': the default scope; docs/check.md)."),
        max_flushers: Optional[int] = typer.Option(None, "--max-flushers", help="With --scope: only scenarios in "
                                                   "which at most K actors have an op that can flush."),
        scenario_out: Optional[str] = typer.Option(None, "--scenario-out", help="With --scope: write the minimal "
                                                   "scenario (script format) here."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="With --scope: run on this dask "
                                                "scheduler (host:port) instead of --jobs processes."),
        vcpus: int = typer.Option(3, "--vcpus", help="With --scope: at most this many vCPUs."),
        hosts: int = typer.Option(2, "--hosts", help="With --scope: at most this many host processes."),
        pages: int = typer.Option(2, "--pages", help="With --scope: start states of up to this many pages "
                                  "(1: U; 2: U and M)."),
        procs: int = typer.Option(2, "--procs", help="With --scope: 2 adds the two-process start (a frame "
                                  "reused as a page table while a vCPU caches it writable; needs 3 vCPUs), "
                                  "1 leaves it out."),
    ):
        """Explore a scenario's interleavings systematically, up to a preemption bound."""
        from smpemu.harness.outputs import check_new_file

        if replay_out:  # as stress's --replay-out
            check_new_file(replay_out, "--replay-out", force)
        if json_out:
            check_new_file(json_out, "--json")
        from smpemu.kvm import policies

        if scenario is None:
            scenario = "guest-shootdown" if guest_flush is not None else "default"
        sc = load_scenario(scenario)
        gf, lf = guest_of(sc, guest_flush, local_flush)
        if policy is None:  # eager masks pv-writeback and pv-overwrite (docs/check.md)
            policy = "mmu-lock" if gf else "deferred-v4"
        policies.get(policy)
        check_notifier(notifier)
        if jobs is None:
            jobs = len(os.sched_getaffinity(0))
        _check_jobs(jobs)
        from smpemu.search.scope_types import ScopeSettings as Scope

        shape = (vcpus, hosts, pages, procs) != (Scope.vcpus, Scope.hosts, Scope.pages, Scope.procs)  # any given
        if scope is not None or scenario_out or max_flushers is not None or scheduler or shape:
            from smpemu.search.scope_cmd import scope_options

            raise typer.Exit(scope_options(out, locals()))
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        sc, bound = check_options(scenario, memory_model, requests, notifier, timeout, bound)
        # the counterexample fits term_width() (COLUMNS, the terminal's, else 80); the other lines are
        # wrapped to COLUMNS or the terminal's, and stay whole in a pipe (logs and scripts read them)
        width, lw = term_width(), line_width()
        out.print(fit(f"check: policy {policy}, scenario {sc.name} ({sc.n_vcpus} vCPUs, {sc.n_hosts} host "
                      f"process{'es' if sc.n_hosts > 1 else ''}), memory model {memory_model}, requests {requests}, "
                      f"notifier {notifier}, " + (f"guest flush {gf}, local flush {lf}, " if gf else "")
                      + f"bound {bound}, timeout {timeout:g} s, {jobs} process{'es' if jobs > 1 else ''}", lw),
                  markup=False, soft_wrap=True)
        cr = run_check(policy, scenario, memory_model, requests, bound, timeout, prune=not no_prune, jobs=jobs,
                       notifier=notifier, guest_flush=guest_flush, local_flush=local_flush)
        if cr.counterexample is not None:
            m = cr.res.minimal
            v = m.violation
            out.print(fit(f"VIOLATION {v['kind']}: vcpu {v['vcpu']} slot {v['slot']} gfn {v['gfn']} "
                                  f"pfn {v['pfn']}" + (f" ({v['detail']})" if "detail" in v else ""), lw),
                      markup=False, soft_wrap=True)
            ce = cr.counterexample
            out.print(fit(f"minimal counterexample ({explain.counts_text(ce['trace'])}, {m.steps} steps):",
                                  lw), markup=False, soft_wrap=True)
            out.print(ce["rendered_full"] if full else render_counterexample(ce["trace"], width),
                      markup=False, highlight=False, soft_wrap=True)
            if replay_out:
                from smpemu.search.replay_file import write_doc

                if write_doc(cr.replay, replay_out):
                    out.print(fit(f"replay file: {replay_out} (smpemu replay {replay_out} runs it on real "
                                  "processes)", lw), markup=False, soft_wrap=True)
        out.print(fit(summary_line(cr), lw), markup=False, highlight=False, soft_wrap=True)
        if json_out:
            from smpemu.harness.outputs import write_json_file

            write_json_file(cr.as_dict(), json_out, indent=1)
        raise typer.Exit(cr.exit_code)


__all__ = ["run_check", "CheckResult", "replay_schedule", "summary_line", "register"]
