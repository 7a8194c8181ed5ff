"""The body of every forked process: a vCPU or the host.

Why it exists: both kinds of process set themselves up the same way (parent
death signal, pinning, SIGINT ignored so the coordinator alone orchestrates a
Ctrl-C, views over the inherited arena, a memory model, the start barrier)
and report the same way (counters, latency histogram, error text).
"""

from __future__ import annotations

import ctypes
import math
import os
import random
import signal
import sys
import traceback

import numpy as np

from smpemu import memory
from smpemu.kvm import policies
from smpemu.harness.baton import Baton
from smpemu.harness.context import ProcContext
from smpemu.harness.semaphores import atomic_stripes
from smpemu.harness.trace import Tracer
from smpemu.errors import AbortError, EXIT_ABORTED, EXIT_INTERNAL
from smpemu.kvm.oracle import Oracle
from smpemu.kvm.points import Points
from smpemu.kvm.layout import C, N_HIST
from smpemu.memory.arena import Arena
from smpemu.kvm.vcpu import StopRun

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def die_with_parent(name: str) -> None:
    """SIGKILL us when our parent (the coordinator, or check's explorer) dies, and name us (``ps -o comm``)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))
    except OSError:
        pass  # we also poll getppid() in check_alive()


def hist_bucket(ns: int) -> int:
    return min(N_HIST - 1, int(math.log2(max(ns, 1)) * 8))


def write_error(arena: Arena, idx: int, text: str) -> None:
    raw = text.encode()[: arena.errmsg.shape[1] * 8 - 1]
    buf = np.zeros(arena.errmsg.shape[1] * 8, dtype=np.uint8)
    buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    arena.errmsg[idx, :] = buf.view(np.int64)


def read_error(arena: Arena, idx: int) -> str:
    return arena.errmsg[idx].tobytes().split(b"\0", 1)[0].decode(errors="replace")


def make_context(idx: int, spec, arena=None, waits=None, oracle=Oracle) -> ProcContext:
    """Process ``idx``'s context (``spec``: coordinator.Spec).

    The in-process explorer (``search.world``) builds its actors' contexts
    here too, passing what differs: ``arena`` (over its tracked words),
    ``waits`` (a function of the context: its baton) and the ``oracle``
    class (one that records its scans)."""
    if arena is None:
        arena = Arena(spec.layout, spec.buf)
    cfg = spec.cfg
    sems = spec.sems
    mm = memory.make_model(cfg.memory_model, arena.words, sems[f"fence{idx}"], atomic_stripes(sems),
                           spec.layout.is_atomic, seed=cfg.seed * 1009 + idx, lock_timeout=spec.params.lock_timeout)
    if cfg.schedule and cfg.controlled_drains and hasattr(mm, "controlled"):
        mm.controlled()  # drains are decisions of the schedule (replay format 2)
    ctx = ProcContext(idx, arena, mm, sems, spec.params)
    ctx.rng = random.Random(cfg.seed * 7919 + idx)
    ctx.oracle = oracle(ctx)
    if cfg.schedule:
        ctx.waits = waits(ctx) if waits is not None else Baton(ctx, spec)  # one process at a time: every wait parks
    start_run(ctx, spec)
    return ctx


def start_run(ctx, spec, policy=None, trace=None) -> None:
    """What a context holds for one run, from its start: written once, for a
    process (one run: make_context) and for the explorer's actors (reset per
    schedule).  ``policy``: a Policy class (default: the configuration's);
    ``trace``: the event recorder (default: the shared ring when tracing)."""
    cfg = spec.cfg
    ctx.reset()
    ctx.mm.reset()
    ctx.policy = policy() if policy is not None else policies.get(cfg.policy)
    p = ctx.points
    if p is None or p.arms:  # else as good as new: nothing armed, no delays under a schedule
        ctx.points = Points(cfg.delays, ctx.rng)
    ctx.oracle.stop_on_violation = cfg.stop_on_violation
    if trace is None and cfg.trace:
        trace = Tracer(ctx.arena, ctx.pid_index)
    ctx.trace = trace
    if cfg.schedule:
        ctx.points.scheduled()


def process_main(idx: int, spec, body) -> None:
    """Entry point of a forked process; never returns."""
    die_with_parent("smpemu-" + spec.layout.geometry.name_of(idx).replace(" ", ""))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    ctx = None
    try:
        if spec.placement is not None and idx < len(spec.placement):
            os.sched_setaffinity(0, spec.placement[idx])
        ctx = make_context(idx, spec)
        mask = 0
        for c in os.sched_getaffinity(0):
            mask |= 1 << min(c, 62)
        ctx.counters[C["cpu"]] = mask
        spec.sems["start"].acquire(spec.cfg.start_timeout)
        ctx.waits.point(ctx, "start")  # under a schedule: run only when handed the baton
        body(ctx, spec)
    except StopRun:
        pass  # the host, told at a scheduling point that the schedule is over
    except AbortError as e:
        code = EXIT_ABORTED
        if ctx is not None:
            write_error(ctx.arena, idx, str(e))
    except BaseException as e:  # report, never hang the run
        code = EXIT_INTERNAL
        if ctx is not None:
            write_error(ctx.arena, idx, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
    finally:
        if ctx is not None:
            try:
                ctx.mm.drain()
                row = ctx.arena.ack_hist[idx]
                for ns in ctx.lat_ns:
                    row[hist_bucket(ns)] += 1
                ctx.arena.counters[idx, :] = ctx.counters
                ctx.arena.points[idx, :] = ctx.point_counts
            except BaseException:
                pass
            if isinstance(ctx.waits, Baton):
                try:
                    ctx.waits.done()  # hand the baton back for good
                except BaseException:
                    pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
