"""Scenarios for ``smpemu check``, and the in-process world that runs them.

Why it exists: the explorer (smpemu.search.explore) needs a world it can
rebuild in microseconds and step one scheduling point at a time, running
the *same* protocol code as the real processes: the vCPU and host bodies of
smpemu.harness.bodies, the script interpreter of workloads/script.py, the
kvm mmu, policies, ipi, vcpu and oracle, the memory models (store buffers in
controlled mode), the kvm arena layout over a bytearray.  Each actor (vCPU
or host process) is a greenlet; its ``ctx.waits`` (the one wait interface,
smpemu.kvm.waits) is the baton's own implementation (smpemu.harness.baton)
with one method replaced: ``park`` switches to the explorer instead of
posting a semaphore, so every wait parks with the baton's wait condition and
a schedule found here is a decision list the baton replays on real
processes.
In-process stand-ins replace the POSIX semaphores (a counter each; the
explorer never blocks in one).  Every shared access is recorded (a tracked
view of the arena words, the semaphores, the TLB mirrors and the oracle's
scans) so the explorer knows which steps commute.

Speed (every schedule re-executes its whole prefix, so per-world and
per-step costs are what ``smpemu check`` spends its time on): the actor
greenlets are pooled across worlds and started when first chosen, the
memory models and the contexts are reset rather than rebuilt, and a
recorded prefix runs with one switch per run of one actor's choices
(``World.replay``).  None of it changes what runs or what is recorded;
``bench/check_speed.py`` measures it.

Time: the oracle's write-protect check compares a TLB fill's timestamp with
the sync's.  Here both come from a logical clock (fills read it, syncs
advance it, as footprints too), so runs are deterministic and two
executions of equivalent schedules end in the same state.

A scenario is a script (workloads/script.py format, ``hosts`` for several
host processes); docs/check.md lists each one's actors and operations.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import greenlet
import posix_ipc

from smpemu.errors import AbortError, UsageError, read_json_object
from smpemu.harness.bodies import vcpu_body
from smpemu.harness.config import RunConfig
from smpemu.harness.context import ProcContext, RunParams
from smpemu.harness.coordinator import _init_arena
from smpemu.kvm import mmu as kmmu
from smpemu.kvm import oracle as koracle
from smpemu.kvm import policies
from smpemu.kvm import vcpu as kvcpu
from smpemu.kvm.guest import GuestLayout
from smpemu.kvm.layout import C, Geometry, Layout
from smpemu.kvm.mmu import MMU
from smpemu.kvm.oracle import FIELDS as VIOL_FIELDS, KIND_NAMES, Oracle
from smpemu.kvm.points import Points
from smpemu.memory import make_model
from smpemu.memory.arena import Arena
from smpemu.harness.baton import DRAIN, K_RANGE, K_SEM, K_TURN, K_WORDS, Baton, SchedEnd
from smpemu.kvm.points import SCHED_POINTS
from smpemu.kvm.vcpu import StopRun
from workloads.script import host_count, host_scripts, run_host
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
    setup = script.get("setup", {})
    if not isinstance(setup, dict) or not all(str(k) in cpus and isinstance(v, int) and 0 <= v <= len(cpus[str(k)])
                                              for k, v in setup.items()):
        raise UsageError(f"scenario {name}: 'setup' maps a vCPU to how many of its first ops run before "
                         f"exploration")
    return sc


def run_config(sc: Scenario, policy: str, memory_model: str, requests: str, notifier: str = "2009") -> RunConfig:
    """The RunConfig the baton replays a counterexample of ``sc`` with."""
    return RunConfig(reclaimers=sc.n_hosts, vcpus=sc.n_vcpus, workload="script", policy=policy, pin="none", memory_model=memory_model,
                     requests=requests, notifier=notifier, guest_mem="256K", tlb_size=8, rmap_size=4,
                     procs=sc.script.get("procs", 1), seed=1,
                     script=sc.script, schedule="replay", sched_steps=1, trace=True,
                     stop_on_violation=True, controlled_drains=True, ack_timeout=10.0)


# -- tracked shared state -----------------------------------------------------------
CLOCK = -1  # pseudo-word of the logical clock
_NOTHING = frozenset()  # the watched words of an actor that is not waiting
_START = SCHED_POINTS.index("start")
_I_VIOL = C["violations"]


class _Words:
    """The arena words, recording every access into the running step's footprint."""

    __slots__ = ("mv", "r", "w")

    def __init__(self, mv):
        self.mv = mv
        self.r = set()
        self.w = set()

    def __getitem__(self, a):
        self.r.add(a)
        return self.mv[a]

    def __setitem__(self, a, v):
        self.w.add(a)
        self.mv[a] = v

    def __len__(self):
        return len(self.mv)


