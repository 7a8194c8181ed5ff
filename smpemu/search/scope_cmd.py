"""``smpemu check --scope N``: the command-line side of the scope search.

Why it exists: check_cmd.py hands ``--scope`` runs here (one call,
``scope_main``), so the search's options, progress, output and files are in
one place: the minimal scenario in the script format with its
counterexample as CPU columns, ``--scenario-out`` (a file ``check --scenario``
and ``run --workload script --script`` take as is), ``--replay-out`` (real
processes: ``smpemu replay``), ``--json``.  Exit codes as check's: 3 a
violation, 0 clean and complete, 4 incomplete, 2 a usage error.
"""

from __future__ import annotations

import json
import sys
import time

from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_VIOLATION, UsageError
from smpemu.search.scope import DEFAULT_SCOPE, ScopeResult, ScopeSettings, search_scope

MAX_SCOPE = 8
STATUS_EVERY_S = 5.0  # a status line this often when the output is not a terminal


def parse_scope(value: str) -> int:
    if value == "default":
        return DEFAULT_SCOPE
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--scope must be a number of operations 1..{MAX_SCOPE} or 'default' (got {value!r})") from None
    if not 1 <= n <= MAX_SCOPE:
        raise UsageError(f"--scope must be a number of operations 1..{MAX_SCOPE} or 'default' (got {value!r})")
    return n


def check_settings(st: ScopeSettings) -> None:
    """One clear line for each mistake."""
    from smpemu.harness.config import check_notifier
    from smpemu.kvm import policies
    from smpemu.memory.model import MODELS

    policies.get(st.policy)
    check_notifier(st.notifier)
    if st.memory_model not in MODELS:
        raise UsageError(f"unknown memory model {st.memory_model!r}; choose one of: {', '.join(MODELS)}")
    if st.requests not in ("modern", "2009"):
        raise UsageError(f"unknown --requests {st.requests!r}; choose modern or 2009")
    if not 0 <= st.bound <= 4:
        raise UsageError(f"--bound with --scope must be between 0 and 4 (got {st.bound})")
    if st.max_flushers is not None and not 0 <= st.max_flushers <= 8:
        raise UsageError(f"--max-flushers must be between 0 and 8 (got {st.max_flushers})")
    if not 1 <= st.vcpus <= 4:
        raise UsageError(f"--vcpus with --scope must be between 1 and 4 (got {st.vcpus})")
    if not 0 <= st.hosts <= 3:
        raise UsageError(f"--hosts with --scope must be between 0 and 3 (got {st.hosts})")
    if st.pages not in (1, 2):
        raise UsageError(f"--pages must be 1 or 2 (got {st.pages})")
    if st.procs not in (1, 2):
        raise UsageError(f"--procs must be 1 or 2 (got {st.procs})")
    if st.timeout is not None and not st.timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds (got {st.timeout})")
    if st.scheduler:
        try:
            import distributed  # noqa: F401  (only: is it installed)
        except ImportError:
            raise UsageError('--scheduler needs dask.distributed: pip install "dask[distributed]"') from None


def clean_line(r: ScopeResult) -> str:
    st = r.settings
    return (f"no violation: {r.scenarios:,} scenarios of up to {st.scope} operations, each explored to <= "
            f"{st.bound} preemptions (complete)")


def filters_line(st: ScopeSettings) -> str:
    mf = "any number of" if st.max_flushers is None else f"at most {st.max_flushers}"
    pages = "U" if st.pages == 1 else "U and M"
    reused = "; and the two-process start" if st.procs == 2 and st.vcpus >= 3 else ""
    return (f"scope: every scenario of up to {st.scope} operations (vCPU0 mapping {pages} and up to {st.vcpus - 1} "
            f"vCPUs caching U, up to {st.hosts} host processes{reused}; {mf} actors with an op that can flush under "
            f"{st.policy}), canonical up to renaming (docs/check.md)")


def shown_preemptions(v) -> int:
    """A minimal scenario's preemptions as its counterexample marks them (the explorer's level when
    it has no diagram), for the JSON and the verdicts table alike."""
    return v.preemptions if v.marked_preemptions is None else v.marked_preemptions


def as_dict(r: ScopeResult) -> dict:
    st = r.settings
    v = r.violation
    return {
        "policy": st.policy, "memory_model": st.memory_model, "requests": st.requests, "notifier": st.notifier,
        "scope": st.scope, "bound": st.bound, "max_flushers": st.max_flushers, "vcpus": st.vcpus,
        "hosts": st.hosts, "pages": st.pages, "procs": st.procs, "jobs": st.jobs, "scheduler": st.scheduler,
        "complete": r.complete,
        "incomplete_reason": r.incomplete_reason, "scenarios": r.scenarios, "total": r.total,
        "explored_ops": r.explored_ops, "schedules": r.schedules, "elapsed_s": round(r.elapsed, 3),
        "scenarios_per_s": round(r.scenarios / max(r.elapsed, 1e-9), 1), "sizes": r.sizes,
        "violation": None if v is None else {
            **v.violation, "kind": v.kind, "ops": v.ops, "preemptions": shown_preemptions(v), "drains": v.drains,
            "level": v.preemptions, "steps": v.steps,
            "described": v.described, "scenario": v.scenario},
    }


