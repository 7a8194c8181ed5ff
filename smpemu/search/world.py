"""The explorer's world: one execution of a scenario, one scheduling point at a time.

Why it exists: the explorer (search/explore.py) needs a world it can rebuild
in microseconds and step one scheduling point at a time, running the *same*
protocol code as the real processes: the vCPU and host bodies of
harness.bodies and workloads/script.py, the kvm mmu, policies, ipi, vcpu and
oracle, the memory models (store buffers in controlled mode), the kvm arena
layout over a bytearray.  Each actor (vCPU or host process) is a greenlet
(search/greenlets.py).  Its context is built by ``harness.worker.make_context``
(over the tracked stand-ins of search/tracked.py) and its ``ctx.waits`` is the
baton's own implementation (harness.baton) with one method replaced:
``park`` switches to the explorer instead of posting a semaphore.  So every
wait parks with the baton's wait condition, and the world is a thin
transport over the scheduler core (``sched.core.Sched``: the enabled set,
the timed-wait rule, the end rule, deadlocks) that the baton's coordinator
uses too: a schedule found here is a decision list the baton replays on
real processes.

Speed (every schedule re-executes its whole prefix, so per-world and
per-step costs are what ``smpemu check`` spends its time on): the actor
greenlets are pooled across worlds and started when first chosen, the
memory models and the contexts are reset (``harness.worker.start_run``)
rather than rebuilt, and a recorded prefix runs with one switch per run of
one actor's choices (``World.replay``).  None of it changes what runs or
what is recorded; ``python -m bench.check_speed`` measures it.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter

import greenlet

from smpemu.errors import AbortError, UsageError
from smpemu.harness.baton import Baton, SchedEnd
from smpemu.harness.bodies import vcpu_body
from smpemu.harness.context import RunParams
from smpemu.harness.coordinator import Spec, init_arena
from smpemu.harness.semaphores import semaphores
from smpemu.harness.worker import make_context, start_run
from smpemu.kvm.guest import GuestLayout
from smpemu.kvm.layout import C, Geometry, Layout
from smpemu.kvm.mmu import MMU
from smpemu.kvm.oracle import FIELDS as VIOL_FIELDS, KIND_NAMES
from smpemu.kvm.points import SCHED_POINTS
from smpemu.kvm.vcpu import StopRun
from smpemu.memory.arena import Arena
from smpemu.sched.choices import Loc, SchedIn, SchedOut, Step, drains, runnable_loc
from smpemu.sched.conds import Cond
from smpemu.sched.core import START, Sched
from smpemu.sched.preempt import can_preempt, resume
from smpemu.search.greenlets import DONE, new_worker
from smpemu.search.scenarios import Scenario, run_config
from smpemu.search.tracked import LocalSem, LogicalClock, Mirror, TrackedOracle, TrackedSem, TrackedWords
from workloads.script import describe_op, run_host
from workloads.script import validate as validate_script

_NOTHING = frozenset()  # the watched words of an actor that is not waiting
_I_VIOL = C["violations"]
_POSTS = attrgetter("v")  # a stand-in's posts, read without recording (sched.conds)


class _Park(Baton):
    """The baton's process side, parking into the explorer instead of a semaphore."""

    def __init__(self, ctx, spec):
        super().__init__(ctx, spec)
        self.world = None  # the World running now (one _Park per actor of a Proto)

    def park(self, ctx, point, wait=None):
        if self.atomic:
            return
        w = self.world
        i = self.me
        w.point[i] = point
        w.cover[point] += 1
        if wait is None:  # a plain scheduling point: runnable at once
            w.cond[i] = None
            w.cond_set[i] = _NOTHING
        else:
            c = Cond(wait, w.mv)  # the words as the actor saw them (untracked reads)
            w.cond[i] = c
            fp = {a for a, _ in c.seen}
            if c.sem is not None and c.sem.loc is not None:
                fp.add(c.sem.loc)
            w.cond_set[i] = frozenset(fp)  # read by the actor's next step
            if c.timed:
                w.history = True
        if w.budget:  # World.replay: this actor's next step follows at once
            w.budget -= 1
        else:
            w.main.switch()
        if w.ending:
            ctx.trace = None
            raise SchedEnd()
        if ctx.reenter:
            resume(ctx)  # scheduled in since: enter guest mode again (sched.preempt)

    def start(self, ctx) -> None:
        """The baton's start park, already made: World.__init__ recorded every
        actor at "start" (what a park with no wait condition records) and
        switches to the actor's greenlet only when the explorer first chooses
        it, whose body then runs from here to its next scheduling point.
        (Starting every greenlet eagerly cost two switches per actor per
        schedule, and two more to end the ones never chosen.)"""

    def done(self) -> None:
        pass