class _Sem:
    """A counting semaphore stand-in: never blocks (the explorer decides who
    runs); its pseudo-word ``addr`` is recorded (the semaphores no footprint
    needs are _LocalSem)."""

    __slots__ = ("v", "addr", "tw")

    def __init__(self, v, addr, tw):
        self.v = v
        self.addr = addr
        self.tw = tw

    @property
    def value(self):
        self.tw.r.add(self.addr)
        return self.v

    def acquire(self, timeout=None):
        tw = self.tw
        tw.r.add(self.addr)
        if self.v > 0:
            tw.w.add(self.addr)
            self.v -= 1
            return
        raise posix_ipc.BusyError("explorer: semaphore taken")

    def release(self):
        self.tw.w.add(self.addr)
        self.v += 1


class _LocalSem:
    """A semaphore no wait condition watches and no footprint records (the
    mb() fences, the atomic-word lock stripe: ``addr`` None): as _Sem, without
    the recording tests (the memory models take one at every barrier and
    atomic store)."""

    __slots__ = ("v",)
    addr = None

    def __init__(self, v):
        self.v = v

    @property
    def value(self):
        return self.v

    def acquire(self, timeout=None):
        if self.v > 0:
            self.v -= 1
            return
        raise posix_ipc.BusyError("explorer: semaphore taken")

    def release(self):
        self.v += 1


class _Row:
    """A TLB mirror row: writes recorded, then done on the numpy row."""

    __slots__ = ("row", "base", "tw")

    def __init__(self, row, base, tw):
        self.row = row
        self.base = base
        self.tw = tw

    def __setitem__(self, i, v):
        if isinstance(i, slice):
            self.tw.w.update(range(self.base, self.base + len(self.row)))
        else:
            self.tw.w.add(self.base + i)
        self.row[i] = v

    def __getitem__(self, i):
        self.tw.r.add(self.base + i)
        return self.row[i]


class _Mirror:
    __slots__ = ("arr", "field", "tw", "rows")

    def __init__(self, arr, field, tw):
        self.arr = arr
        self.field = field
        self.tw = tw
        self.rows = {}  # v -> its _Row (stateless): every World's build_vcpu asks for it

    def __getitem__(self, v):
        row = self.rows.get(v)
        if row is None:
            row = self.rows[v] = _Row(self.arr[v], self.field.addr(v, 0), self.tw)
        return row


class _Oracle(Oracle):
    """The oracle, its scan at host free recorded as reads of what it looks at."""

    def __init__(self, ctx, scanned):
        super().__init__(ctx)
        self.scanned = scanned

    def check_free(self, pfn, gfn):
        self.ctx.W.r.update(self.scanned)
        super().check_free(pfn, gfn)


class _Clock:
    """A logical clock standing in for ``time`` in the kvm modules: fills read
    it, syncs advance it (t_wp), the oracle's record times are 0."""

    def __init__(self, real, kind):
        self.real = real
        self.kind = kind
        self.world = None

    def __getattr__(self, name):
        return getattr(self.real, name)

    def monotonic_ns(self):
        w = self.world
        if w is None:
            return self.real.monotonic_ns()
        if self.kind == "fill":
            w.tw.r.add(CLOCK)
            return 2 * w.clock + 1
        if self.kind == "sync":
            w.tw.w.add(CLOCK)
            w.clock += 1
            return 2 * w.clock
        return 0