class _Progress:
    """A rich progress bar in a terminal; a status line every few seconds otherwise."""

    def __init__(self, out):
        self.out = out
        self.bar = None
        self.t_last = time.time()
        self.t0 = time.time()
        if out.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("scenarios"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeElapsedColumn(), console=out, transient=True)
            self.task = self.bar.add_task("", total=None)
            self.bar.start()

    def __call__(self, done, total, size):
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, description=f"(size {size})")
            return
        now = time.time()
        if now - self.t_last >= STATUS_EVERY_S:
            self.t_last = now
            self.out.print(f"status: {done:,} of {total:,} scenarios explored, now those of {size} operations, "
                           f"{now - self.t0:.0f} s", markup=False)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def scope_main(out, st: ScopeSettings, json_out=None, replay_out=None, scenario_out=None) -> int:
    """Run the search, print and write its results; returns the exit code."""
    check_settings(st)
    out.print(f"check: policy {st.policy}, memory model {st.memory_model}, requests {st.requests}, notifier "
              f"{st.notifier}, bound {st.bound}, timeout {st.timeout if st.timeout else 'none'}"
              f"{' s' if st.timeout else ''}, "
              + (f"dask scheduler {st.scheduler}" if st.scheduler else
                 f"{st.jobs} process{'es' if st.jobs > 1 else ''}"), markup=False)
    out.print(filters_line(st), markup=False)
    prog = _Progress(out)
    try:
        r = search_scope(st, prog)
    finally:
        prog.close()
    code = EXIT_OK
    if r.violation is not None:
        v = r.violation
        code = EXIT_VIOLATION
        vv = v.violation
        out.print(f"VIOLATION {v.kind}: vcpu {vv.get('vcpu')} slot {vv.get('slot')} gfn {vv.get('gfn')} pfn "
                  f"{vv.get('pfn')}", markup=False)
        out.print(f"minimal scenario: {v.ops} operations, {v.cost}, {v.steps} steps "
                  f"(every scenario of up to {v.ops - 1} operations is clean; {r.scenarios:,} scenarios explored"
                  f"{'' if r.complete else ', ' + r.incomplete_reason + ': the minimal among those explored'})",
                  markup=False)
        out.print(v.described, markup=False, highlight=False, soft_wrap=True)
        out.print(json.dumps(v.scenario), markup=False, highlight=False, soft_wrap=True)
        out.print(v.rendered, markup=False, highlight=False, soft_wrap=True)
        if scenario_out:
            with open(scenario_out, "w") as f:
                json.dump(v.scenario, f, indent=1)
            out.print(f"scenario file: {scenario_out} (smpemu check --scenario {scenario_out}; smpemu run "
                      f"--workload script --script {scenario_out})", markup=False)
        if replay_out:
            from smpemu.search.replay_file import write_doc

            write_doc(v.replay_doc, replay_out)
            out.print(f"replay file: {replay_out} (smpemu replay {replay_out} runs it on real processes)",
                      markup=False)
    elif r.complete:
        out.print(clean_line(r), markup=False)
    else:
        code = {"SIGINT": 130, "SIGTERM": 143}.get(r.interrupted, EXIT_ABORTED)
        out.print(f"no violation in {r.scenarios:,} of {r.total:,} scenarios, INCOMPLETE: {r.incomplete_reason}",
                  markup=False)
    out.print(f"{r.scenarios:,} scenarios, {r.schedules:,} schedules in {r.elapsed:.1f} s "
              f"({r.scenarios / max(r.elapsed, 1e-9):,.1f} scenarios/s); by size: "
              + ", ".join(f"{s['ops']} ops {s['explored']:,}/{s['scenarios']:,} in {s['seconds']:g} s"
                          for s in r.sizes), markup=False)
    if json_out:
        with open(json_out, "w") as f:
            json.dump(as_dict(r), f, indent=1)
    sys.stdout.flush()
    return code


__all__ = ["scope_main", "parse_scope", "as_dict", "clean_line"]


def scope_options(out, o: dict) -> int:
    """check's options (its ``locals()``) -> ``scope_main``: the one call check_cmd makes."""
    import os

    from smpemu.harness.config import check_writable

    if o["scope"] is None:
        raise UsageError("--max-flushers, --scenario-out, --scheduler, --vcpus, --hosts, --pages and --procs go "
                         "with --scope N")
    if o["scenario"] != "default":
        raise UsageError("--scope explores every small scenario: give --scope or --scenario, not both")
    for path, opt in ((o["json_out"], "--json"), (o["replay_out"], "--replay-out"),
                      (o["scenario_out"], "--scenario-out")):
        if path:
            if opt != "--json" and os.path.exists(path) and not o["force"]:
                raise UsageError(f"{opt} {path}: the file exists; pass --force to overwrite it")
            check_writable(path, opt)
    if o["no_prune"]:
        raise UsageError("--no-prune does not go with --scope")
    st = ScopeSettings(o["policy"], parse_scope(o["scope"]), 1 if o["bound"] is None else o["bound"],
                       o["max_flushers"], o["memory_model"], o["requests"], o["notifier"], o["jobs"], o["timeout"],
                       o["scheduler"], o["vcpus"], o["hosts"], o["pages"], o["procs"])
    return scope_main(out, st, o["json_out"], o["replay_out"], o["scenario_out"])