class World:
    """One execution of a scenario: reset the shared objects, then step
    choices (explore.Explorer).  The arena buffer, the semaphores, the
    scheduler state and the contexts live in the Proto and are reset, not
    rebuilt, per execution."""

    def __init__(self, proto: "Proto", trace=None):
        self.p = p = proto
        self.mv = p.mv
        p.restore()
        self.tw = tw = p.tw
        tw.r = set()
        tw.w = set()
        p.clock.t = 0
        for s, v in p.sem_init:
            s.v = v
        self.sched = sched = p.sched
        sched.reset()
        self.live, self.cond, self.point = sched.live, sched.cond, sched.point  # reset in place
        self.n = n = p.n
        self.N = p.N
        self.steps = p.steps
        self.cond_set = [_NOTHING] * n
        self.cover = p.cover
        self.history = False
        self.ending = False
        self.budget = 0  # parks the running actor passes without switching (replay)
        self.violation = None
        self.trace = trace
        self._en = None
        self.main = greenlet.getcurrent()
        self.ctxs = p.ctxs
        # actor greenlets come from the Proto's pool (search/greenlets.py)
        self.greenlets = [p.idle.pop() if p.idle else new_worker() for _ in range(n)]
        self.jobs = []  # an actor's (body, main) until its greenlet is first switched to
        for idx, ctx in enumerate(p.ctxs):
            rec = None
            if trace is not None:
                rec = (lambda i: lambda code, a=0, b=0: trace.append((i, code, a, b)))(idx)
            start_run(ctx, p.spec, p.policy_cls, rec)
            ctx.waits.world = self
            self.jobs.append((self._body(idx, ctx), self.main))
        # every actor is parked at its first scheduling point ("start"), as its
        # start park would record it (_Park.start: started lazily)
        self.cover[START] += n

    def _body(self, idx, ctx):
        def body():
            try:
                ctx.waits.start(ctx)
                if idx < self.N:
                    vcpu_body(ctx, self.p.spec)
                else:
                    run_host(ctx, MMU(ctx, self.p.guest), self.p.spec, idx - self.N)
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
        switch delivers), or its body ended (search/greenlets.py)."""
        if r:
            self.sched.finished(idx)
            self.cond_set[idx] = _NOTHING
            if r is not DONE:
                raise r[1]  # the body raised: as if the greenlet had died of it

    # -- the explorer's interface ---------------------------------------------------------
    def enabled_actors(self) -> list:
        en = self._en
        if en is None:
            en = self._en = self.sched.enabled(self.mv)
        return en

    def enabled(self, ch) -> bool:
        """Step ``ch`` may be chosen now."""
        return ch.actor in self.enabled_actors()

    def choices(self) -> list:
        steps = self.steps
        out = [steps[p] for p in self.enabled_actors()]
        for a, mm in self.p.buffered_models:
            if mm.n_buffered:
                out += drains(a, mm)
        if self.p.preemptible:  # the host scheduler's choices (sched.preempt)
            sched, ctxs, point = self.sched, self.ctxs, self.point
            for a in range(self.N):
                if not self.live[a]:
                    continue
                if sched.preempted[a]:
                    out.append(SchedIn(a))
                elif can_preempt(ctxs[a], point[a]):
                    out.append(SchedOut(a))
        return out

    def cond_fp(self, ch):
        return self.cond_set[ch.actor]

    def step(self, ch):
        self._en = None
        tw = self.tw
        r = tw.r = set()
        wr = tw.w = set()
        a = ch.actor
        if not ch.is_step:  # a command (a drain, a sched.out/in): applied to the parked actor's context
            ch.apply(self.ctxs[a])
            ch.on_sched(self.sched)
            wr.add(ch.loc)
            if self.p.preemptible:
                wr.add(runnable_loc(a))  # what is enabled changed (explore.py: bound safety)
            if self.trace is not None:
                self.trace.append((a, "command", ch, 0))
            return (r, wr)
        cs = self.cond_set
        r.update(cs[a])
        if self.p.preemptible:
            r.add(runnable_loc(a))  # it could run: it held a pCPU (sched.out / sched.in write this)
        self.sched.last = a
        self._run(a)
        r.update(cs[a])
        wr.add(ch.loc)
        self._note_violation(a)
        return (r, wr)

    def _note_violation(self, a) -> None:
        """The first violation of the run (only the actor that ran can have recorded one)."""
        ctx = self.ctxs[a]
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
        switching back (``_Park.park``, ``self.budget``).  Nothing the
        explorer does between two steps changes the state: it only reads
        the enabledness the run had when the prefix was recorded."""
        i, n = 0, len(chs)
        sched = self.sched
        while i < n:
            ch = chs[i]
            j = i + 1
            if not ch.is_step:
                self.step(ch)
                i = j
                continue
            while j < n and chs[j] is ch:
                j += 1
            self._en = None
            self.tw.r = set()
            self.tw.w = set()
            a = ch.actor
            sched.last = a
            self.budget = j - i - 1
            self._run(a)
            if self.budget:
                raise AbortError(f"explorer: actor {a} ended before the replayed prefix did")
            self._note_violation(a)
            i = j

    def over(self) -> bool:
        """The end rule (sched.core): every actor finished, or only actors in
        optional waits are left and none can run."""
        en = self._en
        return self.sched.over(en if en is not None else self.enabled_actors())

    def _ops(self) -> None:
        self.sched.op[:] = [ctx.op for ctx in self.ctxs]  # for the reports: which op each actor is at

    def deadlock(self):
        if self.over():
            return None
        self._ops()
        return {"kind": "deadlock", "vcpu": -1, "slot": -1, "gfn": -1, "pfn": -1, "reporter": -1,
                "detail": self.sched.stuck()}

    def skipped(self) -> list:
        """The ops of the actors left in optional waits (the run being over)."""
        if True not in self.live:
            return []  # the common end: every actor finished
        sk = self.sched.skipped()
        if not sk:
            return sk
        p = self.p
        return [describe_op(p.sc.script, p.N, p.H, a, self.ctxs[a].op) for a in sk]

    def decision(self, ch) -> list:
        """The baton's name for choice ``ch`` made now (before it runs)."""
        return ch.name(SCHED_POINTS[self.point[ch.actor]])

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
                if r is not DONE and err is None:
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

    def __init__(self, sc: Scenario, policy, memory_model: str, requests: str, notifier: str = "2009",
                 guest_flush: str = "native", local_flush: str = "concurrent"):
        self.sc = sc
        pname = policy if isinstance(policy, str) else policy.name
        # what a replay of its schedules runs
        self.cfg = run_config(sc, pname, memory_model, requests, notifier, guest_flush, local_flush)
        # a policy name, or a Policy class (a mutant): start_run builds one per world
        self.policy_cls = None if isinstance(policy, str) else policy
        # the explorer's run: it records events itself (World's trace) and
        # looks for a violation after every step (no stop word)
        cfg = dataclasses.replace(self.cfg, trace=False, stop_on_violation=False)
        self.N = sc.n_vcpus
        self.H = sc.n_hosts
        self.n = self.N + self.H
        guest = GuestLayout.plan(cfg.vcpus, cfg.guest_pages, cfg.procs)
        self.guest = guest
        geo = Geometry(n_vcpus=self.N, n_slots=guest.n_slots, n_gfns=cfg.guest_pages, n_pfns=cfg.guest_pages,
                       tlb_size=cfg.tlb_size, rmap_size=cfg.rmap_size, n_hosts=self.H, pv=cfg.guest_shootdowns)
        # guest shootdowns: the host may preempt a vCPU (sched.out / sched.in choices, sched.preempt)
        self.preemptible = cfg.guest_shootdowns
        self.layout = L = Layout(geo)
        buf = bytearray(L.n_bytes)
        a = Arena(L, buf)
        init_arena(a, guest, sc.script.get("dirty", 0))
        a.release()
        self.init = bytes(buf)
        params = RunParams(requests=requests, ack_timeout=cfg.ack_timeout, lock_timeout=cfg.ack_timeout,
                           notifier=notifier)
        events = validate_script(sc.script, self.N)
        scanned = set()
        for fname in ("tlb_mirror", "tlb_mirror_slot", "req_flag", "req_seq", "ack_seq", "pfn_gen"):
            f = L[fname]
            scanned.update(range(f.offset, f.offset + f.size))
        self.scanned = frozenset(scanned)
        self.cover = [0] * len(SCHED_POINTS)
        self.idle = []  # actor greenlets of closed worlds (World: reused)
        self.setup = {int(k): v for k, v in sc.script.get("setup", {}).items()}
        # the shared objects every World resets
        self.buf = bytearray(self.init)
        self.mv = memoryview(self.buf).cast("q")
        self.tw = tw = TrackedWords(self.mv)
        self.clock = LogicalClock(tw)
        arena = Arena(L, self.buf)
        arena.words = tw
        self.arena = arena
        tr = L["trace"]
        self.keep = (tr.offset * 8, (tr.offset + tr.size) * 8)  # the trace ring is not state: not restored
        # the run's semaphores (harness.semaphores): those of the protocol tracked
        sems = {s.name: (TrackedSem(s.value, Loc("sem " + s.name), tw) if s.role == "protocol" else LocalSem(s.value))
                for s in semaphores(self.N, geo.n_req, events, scheduled=True)}
        self.sem_init = [(sems[s.name], s.value) for s in semaphores(self.N, geo.n_req, events, scheduled=True)]
        self.spec = Spec(cfg, L, self.buf, sems, [[0]] * self.n, params, guest)
        self.sched = Sched(self.N, self.H, True, _POSTS)  # a scenario ends when every actor has
        self.steps = tuple(Step(a) for a in range(self.n))
        real_np = dict(arena.np)
        # the contexts (the oracles over the real numpy views), as a process builds its own
        self.ctxs = []
        for idx in range(self.n):
            ctx = make_context(idx, self.spec, arena=arena, waits=lambda c: _Park(c, self.spec),
                               oracle=lambda c: TrackedOracle(c, self.scanned))
            ctx.clock = self.clock
            self.ctxs.append(ctx)
        self.buffered_models = [(a, ctx.mm) for a, ctx in enumerate(self.ctxs) if hasattr(ctx.mm, "controlled")]
        # what the vCPU side sees of the mirrors (build_vcpu, at each start): tracked rows
        arena.np["tlb_mirror"] = Mirror(real_np["tlb_mirror"], L["tlb_mirror"], tw)
        arena.np["tlb_mirror_slot"] = Mirror(real_np["tlb_mirror_slot"], L["tlb_mirror_slot"], tw)

    def shape(self) -> tuple:
        """What a Proto is built from besides the script's programs: two
        scenarios of one shape can share a Proto (``use``)."""
        c = self.cfg
        return Proto.shape_of(self.sc, (c.policy, c.memory_model, c.requests, c.notifier, c.guest_flush,
                                        c.local_flush))

    @staticmethod
    def shape_of(sc: Scenario, settings: tuple) -> tuple:
        """``settings``: (policy, memory model, requests, notifier, guest flush, local flush)."""
        s = sc.script
        return (sc.n_vcpus, sc.n_hosts, s.get("dirty", 0), s.get("procs", 1), tuple(s.get("events", ())), *settings)

    def use(self, sc: Scenario) -> None:
        """Run ``sc`` from now on: a scenario of the same shape (``shape``)
        whose programs differ.  The scope search explores thousands of
        scenarios of a few shapes, and building a Proto (arena, semaphores,
        contexts) for each cost 13% of the time.  Every body reads its
        program from ``spec.cfg.script`` when a World starts it, and the
        arena's start (``init``) depends only on the shape, so swapping the
        script is all a rebuild would change."""
        old = self.shape()
        if Proto.shape_of(sc, old[-6:]) != old:
            raise ValueError(f"scenario {sc.name}: not of this Proto's shape")
        validate_script(sc.script, self.N)
        self.sc, self.cfg = sc, dataclasses.replace(self.cfg, script=sc.script)
        self.spec.cfg = dataclasses.replace(self.spec.cfg, script=sc.script)
        self.setup = {int(k): v for k, v in sc.script.get("setup", {}).items()}

    def setup_prefix(self) -> list:
        """The choices of the setup: each vCPU with setup ops, in order, runs
        alone until it has started its first explored op."""
        out = []
        w = self.world()
        try:
            for i in sorted(self.setup):
                ctx = self.ctxs[i]
                while w.live[i] and max(ctx.op, 0) < self.setup[i]:
                    if i not in w.enabled_actors():
                        raise UsageError(f"scenario {self.sc.name}: vCPU {i} blocks during its setup ops")
                    out.append(self.steps[i])
                    w.step(self.steps[i])
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


__all__ = ["Proto", "World"]