_CLOCKS = {kvcpu: _Clock(kvcpu.time, "fill"), kmmu: _Clock(kmmu.time, "sync"),
           koracle: _Clock(koracle.time, "record")}


@contextmanager
def logical_time():
    """Install the logical clock in the kvm modules (restored on exit)."""
    for mod, clk in _CLOCKS.items():
        mod.time = clk
    try:
        yield
    finally:
        for mod, clk in _CLOCKS.items():
            mod.time = clk.real
            clk.world = None


class _Ops(list):
    """A script op list that tells the world which op its actor is at (setup)."""

    def __init__(self, ops, progress, idx):
        super().__init__(ops)
        self.progress = progress
        self.idx = idx

    def __iter__(self):
        for i, op in enumerate(list.__iter__(self)):
            self.progress[self.idx] = i
            yield op
        self.progress[self.idx] = len(self)


class _XSched(Baton):
    """The baton's process side, parking into the explorer instead of a semaphore."""

    def __init__(self, ctx, idx, every, sem_id):
        self.world = None  # the World running now (one _XSched per actor of a Proto)
        self.idx = idx
        self.W = ctx.arena.words
        self.step_every = every
        self.n = 0
        self.sem_id = sem_id  # id -> the semaphore object itself (park gets the object)

    def park(self, ctx, point, kind=0, w0=-1, w1=-1, sem=-1, rbase=0, rstride=0, rcount=0):
        w = self.world
        i = self.idx
        w.point[i] = point
        w.cover[point] += 1
        if kind:
            mv = w.mv
            rng = [(rbase + j * rstride, mv[rbase + j * rstride]) for j in range(rcount)] if kind & K_RANGE else []
            semo = sem if kind & K_SEM else None
            w.cond[i] = (kind, w0, mv[w0] if w0 >= 0 else 0, w1, mv[w1] if w1 >= 0 else 0, semo, rng)
            fp = {a for a, _ in rng} if rng else set()
            if w0 >= 0:
                fp.add(w0)
            if w1 >= 0:
                fp.add(w1)
            if semo is not None and semo.addr is not None:
                fp.add(semo.addr)
            w.cond_set[i] = frozenset(fp)
            if kind & K_TURN:
                w.history = True
        else:  # a plain scheduling point: runnable at once
            w.cond[i] = None
            w.cond_set[i] = _NOTHING
        if w.budget:  # World.replay: this actor's next step follows at once
            w.budget -= 1
        else:
            w.main.switch()
        if w.ending:
            ctx.trace = None
            raise SchedEnd()

    def start(self, ctx) -> None:
        """The baton's start park, already made: World.__init__ recorded every
        actor at "start" (what a park with no wait condition records) and
        switches to the actor's greenlet only when the explorer first chooses
        it, whose body then runs from here to its next scheduling point.
        (Starting every greenlet eagerly cost two switches per actor per
        schedule, and two more to end the ones never chosen.)"""

    def done(self) -> None:
        pass


_DONE = "done"  # what a worker greenlet reports when its actor's body has returned


def _new_worker():
    """A worker greenlet, started and waiting for its first job (a job is
    never passed as the start arguments: the greenlet would keep those, and
    through them the world, for as long as it lives)."""
    g = greenlet.greenlet(_worker)
    g.switch()
    return g


def _worker():
    """An actor greenlet, reused across worlds: run one body per job
    ``(body, main)``, then report to ``main`` and wait for the next job.
    Reports: ``()`` (parked: _XSched.park), _DONE, or ("raised", exc)."""
    job = greenlet.getcurrent().parent.switch()  # idle until the first job
    while True:
        body, main = job
        job = None
        try:
            body()
            out = _DONE
        except greenlet.GreenletExit:
            raise  # the pool is being collected
        except BaseException as e:  # handed to the world's thread of control
            out = ("raised", e)
        # an idle worker holds nothing of the world it ran (the body's closure
        # holds the world, the world its Proto, the Proto this greenlet): the
        # Proto and its pool are freed by reference counting
        body = None
        job = main.switch(out)
        out = None


