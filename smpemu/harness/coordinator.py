"""The coordinator: creates a run's shared objects, starts, pins, stops, gathers.

Why it exists: only one process may own the lifetime of POSIX objects, or a
crash leaks them.  The coordinator creates the arena and every semaphore,
forks N vCPU processes and the host processes (``--reclaimers``, each its
own process running the mmu notifier), releases them together from a
start barrier, watches them (a vCPU that dies or stops answering aborts the
run with the reason), stops them after ``--duration`` or ``--iterations``,
gathers counters, latencies and violations, and unlinks everything on every
exit path, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import time
from dataclasses import dataclass, field

import numpy as np

import workloads
from smpemu.harness import guest_report, hostsched, pinning, resources, trace
from smpemu.harness.router import Router
from smpemu.harness.semaphores import semaphores
from smpemu.kvm import layout as shared
from smpemu.memory.arena import Arena
from smpemu.harness.config import RunConfig
from smpemu.harness.context import RunParams
from smpemu.errors import (
    EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_VIOLATION, UsageError,
)
from smpemu.kvm.guest import GuestLayout
from smpemu.harness.bodies import host_body, vcpu_body
from smpemu.kvm.oracle import gather as gather_violations
from smpemu.kvm.points import POINT_NAMES, points_in_play
from smpemu.kvm.layout import C, CTL_STOP, CTL_T0, COUNTER_NAMES, N_HIST
from smpemu.harness.worker import process_main, read_error
from workloads.script import describe_op
from workloads.script import validate as validate_script

REPORTED = (
    "steps", "invlpg", "faults", "tlb_hits", "tlb_misses", "flush_requests",
    "remote_flushes", "ipis_sent", "ipis_received", "ipis_avoided",
)


@dataclass
class Spec:
    """What every forked process inherits."""

    cfg: RunConfig
    layout: shared.Layout
    buf: object
    sems: dict
    placement: list
    params: RunParams
    guest: GuestLayout


@dataclass
class RunResult:
    config: dict
    vcpus: list = field(default_factory=list)
    host: dict = field(default_factory=dict)
    totals: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)
    aborted: str | None = None
    interrupted: str | None = None
    run_id: str = ""
    routed_ipis: int | None = None  # --ipi-route coordinator: kicks the router delivered
    trace: dict | None = None  # with cfg.trace: the events around the first violation
    schedule: dict | None = None  # under cfg.schedule: how the schedule went (search/baton_loop.py)
    decisions: list | None = None  # under cfg.schedule: [[cpu, point], ...] (replay files)
    points: dict = field(default_factory=dict)  # protocol point -> times reached, every process summed
    skipped: list = field(default_factory=list)  # a script's optional waits that did not end (workloads/script.py)
    pv: dict | None = None  # issue 19: oversubscription, pCPUs, guest flush (harness/guest_report.py)

    @property
    def exit_code(self) -> int:
        if self.totals.get("violations", 0) > 0:
            return EXIT_VIOLATION
        if self.interrupted == "SIGINT":
            return EXIT_SIGINT
        if self.interrupted == "SIGTERM":
            return EXIT_SIGTERM
        if self.aborted:
            return EXIT_ABORTED
        return EXIT_OK

    def as_dict(self) -> dict:
        return {
            "config": self.config,
            "vcpus": self.vcpus,
            "host": self.host,
            "totals": self.totals,
            "violations": self.violations,
            "points": self.points,
            "points_unreached": [p for p, n in self.points.items() if n == 0],
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
            **({"trace": self.trace} if self.trace is not None else {}),
            **({"routed_ipis": self.routed_ipis} if self.routed_ipis is not None else {}),
            **({"schedule": self.schedule} if self.schedule is not None else {}),
            **({"skipped": self.skipped} if self.skipped else {}),
            **(self.pv or {}),
        }


def plan(cfg: RunConfig):
    """Validate, then size the guest and the arena (no side effects)."""
    cfg.validate()
    wl = workloads.get(cfg.workload)
    # a workload may fix the number of guest processes (guest-shootdown: one mm for every vCPU)
    guest = GuestLayout.plan(cfg.vcpus, cfg.guest_pages, cfg.procs or getattr(wl, "GUEST_PROCS", None))
    check = getattr(wl, "validate_config", None)
    if check is not None:  # e.g. the trace workload parses its file here, before any fork
        check(cfg, guest)
    geo = shared.Geometry(
        n_vcpus=cfg.vcpus,
        n_slots=guest.n_slots,
        n_gfns=cfg.guest_pages,
        n_pfns=cfg.guest_pages,
        tlb_size=cfg.tlb_size,
        rmap_size=cfg.rmap_size,
        n_hosts=cfg.reclaimers,
        pv=cfg.host_scheduled or cfg.guest_shootdowns,
    )
    layout = shared.Layout(geo)
    try:
        free = shutil.disk_usage(resources.SHM_DIR).free
    except OSError:
        free = None
    if free is not None and layout.n_bytes > free:
        raise UsageError(
            f"this run needs {layout.n_bytes / 2**20:.1f} MiB of shared memory but "
            f"{resources.SHM_DIR} has {free / 2**20:.1f} MiB free: lower --guest-mem or --vcpus"
        )
    placement = pinning.placement(cfg.vcpus, cfg.pin, pinning.allowed_cores(cfg.cpus))
    return guest, layout, placement


def init_arena(arena: shared.Arena, guest: GuestLayout, dirty: int = 0) -> None:
    """A fresh arena's contents: every host frame free, the guest kernel's direct map of its
    page tables; ``dirty``: the flush flag's or counter's starting value (a script's ``"dirty"``)."""
    g = arena.layout.geometry
    arena.ctl[shared.CTL_FLUSH_DIRTY, 0] = dirty
    arena.free_pfns[:] = np.arange(g.n_pfns)[::-1]
    arena.ctl[shared.CTL_NFREE, 0] = g.n_pfns
    gpte = arena.gpte
    for pt in range(guest.n_pt_gfns):  # the guest kernel's direct map of its page tables
        gpte[guest.pt_slot(pt)] = pt + 1


def _percentiles(hist: np.ndarray) -> dict:
    total = int(hist.sum())
    if total == 0:
        return {"p50": None, "p99": None}
    cum = np.cumsum(hist)
    out = {}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        b = int(np.searchsorted(cum, q * total))
        ns = 2 ** ((b + 0.5) / 8)  # geometric middle of the bucket
        out[name] = round(ns / 1000, 2)
    return out


def _row(counters: np.ndarray, hist: np.ndarray, wall: float) -> dict:
    d = {k: int(counters[C[k]]) for k in REPORTED}
    d["ack_latency_us"] = _percentiles(hist)
    d["violations"] = int(counters[C["violations"]])
    d["wall_s"] = round(wall, 3)
    d["steps_per_s"] = round(d["steps"] / wall, 1) if wall > 0 else 0.0
    for k in ("local_flushes", "cr3_writes", "fault_retries", "reclaims", "range_invalidations", "rmap_evictions",
              "sync_drops", "preempt_exits"):
        d[k] = int(counters[C[k]])
    return d


def _cpus_of(mask: int) -> list[int]:
    return [i for i in range(63) if mask >> i & 1]


class Signals:
    """Turn SIGINT/SIGTERM into a flag (``got``: the signal's name) that a
    loop acts on: the coordinator's monitor, ``smpemu check``'s explorer."""

    def __init__(self):
        self.got: str | None = None
        self.saved = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self.saved[s] = signal.signal(s, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handler(self, signum, frame):
        self.got = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, h in self.saved.items():
            signal.signal(s, h)


def build_spec(res, cfg, guest, layout, placement, params, events=()) -> Spec:
    """Create the arena and every semaphore of a run in ``res``; return the Spec."""
    buf = res.shm("arena", layout.n_bytes)
    arena = Arena(layout, buf)
    init_arena(arena, guest, (cfg.script or {}).get("dirty", 0))
    if cfg.host_scheduled:  # the emulated host scheduler: every pCPU free, the queue empty
        hostsched.init(arena, cfg.pcpus)
    arena.release()
    for s in semaphores(cfg.vcpus, layout.geometry.n_req, events, scheduled=bool(cfg.schedule),
                        host_scheduled=cfg.host_scheduled):
        res.sem(s.name, s.value)
    return Spec(cfg, layout, buf, res.sems, placement, params, guest)


def run(cfg: RunConfig, progress=None, monitor=None) -> RunResult:
    """Run one emulation.  ``progress(fraction, totals_dict)`` is called ~10x/s.

    ``monitor``: the loop that watches the processes instead of ``_monitor``,
    with its signature; a run under ``cfg.schedule`` needs one (the baton
    loop, ``smpemu.search.baton_loop.monitor``, which the search layer passes:
    the harness does not import the layers above it).
    """
    if cfg.schedule and monitor is None:
        raise ValueError("a run under a schedule needs the baton loop: smpemu.search.baton_loop.run(cfg)")
    guest, layout, placement = plan(cfg)
    if cfg.script is not None:
        events = validate_script(cfg.script, cfg.vcpus, guest)
    else:
        events = []
    params = RunParams(requests=cfg.requests, ack_timeout=cfg.ack_timeout, ipi_route=cfg.ipi_route,
                       lock_timeout=cfg.ack_timeout, spin_us=cfg.spin_us, notifier=cfg.notifier)
    result = RunResult(config=cfg.as_dict())
    procs: list = []
    arena = None
    N = cfg.vcpus
    R = layout.geometry.n_req
    name_of = layout.geometry.name_of
    # signal handlers first: a SIGTERM between creating objects and watching
    # the processes must still end in the cleanup below
    with Signals() as sig:
        res = resources.ResourceSet(resources.new_run_id())
        result.run_id = res.run_id
        router = None
        try:
            spec = build_spec(res, cfg, guest, layout, placement, params, events)
            arena = Arena(layout, spec.buf)
            ctx = mp.get_context("fork")
            for idx in range(R):
                body = vcpu_body if idx < N else host_body
                p = ctx.Process(target=process_main, args=(idx, spec, body),
                                name=f"smpemu-{name_of(idx).replace(' ', '')}", daemon=True)
                p.start()
                procs.append(p)
            t0 = time.monotonic()
            arena.ctl[CTL_T0, 0] = time.monotonic_ns()
            for _ in range(R):
                res.sems["start"].release()
            if cfg.ipi_route == "coordinator":
                router = Router(arena, res.sems, N).start()  # a thread: only after every fork
            if monitor is not None:
                wall = monitor(cfg, arena, procs, sig, result, progress, t0, res.sems)
            else:
                wall = _monitor(cfg, arena, procs, sig, result, progress, t0)
            stuck = _stop(arena, procs, cfg, abort=result.aborted is not None or sig.got is not None)
            if stuck and result.aborted is None:
                # a process that never came back (e.g. from a protocol point) ran for
                # an unknown part of the run: its counters are not the run's
                grace = cfg.ack_timeout + STOP_GRACE_S
                result.aborted = (", ".join(f"{'vcpu %d' % i if i < N else 'host'} (pid {procs[i].pid})"
                                            for i in stuck)
                                  + f": did not stop within {grace:g} s of the end of the run (stuck in a "
                                    "protocol point or a wait); killed, so the counters are incomplete")
            if router is not None:
                router.stop()
                result.routed_ipis = router.delivered
            if sig.got and not result.interrupted:
                result.interrupted = sig.got
            _gather(arena, procs, result, wall, cfg)
            if cfg.trace:
                result.trace = _trace_window(arena, cfg, result)
            return result
        finally:
            if router is not None:
                router.stop()  # before the semaphores it posts are closed
            for p in procs:
                if p.is_alive():
                    _kill(p)
            if arena is not None:
                arena.release()
            res.close()


def _kill(p) -> None:
    try:
        os.kill(p.pid, signal.SIGCONT)  # a stopped process cannot die politely
    except ProcessLookupError:
        pass
    p.kill()
    p.join(2)


class _Watchdog:
    """Notices a vCPU that is stopped (SIGSTOP) or makes no progress.

    Requesters notice a vCPU that does not ack; this catches the rest: one that
    nobody happens to wait for.  A halted vCPU is allowed to make no progress.
    """

    def __init__(self, cfg, arena, procs):
        import psutil

        self.cfg = cfg
        self.arena = arena
        self.ps = {}
        for i, p in enumerate(procs):
            try:
                self.ps[i] = psutil.Process(p.pid)
            except psutil.Error:
                pass
        self.last_steps = {}
        self.since = {}
        self.next_check = 0.0

    def check(self, now: float, procs) -> str | None:
        import psutil

        if now < self.next_check:
            return None
        self.next_check = now + 0.25
        limit = self.cfg.ack_timeout
        N = self.cfg.vcpus
        for i, ps in self.ps.items():
            if procs[i].exitcode is not None:
                continue
            who = self.arena.layout.geometry.name_of(i)
            try:
                stopped = ps.status() == psutil.STATUS_STOPPED
            except psutil.Error:
                continue
            key = ("stop", i)
            if stopped:
                t = self.since.setdefault(key, now)
                if now - t > limit:
                    return f"{who} (pid {ps.pid}) is stopped and did not answer for {limit} s"
                continue
            self.since.pop(key, None)
            if i < N and not self.arena.halted[i, 0]:
                steps = int(self.arena.counters[i, C["steps"]])
                if steps != self.last_steps.get(i):
                    self.last_steps[i] = steps
                    self.since[("prog", i)] = now
                elif now - self.since.get(("prog", i), now) > 3 * limit:
                    return f"{who} (pid {ps.pid}) made no progress for {3 * limit} s"
        return None


def _monitor(cfg, arena, procs, sig, result, progress, t0) -> float:
    N = cfg.vcpus
    finite = cfg.iterations is not None or cfg.script is not None
    # the end rule: a script's hosts run a list too; stress's reclaim for ever
    ending = procs if workloads.hosts_finish(cfg.workload) else procs[:N]
    last_progress = 0.0
    dog = _Watchdog(cfg, arena, procs)
    while True:
        sentinels = [p.sentinel for p in procs if p.exitcode is None]
        multiprocessing.connection.wait(sentinels, timeout=0.05)
        now = time.monotonic()
        if sig.got:
            result.interrupted = sig.got
            return now - t0
        for i, p in enumerate(procs):
            if p.exitcode is not None and p.exitcode != 0:
                who = arena.layout.geometry.name_of(i)
                msg = read_error(arena, i)
                if p.exitcode < 0:
                    msg = f"{who} (pid {p.pid}) died ({signal.Signals(-p.exitcode).name})"
                result.aborted = msg or f"{who} (pid {p.pid}) exited with code {p.exitcode}"
                return now - t0
        stuck = dog.check(now, procs)
        if stuck:
            result.aborted = stuck
            return now - t0
        if finite:
            if all(p.exitcode == 0 for p in ending):
                return now - t0
        elif now - t0 >= cfg.duration:
            return now - t0
        if arena.ctl[CTL_STOP, 0]:  # a vCPU stopped the run (stop_on_violation)
            return now - t0
        if progress is not None and now - last_progress > 0.1:
            last_progress = now
            if cfg.iterations:
                steps = arena.counters[:N, C["steps"]]
                frac = float(np.minimum(steps, cfg.iterations).sum()) / (cfg.iterations * N)
            elif cfg.duration:
                frac = (now - t0) / cfg.duration
            else:
                frac = 0.0
            progress(min(frac, 1.0), int(arena.counters[:N, C["steps"]].sum()))


STOP_GRACE_S = 3.0  # beyond the ack timeout, for a process to notice the stop and leave


def _stop(arena, procs, cfg, abort: bool) -> list[int]:
    """Tell every process to stop; kill the ones that do not.  Returns their indices."""
    arena.ctl[CTL_STOP, 0] = -1 if abort else 1
    deadline = time.monotonic() + cfg.ack_timeout + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    stuck = []
    for i, p in enumerate(procs):
        if p.exitcode is None:
            stuck.append(i)
            _kill(p)
    return stuck


def _trace_window(arena, cfg, result: RunResult) -> dict:
    """The merged event rings around the first violation (or the last events)."""
    events = trace.collect(arena)
    t0 = int(arena.ctl[CTL_T0, 0])
    mark = result.violations[0]["time_ns"] if result.violations else None
    v = result.violations[0] if result.violations else None
    win = trace.window(events, mark, before=200) if mark is not None else events[-200:]
    return {
        "violation": v,
        "events": trace.as_json(win, cfg.vcpus, t0, cfg.reclaimers),
        "rendered": trace.render(trace.focus(win, v), cfg.vcpus, t0, mark, n_hosts=cfg.reclaimers),
        "events_recorded": len(events),
    }


def _gather(arena, procs, result: RunResult, wall: float, cfg) -> None:
    script = cfg.script
    g = arena.layout.geometry
    N = g.n_vcpus
    cnt = arena.counters.copy()
    hist = arena.ack_hist.copy()
    for i in range(N):
        d = {"id": i, "pid": procs[i].pid, "cpus": _cpus_of(int(cnt[i, C["cpu"]]))}
        d.update(_row(cnt[i], hist[i], wall))
        result.vcpus.append(d)
    # the host: counters summed over its reclaimers, then one row per reclaimer
    hosts = range(N, g.n_req)
    rows = []
    for k, i in enumerate(hosts):
        rows.append({"id": k, "requester": i, "pid": procs[i].pid, **_row(cnt[i], hist[i], wall)})
    result.host = {"pid": procs[N].pid, "pids": [procs[i].pid for i in hosts],
                   **_row(cnt[N:].sum(axis=0), hist[N:].sum(axis=0), wall), "reclaimers": rows}
    tot = cnt.sum(axis=0)
    result.totals = _row(tot, hist.sum(axis=0), wall)
    result.totals["steps_per_s"] = round(int(cnt[:N, C["steps"]].sum()) / wall, 1) if wall > 0 else 0.0
    result.violations = gather_violations(arena.viol, cnt, int(arena.ctl[CTL_T0, 0]))
    # a script host whose optional wait did not end skipped that op and the rest
    for i in range(N, g.n_req):
        k = int(cnt[i, C["skipped_op"]])
        if k and script is not None:
            result.skipped.append(describe_op(script, N, g.n_hosts, i, k - 1))
    if g.pv:
        guest_report.gather(arena, result, _percentiles)
    # coverage: a point never reached is a window this run never tried
    pts = arena.points.sum(axis=0)
    in_play = points_in_play(bool(g.pv), cfg.guest_flush, cfg.guest_shootdowns)
    result.points = {name: int(pts[i]) for i, name in enumerate(POINT_NAMES) if name in in_play}


__all__ = ["run", "plan", "build_spec", "init_arena", "Spec", "RunResult", "COUNTER_NAMES", "N_HIST"]
