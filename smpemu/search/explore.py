"""A stateless explorer: every schedule with at most K preemptions, pruned by
bound-safe sleep sets.

Why it exists: a random or delay-driven search says nothing about the
interleavings it did not produce.  This engine enumerates them: for
K = 0, 1, ..., ``bound`` (iterative context bounding, Musuvathi and Qadeer,
PLDI 2007) it runs every schedule with exactly K preemptions, so that when
level K ends, every schedule with <= K preemptions has been covered.  It
knows nothing of KVM: a *world* (smpemu.search.world) runs the actors
and tells it what each step touched.

Model.  A world is a set of actors (threads) and, under store-buffer memory
models, one buffer pseudo-thread per actor.  A *choice* (sched.choices) is
an actor's ``Step`` (run it from its scheduling point to its next one:
``is_step``) or a command applied to a parked actor, a ``Drain`` (one
buffered store reaches memory).  A *preemption* is a choice made while the
actor stepped last is still enabled, of anything else (another actor or a
drain); switching away from a blocked or finished actor, or after a drain,
is free.  Runs are stateless: every schedule is re-executed from a fresh
world, following the recorded prefix of choices (the world is
deterministic: logical clock, no randomness; a world with ``replay`` runs
the recorded prefix in one go, see world.World.replay).

Levels.  At a node of cost c, the choices of cost c are explored now and the
preempting ones (cost c + 1) are deferred, as a work item (the prefix, the
node's sleep set, the siblings already explored and their footprints), to
level c + 1.  Each schedule is executed once, at the level of its cost.

Sleep sets (Godefroid), made safe under the bound.  After exploring choice
alpha of actor t at node n, a later sibling beta may put t to sleep: in
beta's subtree t is not chosen until a step *dependent* with alpha runs
(footprints conflict: one writes a word or a pseudo-location, a semaphore,
the clock, the other reads or writes; a parked actor's watched words count
as read by its next step, and every choice of an actor writes that actor's
own pseudo-location, ``choice.loc``: its steps and its drains conflict).
A schedule  beta w alpha w'  so pruned is equivalent (same final state,
same violations: alpha commutes with beta w) to  alpha beta w w', explored
in alpha's subtree, *provided* that one is within the bound too.  Plain sleep sets do not guarantee it, and that is
how they (and naive DPOR, Coons, Musuvathi and McKinley, OOPSLA 2013) lose
schedules under a bound: moving alpha forward can add preemptions.  With
[a->b] = 1 when a is an actor, a != b and a is enabled at that moment,

  cost(alpha beta w w') - cost(beta w alpha w')
      = [c->t]_n + [t->b]_{n.alpha} - [c->b]_n  +  [x->y] - [x->t]_m - [t->y]

(c chosen before n, b = beta's thread, x the last thread of  beta w  at the
node m where alpha is pruned, y the first of w').  We add t to beta's sleep
set only when  [c->t]_n + [t->b]_{n.alpha} <= [c->b]_n  (known at n: the
usual case is alpha = the running actor's own step and beta a preemption),
and we prune t at m only when  [x->y] <= [x->t]_m  is guaranteed: x is an
enabled actor at m (then [x->t]_m = 1), or a drain, or alpha writes nothing
x's wait condition watches (x's enabledness is the same at m and after
alpha).  Then the difference is <= 0: every pruned schedule has an
equivalent one of no greater cost in an earlier-explored subtree of the
same level, and by induction on the exploration order every equivalence
class of schedules with <= K preemptions keeps a representative.  Drains are
never put to sleep (they only wake sleepers).

The host's preemptions (sched.choices ``SchedOut``, ``SchedIn``: a vCPU
scheduled out where Linux can preempt it, and given its pCPU back) are
commands too: never put to sleep, never pruned.  A choice may carry its own
cost (``choice.cost``): a sched.out is always one preemption (it takes the
vCPU off its pCPU whoever ran last), a sched.in follows the rule above.  In
the argument, a fixed-cost b or y costs the same wherever it is moved
([t->b] is taken as b's own cost at n, and [x->y] = [t->y] at m), so the
two conditions stay sufficient.  They change what is enabled without
writing a watched word: a preempted vCPU may not step, whatever its wait
condition says (``sched.core.Sched.preempted``).  So each writes a
RUNNABLE pseudo-location of its vCPU (``choices.runnable_loc``), which
every step of that vCPU reads: a step and a sched.out/in of the same vCPU
conflict (as every choice of one actor does, through its own location), so
neither is carried past the other in a sleep set, and the third pruning
condition (alpha writes nothing x's wait watches) cannot be met by a
change of x's runnability, which only x's own sched.out/in make.  A
sched.out's enabledness depends only on its own vCPU (parked at a
preemptible point, in guest mode or scheduled in and not yet re-entered:
``sched.preempt.can_preempt``), never on the other actors, so no step of
another actor enables or disables it.  Waits whose enabledness
depends on history (a timed wait, "another process ran") switch pruning off
for the run.  ``tests/test_check.py`` compares pruned and unpruned
exploration: same final states, same violations.

Processes.  The work items of a level are independent (each carries its
prefix and sleep set), so ``jobs`` > 1 forks worker processes that run them
in chunks; the chunks' results are merged in work-item order, so schedule
numbers, the first violation, the minimal counterexample, the counts and
the coverage are the same for any number of processes (a test checks it).
Level 0 is one item and runs here, as does any level with fewer than
``MIN_SHARED_ITEMS`` items; the pool (smpemu.search.pool) is forked when a
level first needs it.  The timeout, a signal (``interrupted``) or a worker
that dies or stays stopped ends the run: the result says which
(``timed_out``, ``interrupted``, ``lost``), counts the level's work items
not explored (``unexplored``: a chunk stopped, or lost with its worker) and
is not complete; ``done_bound`` is the last level finished.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field


MIN_SHARED_ITEMS = 16  # a level with fewer work items runs in this process


class Timeout(Exception):
    pass


class Interrupted(Exception):
    """A signal arrived (``Explorer.interrupted``): raised where Timeout is."""


def conflict(a, b) -> bool:
    """Two footprints (reads, writes) conflict: a write meets an access."""
    ar, aw = a
    br, bw = b
    return not (aw.isdisjoint(br) and aw.isdisjoint(bw) and ar.isdisjoint(bw))


@dataclass
class Found:
    schedule: int  # number of the schedule (1-based, in exploration order)
    bound: int  # the level it was found at = its preemptions
    steps: int
    choices: list
    violation: dict
    t_s: float = 0.0  # seconds from the start of the exploration


@dataclass
class Result:
    bound: int  # requested bound
    level: int  # last level started
    complete: bool  # not stopped by the timeout, a signal or a lost worker (see done_bound)
    done_bound: int  # highest level fully explored (-1: none)
    schedules: int = 0
    pruned: int = 0
    points: int = 0  # steps executed (replayed prefixes included)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time, summed over the processes (the machine may be shared)
    busy_s: float = 0.0  # wall time the processes spent running work items, summed
    shared: int = 0  # work items run in worker processes (--jobs)
    step_s: float = 0.0  # time inside the worlds' steps (protocol code)
    build_s: float = 0.0  # time building worlds
    first: Found | None = None  # first violation found
    minimal: Found | None = None  # fewest preemptions, then fewest steps
    violations: int = 0
    skipped: dict = field(default_factory=dict)  # where actors were left in optional waits -> schedules
    exhausted: bool = False  # no schedule needs more preemptions than explored
    timed_out: bool = False
    interrupted: str | None = None  # the signal that stopped the exploration
    lost: str | None = None  # a worker process that died or stopped, and the work items lost with it
    unexplored: int = 0  # work items of the last level started not (fully) explored: stopped or lost
    per_level: list = field(default_factory=list)


class _Node:
    __slots__ = ("sleep", "cur", "cur_en", "cost", "chosen", "fp", "en_after", "inc", "todo", "later",
                 "explored", "incs")

    def __init__(self, sleep, cur, cur_en, cost):
        self.sleep = sleep
        self.cur = cur
        self.cur_en = cur_en
        self.cost = cost
        self.chosen = None
        self.fp = None
        self.en_after = False
        self.inc = 0
        self.todo = []
        self.later = []
        self.explored = []  # (choice, fp, enabled_after, inc) of finished siblings
        self.incs = {}


class Explorer:
    """``factory()`` -> a fresh world (see world.World for the interface)."""

    def __init__(self, factory, bound: int, prune: bool = True, timeout: float | None = None,
                 stop_on_violation: bool = True, on_terminal=None, max_schedules: int | None = None,
                 prefix=(), jobs: int = 1, counters: list | None = None, interrupted=None):
        self.prefix = list(prefix)  # forced first choices (a scenario's setup): not explored, no cost
        self.factory = factory
        self.bound = bound
        self.prune = prune
        self.timeout = timeout
        self.stop_on_violation = stop_on_violation
        self.on_terminal = on_terminal
        self.max_schedules = max_schedules
        # several processes share a level's work items only where the result
        # cannot depend on it: a callback per schedule or a global schedule
        # cap needs the one sequential order
        self.jobs = jobs if on_terminal is None and max_schedules is None else 1
        self.counters = counters  # a list the worlds add to (coverage): summed over the processes
        self.interrupted = interrupted  # () -> the name of a signal that arrived (stop), or None
        self._base = 0  # schedules numbered before the current chunk

    # -- one execution ------------------------------------------------------------
    def _fresh(self):
        t = time.perf_counter()
        w = self.factory()
        self.res.build_s += time.perf_counter() - t
        return w

    def _step(self, w, ch):
        t = time.perf_counter()
        fp = w.step(ch)
        if self.prune and getattr(w, "history", False):
            # a wait that history enables ("another actor ran"): the sleep-set
            # argument assumes enabledness is a function of the state
            self._step_history()
        self.res.step_s += time.perf_counter() - t
        self.res.points += 1
        return fp

    def _replay(self, w, chs) -> None:
        """``_step`` each of ``chs``, footprints not wanted (``World.replay``
        when the world has it: the same steps, fewer switches)."""
        replay = getattr(w, "replay", None)
        if replay is None:
            for ch in chs:
                self._step(w, ch)
            return
        t = time.perf_counter()
        replay(chs)
        if self.prune and getattr(w, "history", False):
            self._step_history()
        self.res.step_s += time.perf_counter() - t
        self.res.points += len(chs)

    @staticmethod
    def _step_history():
        from smpemu.errors import UsageError

        raise UsageError("the scenario has a timed wait (enabled once another actor ran): "
                         "explore it with --no-prune")

    def run(self) -> Result:
        # The search keeps what it explores (nodes, deferred work items: up
        # to hundreds of thousands of objects), and a schedule leaves no
        # reference cycle behind (reference counting frees each world:
        # tests/test_check_speed.py), so the cyclic GC would only re-traverse
        # live objects, finding nothing: that cost ~4% of a run.  Off while
        # exploring.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if was_enabled:
                gc.enable()

    def _run(self) -> Result:
        res = Result(self.bound, 0, False, -1)
        self.t0 = time.perf_counter()
        c0 = time.process_time()
        work = [(self.prefix, {}, None, [], None, 0)]
        self._pool = None  # forked at the first level big enough to share
        try:
            for k in range(self.bound + 1):
                res.level = k
                n0 = res.schedules
                nxt, n_next, timed_out, lost = [], 0, False, 0
                for n_items, out in self._level(work, k, res):
                    if out is None:  # a chunk that did not come back (see _lost)
                        lost += n_items
                        continue
                    self._merge(res, out)
                    res.unexplored += out.unfinished
                    timed_out = timed_out or out.timed_out
                    res.interrupted = res.interrupted or out.interrupted
                    nxt.extend(out.nxt)
                    n_next += out.n_next
                if lost:
                    timed_out = self._lost(res, k, lost, len(work)) or timed_out
                if timed_out or res.interrupted or res.lost:
                    res.timed_out = timed_out
                    break
                res.per_level.append({"bound": k, "schedules": res.schedules - n0})
                res.done_bound = k
                if res.minimal is not None and self.stop_on_violation:
                    break
                work = nxt
                if not n_next:  # no schedule needs more preemptions than this level's
                    res.exhausted = True
                    break
            res.complete = not (res.timed_out or res.interrupted or res.lost)
        finally:
            if self._pool is not None:
                self._pool.close()  # bounded: SIGKILL, then a join with a timeout
                self._pool = None
        res.elapsed_s = time.perf_counter() - self.t0
        res.cpu_s += time.process_time() - c0
        return res

    # -- a level's work items, in chunks (in this process or in a pool) --------------
    def _level(self, work, k, res):
        """``(items, result)`` for the level's chunks, in work-item order (so
        that schedule numbers, the first violation and the minimal one are
        the same whatever the number of processes); ``result`` is None for a
        chunk a worker process did not bring back."""
        last = k == self.bound
        if self.jobs < 2 or len(work) < MIN_SHARED_ITEMS:  # forking would cost more than it saves
            yield len(work), self._chunk(work, k, res.schedules, last)
            return
        if self._pool is None:
            self._pool = _pool(self)
        n = min(len(work), self.jobs * 8)  # several chunks per process: items differ in size
        size = -(-len(work) // n)
        chunks = [work[i:i + size] for i in range(0, len(work), size)]
        deadline = self.t0 + self.timeout if self.timeout is not None else None
        outs = self._pool.imap([(c, k, last) for c in chunks], deadline, self.interrupted)
        yield from zip(map(len, chunks), outs)

    def _lost(self, res, k, lost, total) -> bool:
        """``lost`` work items of level ``k`` did not come back from the pool:
        say why in ``res``.  True: the timeout had passed (the pool sends
        nothing after it, and waits a little for what it sent)."""
        pool = self._pool
        res.unexplored += lost
        if pool.interrupted:
            res.interrupted = res.interrupted or pool.interrupted
            return False
        timed_out = self.timeout is not None and time.perf_counter() - self.t0 > self.timeout
        if pool.failure or not timed_out:  # never a silent gap: no reason is a reason too
            why = pool.failure or "the worker processes did not bring them back"
            res.lost = f"{why}: {lost:,} of {total:,} work items of bound {k} not explored"
        return timed_out

    def _chunk(self, items, k, base, last, in_worker=False):
        self.res = res = Result(self.bound, k, False, -1)
        self._base = base
        c0 = time.process_time()
        t0 = time.perf_counter()
        mark = list(self.counters) if in_worker and self.counters is not None else None
        nxt = []
        timed_out, interrupted, done = False, None, 0
        try:
            for item in items:
                self._dfs(item, k, nxt)
                done += 1
        except Timeout:
            timed_out = True
        except Interrupted as e:
            interrupted = e.args[0]
        delta = [a - b for a, b in zip(self.counters, mark)] if mark is not None else None
        res.busy_s = time.perf_counter() - t0
        res.shared = len(items) if in_worker else 0
        return _ChunkOut(res, [] if last else nxt, len(nxt), timed_out, delta,
                         time.process_time() - c0 if in_worker else 0.0, interrupted, len(items) - done)

    def _merge(self, res, out) -> None:
        r = out.res
        off = res.schedules
        # chunk-local numbers -> numbers in the exploration order (first and
        # minimal may be the same Found: renumber it once)
        if r.first is not None:
            r.first.schedule += off
        if r.minimal is not None and r.minimal is not r.first:
            r.minimal.schedule += off
        if res.first is None:
            res.first = r.first
        m = r.minimal
        if m is not None and (res.minimal is None or (m.bound, m.steps) < (res.minimal.bound, res.minimal.steps)):
            res.minimal = m
        res.schedules += r.schedules
        res.pruned += r.pruned
        res.points += r.points
        res.step_s += r.step_s
        res.build_s += r.build_s
        res.busy_s += r.busy_s
        res.shared += r.shared
        res.violations += r.violations
        for k, n in r.skipped.items():
            res.skipped[k] = res.skipped.get(k, 0) + n
        res.cpu_s += out.cpu_s
        if out.counters is not None:
            for i, d in enumerate(out.counters):
                self.counters[i] += d

    def _dfs(self, item, k, nxt) -> None:
        prefix, sleep0, todo0, explored0, cur0, cost0 = item
        prefix = list(prefix)
        res = self.res
        path: list[_Node] = []
        chosen: list = []  # [n.chosen for n in path], kept along (schedules and work items copy it)
        root = None
        if todo0 is not None:
            root = _Node(dict(sleep0), cur0, cur0 is not None and cur0.is_step, cost0)
            root.todo = list(todo0)
            root.explored = list(explored0)
            root.incs = {ch: 1 for ch in todo0}
            root.chosen = root.todo.pop(0)
            root.inc = 1
            path.append(root)
            chosen.append(root.chosen)
        while True:
            self._check_stop()
            w = self._fresh()
            try:
                cur = cur0  # the initial item starts free after the setup prefix
                sleep = dict(sleep0)
                # re-execute the prefix and the path (the nodes whose footprints
                # are known in one go), then extend it
                known = 0
                while known < len(path) and path[known].fp is not None:
                    known += 1
                self._replay(w, prefix + chosen[:known])
                for node in path[known:]:
                    node.fp = self._step(w, node.chosen)
                    node.en_after = node.chosen.is_step and w.enabled(node.chosen)
                if path:  # only the last node's sleep set is used (_child_sleep has no side effects)
                    cur = path[-1].chosen
                    sleep = self._child_sleep(path[-1], path[-1].fp)
                cost = path[-1].cost + path[-1].inc if path else cost0
                terminal = True  # False: this branch was deferred or pruned, not a schedule
                over, choices, enabled = w.over, w.choices, w.enabled  # bound once per schedule
                skipped = getattr(w, "skipped", None)
                prune, stop = self.prune, self.stop_on_violation
                while not over() and not (stop and w.violation is not None):
                    chs = choices()
                    if not chs:
                        break  # nobody can run: a deadlock (w.deadlock() says so)
                    cur_en = cur is not None and cur.is_step and enabled(cur)
                    node = _Node(sleep, cur, cur_en, cost)
                    now, later = [], []
                    for ch in chs:
                        if prune and ch in sleep and ch.is_step:
                            if self._prunable(w, node, sleep[ch]):
                                res.pruned += 1
                                continue
                        inc = ch.cost if ch.cost is not None else (1 if (cur_en and ch != cur) else 0)
                        node.incs[ch] = inc
                        if cost + inc <= k:
                            now.append(ch)
                        else:
                            later.append(ch)
                    if cur_en and cur in now:  # the running actor first
                        now.remove(cur)
                        now.insert(0, cur)
                    if not now:
                        # every choice here is deferred or pruned: this branch
                        # goes on at the next level, or is covered elsewhere
                        if later:
                            nxt.append((prefix + chosen, dict(sleep), later, [], cur, cost))
                        terminal = False
                        break
                    node.later = later
                    node.chosen = now[0]
                    node.todo = now[1:]
                    node.inc = node.incs[node.chosen]
                    path.append(node)
                    chosen.append(node.chosen)
                    fp = self._step(w, node.chosen)
                    node.fp = fp
                    node.en_after = node.chosen.is_step and enabled(node.chosen)
                    sleep = self._child_sleep(node, fp)
                    cur = node.chosen
                    cost += node.inc
                if terminal:
                    res.schedules += 1
                    if self.max_schedules and self._base + res.schedules >= self.max_schedules:
                        raise Timeout()
                    v = w.violation
                    if v is None and not w.over():
                        v = w.deadlock()
                    if v is None and skipped is not None:
                        for where in skipped():  # the scenario allowed these waits never to end
                            res.skipped[where] = res.skipped.get(where, 0) + 1
                    if v is not None:
                        res.violations += 1
                        sched = prefix + chosen
                        f = Found(res.schedules, cost, len(sched), sched, v, time.perf_counter() - self.t0)
                        if res.first is None:
                            res.first = f
                        m = res.minimal
                        if m is None or (f.bound, f.steps) < (m.bound, m.steps):
                            res.minimal = f
                    if self.on_terminal is not None:
                        self.on_terminal(w, cost)
            finally:
                w.close()
            # backtrack to the deepest node with a sibling left at this level
            while path:
                node = path[-1]
                if node.todo:
                    node.explored.append((node.chosen, node.fp, node.en_after, node.inc))
                    node.chosen = chosen[-1] = node.todo.pop(0)
                    node.inc = node.incs[node.chosen]
                    node.fp = None
                    break
                path.pop()
                chosen.pop()
                if node.later:
                    explored = node.explored + [(node.chosen, node.fp, node.en_after, node.inc)]
                    nxt.append((prefix + chosen, node.sleep, node.later, explored, node.cur, node.cost))
            if not path:
                return

    def _check_stop(self) -> None:
        """Between two schedules: the timeout, then a signal (``interrupted``)."""
        if self.timeout is not None and time.perf_counter() - self.t0 > self.timeout:
            raise Timeout()
        if self.interrupted is not None:
            sig = self.interrupted()
            if sig:
                raise Interrupted(sig)

    def _child_sleep(self, node, fp) -> dict:
        """The sleep set after ``node.chosen`` (footprint ``fp``) ran."""
        if not self.prune:
            return {}
        ch = node.chosen
        out = {}
        for t, f in node.sleep.items():
            if t != ch and not conflict(f, fp):
                out[t] = f
        for a, f, en_after, inc in node.explored:
            if not a.is_step or a is ch or a in out:
                continue
            # bound safety at n: [c->t] + [t->b]_{n.alpha} <= [c->b] (b's own cost if it has one)
            tb = ch.cost if ch.cost is not None else (1 if en_after else 0)
            if inc + tb <= node.inc and not conflict(f, fp):
                out[a] = f
        return out

    @staticmethod
    def _prunable(w, node, f) -> bool:
        """Bound safety at m: [x->y] <= [x->t]_m (see the module docstring)."""
        x = node.cur
        if x is None or not x.is_step or node.cur_en:
            return True
        return f[1].isdisjoint(w.cond_fp(x))


@dataclass
class _ChunkOut:
    res: Result  # the chunk's counts; its violations numbered from 1 within the chunk
    nxt: list  # work items for the next level (none after the last level)
    n_next: int
    timed_out: bool
    counters: list | None  # what a worker process added to the explorer's counters
    cpu_s: float  # a worker process's CPU time (this process's own is measured by run)
    interrupted: str | None  # the signal that stopped the chunk (in this process only)
    unfinished: int  # work items not (fully) explored: the chunk was stopped


_WORKER_EXPLORER = None  # the explorer a forked worker inherited


def _chunk_in_worker(args):
    chunk, k, last = args
    return _WORKER_EXPLORER._chunk(chunk, k, 0, last, in_worker=True)


def _pool(explorer):
    """Worker processes forked from this one: each inherits the explorer and
    its world factory (scenario, policy, memory model, each actor's logical clock).
    They are killed when the run ends, however it ends (``_run``)."""
    from smpemu.search.pool import WorkerPool

    global _WORKER_EXPLORER
    _WORKER_EXPLORER = explorer
    return WorkerPool(explorer.jobs, _chunk_in_worker, name="smpemu-check")