class World:
    """One execution of a scenario: reset the shared objects, then step
    choices (explore.Explorer).  The arena buffer, the semaphores and the
    contexts live in the Proto and are reset, not rebuilt, per execution."""

    def __init__(self, proto: "Proto", trace=None):
        self.p = p = proto
        self.mv = p.mv
        p.restore()
        self.tw = tw = p.tw
        tw.r = set()
        tw.w = set()
        self.arena = p.arena
        for clk in _CLOCKS.values():
            clk.world = self
        self.clock = 0
        self.n = n = p.n
        p.progress[:] = [0] * n
        self.N = p.N
        for s, v in zip(p.sems.values(), p.sem_init):
            s.v = v
        self.sem_id = p.sem_id
        self.cond = [None] * n
        self.cond_set = [_NOTHING] * n
        self.live = [True] * n
        self.cover = p.cover
        self.history = False
        self.ending = False
        self.budget = 0  # parks the running actor passes without switching (replay)
        self.violation = None
        self.last = -1
        self.trace = trace
        self._en = None
        self.main = greenlet.getcurrent()
        self.spec = p.spec
        self.ctxs = p.ctxs
        self.mms = p.buffered
        # actor greenlets come from the Proto's pool: creating, starting and
        # killing a greenlet costs ~18 us, five per world (see _worker)
        self.greenlets = [p.idle.pop() if p.idle else _new_worker() for _ in range(n)]
        self.jobs = []  # an actor's (body, main) until its greenlet is first switched to
        ppid = os.getppid()  # check_alive's "coordinator died" test: here a forked explorer worker's parent
        for idx, ctx in enumerate(p.ctxs):
            ctx.parent = ppid
            mm = p.models[idx]
            if p.empty[idx] is not None:
                mm.restore(p.empty[idx])
            mm._fence_up = False  # the fence semaphores are reset above
            ctx.mm = mm
            ctx.policy = p.policy_cls()
            if ctx.points is None or ctx.points.arms:  # else as good as new: no delays, nothing armed
                ctx.points = Points({}, None)
            ctx.counters.fill(0)
            ctx.my_seq = [0] * p.N
            ctx.lat_ns = []
            ctx.handle_requests = None
            ctx.trace = None
            xs = ctx.waits = p.xscheds[idx]
            xs.world = self
            ctx.points.scheduled()
            if trace is not None:
                ctx.trace = (lambda i: lambda code, a=0, b=0: trace.append((i, code, a, b)))(idx)
            self.jobs.append((self._body(idx, ctx), self.main))
        # every actor is parked at its first scheduling point ("start"), as its
        # start park would record it (_XSched.start: started lazily)
        self.point = [_START] * n
        self.cover[_START] += n

    def _body(self, idx, ctx):
        def body():
            try:
                ctx.waits.start(ctx)
                if idx < self.N:
                    vcpu_body(ctx, self.spec)
                else:
                    run_host(ctx, MMU(ctx, self.p.guest), self.spec, idx - self.N)
            except StopRun:
                pass
            finally:
                if not self.ending:
                    ctx.mm.drain()  # as a process does before it exits
        return body

    def _run(self, idx) -> None:
        job = self.jobs[idx]
        if job is None:
            self._after(idx, self.greenlets[idx].switch())
        else:  # its first step: the greenlet starts the actor's body
            self.jobs[idx] = None
            self._after(idx, self.greenlets[idx].switch(job))

    def _after(self, idx, r) -> None:
        """The actor switched back: parked (``()``, what an argumentless
        switch delivers), or its body ended (_worker)."""
        if r:
            self.live[idx] = False
            self.cond[idx] = None
            self.cond_set[idx] = _NOTHING
            if r is not _DONE:
                raise r[1]  # the body raised: as if the greenlet had died of it

    # -- the explorer's interface ---------------------------------------------------------
    def runnable(self, p) -> bool:
        if not self.live[p]:
            return False
        c = self.cond[p]
        if c is None:
            return True
        kind, w0, s0, w1, s1, sem, rng = c
        mv = self.mv
        if kind & K_WORDS and ((w0 >= 0 and mv[w0] != s0) or (w1 >= 0 and mv[w1] != s1)):
            return True
        if kind & K_SEM and sem.v > 0:
            return True
        if kind & K_RANGE:
            for a, seen in rng:
                if mv[a] != seen:
                    return True
        if kind & K_TURN and self.last != p:
            return True
        return False

    def enabled_actors(self) -> list:
        en = self._en
        if en is not None:
            return en
        live, cond = self.live, self.cond
        # runnable(p), its first two tests inlined: most actors are not waiting
        en = [p for p in range(self.n) if live[p] and (cond[p] is None or self.runnable(p))]
        if not en:  # as the baton: only timed waits left, their time is up
            en = [p for p in range(self.n) if self.live[p] and self.cond[p] and self.cond[p][0] & K_TURN]
        self._en = en
        return en

    def enabled(self, p) -> bool:
        return p in self.enabled_actors()

    def choices(self) -> list:
        out = list(self.enabled_actors())
        for a, mm in self.p.buffered_models:
            if mm._n:
                for addr in mm.drain_choice_addrs():
                    out.append((a, addr))
        return out

    def cond_fp(self, p):
        return self.cond_set[p]

    def step(self, ch):
        self._en = None
        tw = self.tw
        r = tw.r = set()
        wr = tw.w = set()
        if isinstance(ch, tuple):
            a, addr = ch
            mm = self.mms[a]
            for j, x in zip(mm.drain_choices(), mm.drain_choice_addrs()):
                if x == addr:
                    mm.drain_entry(j)
                    break
            else:
                raise AbortError(f"explorer: no drain of word {addr} for actor {a}")
            wr.add(-1000 - a)
            if self.trace is not None:
                self.trace.append((a, "drain", addr, 0))
            return (r, wr)
        cs = self.cond_set
        r.update(cs[ch])
        self.last = ch
        self._run(ch)
        r.update(cs[ch])
        wr.add(-1000 - ch)
        self._note_violation(ch)
        return (r, wr)

    def _note_violation(self, ch) -> None:
        """The first violation of the run (only the actor that ran can have recorded one)."""
        ctx = self.ctxs[ch]
        if ctx.counters[_I_VIOL] and self.violation is None:
            rec = dict(zip(VIOL_FIELDS, (int(x) for x in ctx.oracle.viol[0, :len(VIOL_FIELDS)])))
            rec["kind"] = KIND_NAMES.get(rec["kind"], str(rec["kind"]))
            self.violation = rec

    def replay(self, chs) -> None:
        """Step ``chs`` (a prefix this world's explorer ran before: it needs no
        footprints), with the same effect as ``step`` on each in turn.

        Why: most steps the explorer executes re-execute a recorded prefix,
        and most of those continue the actor that ran last.  Such a run of k
        choices of one actor is one switch to its greenlet: its next k - 1
        parks record where it is (as every park does) and go on instead of
        switching back (``_XSched.park``, ``self.budget``).  Nothing the
        explorer does between two steps changes the state: it only reads
        the enabledness the run had when the prefix was recorded."""
        i, n = 0, len(chs)
        while i < n:
            ch = chs[i]
            j = i + 1
            if isinstance(ch, tuple):
                self.step(ch)
                i = j
                continue
            while j < n and chs[j] == ch:
                j += 1
            self._en = None
            self.tw.r = set()
            self.tw.w = set()
            self.last = ch
            self.budget = j - i - 1
            self._run(ch)
            if self.budget:
                raise AbortError(f"explorer: actor {ch} ended before the replayed prefix did")
            self._note_violation(ch)
            i = j

    def over(self) -> bool:
        """Every actor finished, or only hosts are left and none can run (a
        host waiting for a page that no vCPU will free any more)."""
        if any(self.live[:self.N]):
            return False
        return not self.enabled_actors()

    def deadlock(self):
        if self.over():
            return None
        stuck = [f"{'vcpu %d' % p if p < self.N else 'host %d' % (p - self.N)} at {SCHED_POINTS[self.point[p]]}"
                 for p in range(self.n) if self.live[p]]
        return {"kind": "deadlock", "vcpu": -1, "slot": -1, "gfn": -1, "pfn": -1, "reporter": -1,
                "detail": "no actor can run: " + ", ".join(stuck)}

    def decision(self, ch) -> list:
        """The baton's name for choice ``ch`` made now (before it runs)."""
        if isinstance(ch, tuple):
            return [ch[0], DRAIN, ch[1]]
        return [ch, SCHED_POINTS[self.point[ch]]]

    def state_key(self) -> bytes:
        """The final shared state, for comparing explorations (the trace ring
        and the start time are not state)."""
        b = bytes(self.mv.obj)
        parts = []
        for mm in self.mms:
            if mm is not None:
                parts.append(repr(sorted(mm._fwd.items())).encode())
        return b + b"|".join(parts)

    def close(self) -> None:
        """End every actor still running (each parked actor resumes and its
        park raises SchedEnd, as a baton's process leaves at the schedule's
        end), then give the greenlets back to the pool."""
        self.ending = True
        err = None
        for idx, g in enumerate(self.greenlets):
            if self.live[idx] and self.jobs[idx] is None:  # started, not finished
                self.live[idx] = False
                r = g.switch()
                while not r:  # parked again while unwinding: leave again
                    r = g.switch()
                if r is not _DONE and err is None:
                    err = r[1]
            self.p.idle.append(g)
        self.greenlets = []
        # the bodies not started close a cycle (world -> job -> body -> world):
        # drop them, so refcounting frees the world and no GC pass is needed
        self.jobs = []
        if err is not None:
            raise err


class Proto:
    """What every World of one (scenario, policy, model, requests) shares."""

    def __init__(self, sc: Scenario, policy, memory_model: str, requests: str, notifier: str = "2009"):
        self.sc = sc
        pname = policy if isinstance(policy, str) else policy.name
        self.cfg = run_config(sc, pname, memory_model, requests, notifier)
        self.policy_cls = (lambda: policies.get(policy)) if isinstance(policy, str) else policy
        if isinstance(policy, str):
            policies.get(policy)
        cfg = self.cfg
        self.N = sc.n_vcpus
        self.H = sc.n_hosts
        self.n = self.N + self.H
        guest = GuestLayout.plan(cfg.vcpus, cfg.guest_pages, cfg.procs)
        self.guest = guest
        geo = Geometry(n_vcpus=self.N, n_slots=guest.n_slots, n_gfns=cfg.guest_pages, n_pfns=cfg.guest_pages,
                        tlb_size=cfg.tlb_size, rmap_size=cfg.rmap_size, n_hosts=self.H)
        self.layout = Layout(geo)
        buf = bytearray(self.layout.n_bytes)
        a = Arena(self.layout, buf)
        _init_arena(a, guest, sc.script.get("dirty", 0))
        a.release()
        self.init = bytes(buf)
        self.params = RunParams(requests=requests, ack_timeout=cfg.ack_timeout, lock_timeout=cfg.ack_timeout,
                                notifier=notifier)
        n_req = geo.n_req
        events = validate_script(sc.script, self.N)
        specs = [(f"kick{v}", 0, True) for v in range(self.N)]
        specs += [(f"ackwake{r}", 0, True) for r in range(n_req)]
        specs += [(f"fence{r}", 1, False) for r in range(n_req)]
        specs += [("atomic0", 1, False), ("mmu_lock", 1, True), ("pfn_lock", 1, True), ("router", 0, True)]
        specs += [(f"evt-{e}", 0, True) for e in events]
        self.sem_specs = specs
        L = self.layout
        scanned = set()
        for fname in ("tlb_mirror", "tlb_mirror_slot", "req_flag", "req_seq", "ack_seq", "pfn_gen"):
            f = L[fname]
            scanned.update(range(f.offset, f.offset + f.size))
        self.scanned = frozenset(scanned)
        self.cover = [0] * len(SCHED_POINTS)
        self.idle = []  # actor greenlets of closed worlds (World: reused)
        # op progress of each actor (setup), through op lists that report it
        self.progress = [0] * self.n
        script = dict(sc.script)
        script["cpus"] = {k: _Ops(v, self.progress, int(k)) for k, v in sc.script.get("cpus", {}).items()}
        script["hosts"] = {str(j): _Ops(h, self.progress, self.N + j) for j, h in host_scripts(sc.script).items()}
        script.pop("host", None)
        self.script = script
        self.setup = {int(k): v for k, v in sc.script.get("setup", {}).items()}
        cfg.script = script
        # the shared objects every World resets
        self.buf = bytearray(self.init)
        self.mv = memoryview(self.buf).cast("q")
        self.tw = tw = _Words(self.mv)
        arena = Arena(self.layout, self.buf)
        arena.words = tw
        self.arena = arena
        tr = L["trace"]
        self.keep = (tr.offset * 8, (tr.offset + tr.size) * 8)  # the trace ring is not state: not restored
        sems = {}
        addr = -2
        for name, v, shared in specs:
            sems[name] = _Sem(v, addr, tw) if shared else _LocalSem(v)
            addr -= 1
        self.sems = sems
        self.sem_init = [v for _, v, _ in specs]
        self.sem_id = {id(s): s for s in sems.values()}
        self.atomic = [sems["atomic0"]]
        self.spec = SimpleNamespace(cfg=cfg, guest=guest, placement=[[0]] * self.n, sems=sems, layout=L,
                                    buf=self.buf, params=self.params)
        real_np = dict(arena.np)
        self.ctxs = []
        self.xscheds = []  # each actor's ctx.waits, pointed at the World running now
        for idx in range(self.n):
            mm = make_model("native", tw, sems[f"fence{idx}"], self.atomic, L.is_atomic)
            ctx = ProcContext(idx, arena, mm, sems, self.params)
            ctx.oracle = _Oracle(ctx, self.scanned)  # over the real numpy views
            ctx.rng = random.Random(idx)
            ctx.is_host = idx >= self.N
            self.ctxs.append(ctx)
            self.xscheds.append(_XSched(ctx, idx, 1, self.sem_id))
        # each actor's memory model, reset (not rebuilt: a model seeds a
        # random.Random) per World; buffered ones in controlled mode
        self.models, self.empty = [], []
        for idx in range(self.n):
            mm = make_model(cfg.memory_model, tw, sems[f"fence{idx}"], self.atomic, L.is_atomic, seed=idx)
            if hasattr(mm, "controlled"):
                mm.controlled()
                self.empty.append(mm.snapshot())  # restored at each World
            else:
                self.empty.append(None)
            self.models.append(mm)
        self.buffered = [mm if e is not None else None for mm, e in zip(self.models, self.empty)]
        self.buffered_models = [(a, mm) for a, mm in enumerate(self.buffered) if mm is not None]
        # what the vCPU side sees of the mirrors (build_vcpu, at each start): tracked rows
        arena.np["tlb_mirror"] = _Mirror(real_np["tlb_mirror"], L["tlb_mirror"], tw)
        arena.np["tlb_mirror_slot"] = _Mirror(real_np["tlb_mirror_slot"], L["tlb_mirror_slot"], tw)

    def setup_prefix(self) -> list:
        """The choices of the setup: each vCPU with setup ops, in order, runs
        alone until it has started its first explored op."""
        out = []
        w = self.world()
        try:
            for i in sorted(self.setup):
                while w.live[i] and self.progress[i] < self.setup[i]:
                    if i not in w.enabled_actors():
                        raise UsageError(f"scenario {self.sc.name}: vCPU {i} blocks during its setup ops")
                    out.append(i)
                    w.step(i)
                    if w.violation is not None:
                        raise UsageError(f"scenario {self.sc.name}: a violation during setup")
        finally:
            w.close()
        return out

    def restore(self) -> None:
        a, b = self.keep
        self.buf[:a] = self.init[:a]
        self.buf[b:] = self.init[b:]

    def world(self, trace=None) -> World:
        return World(self, trace)


__all__ = ["SCENARIOS", "Scenario", "load_scenario", "run_config", "Proto", "World", "logical_time"]
