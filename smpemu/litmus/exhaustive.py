"""The model's exact verdict: every execution a memory model allows, in one process.

Why it exists: a sampled "Never" cannot tell "the model forbids it" from
"not seen in N runs".  This enumerator runs the test's compiled steps (the
same ``smpemu.litmus.program`` code the thread processes run) over the same
model classes (``smpemu.memory.store_buffer``), with the models in
controlled mode: no store drains at random; instead, at every state, each
thread may either run its next step or let one of
``model.drain_choices()`` reach memory (``model.drain_entry(j)``).  So every
interleaving of the threads' operations, and every drain point and drain
order of every store buffer, is a branch of a depth-first search.  States
are memoised on (memory, program counters, registers, buffers), so each is
expanded once.  ``native`` is enumerated as TSO (the host's model).

A step that cannot proceed (a lock held, a grace period not over) raises
``Blocked`` before any effect: the thread is simply not enabled there.  The
fence and atomic-lock semaphores are in-process stand-ins: this is a search
tool, with one thread of control.  A state where no thread can move and not
all have finished is *stuck* (a deadlock); it produces no final state and is
counted.

The result is the set of final states (the same columns as the sampled
histogram) and the verdict computed from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from smpemu.errors import UsageError
from smpemu.litmus import program as G
from smpemu.memory import make_model

MAX_STATES = 2_000_000  # a bound on the search: past it the verdict is "incomplete"


class Blocked(Exception):
    """The step cannot run in this state (raised before any effect)."""


class _Sem:
    """In-process stand-in for a posix_ipc semaphore (one thread of control)."""

    def acquire(self, timeout=None):
        pass

    def release(self):
        pass


@dataclass
class ModelResult:
    model: str
    columns: list[str]
    states: set  # final states (tuples over columns), before the filter
    explored: int  # distinct states visited
    stuck: int  # states where no thread could move before all had finished
    elapsed: float
    complete: bool = True

    def kept(self, prog: G.Program) -> list[tuple]:
        """Final states the ``filter`` keeps."""
        f = prog.test.filter
        return [s for s in self.states if f is None or prog.holds(f, self.columns, s)]

    def verdict(self, prog: G.Program) -> str | None:
        if not self.complete:
            return None
        kept = self.kept(prog)
        pos = sum(1 for s in kept if prog.holds(prog.test.condition, self.columns, s))
        if pos == 0:
            return "Never"
        return "Always" if pos == len(kept) else "Sometimes"


def namespace(model, words, base: list[int], pointers: dict) -> dict:
    """The primitives for one thread's steps, in the enumerator's flavour:
    blocking operations raise ``Blocked`` instead of waiting."""
    load = model.load
    cmpxchg = model.cmpxchg

    def lock(a):
        if load(a) != 0:  # held: not enabled here
            raise Blocked
        cmpxchg(a, 0, 1)

    def unlock_wait(a):
        if load(a) != 0:
            raise Blocked

    def wait_change(a, snap):
        if load(a) == snap:  # the reader is still in the same critical section
            raise Blocked

    def rmw(a, delta):
        old = load(a)  # own buffered store, else memory: what cmpxchg sees once it drained
        cmpxchg(a, old, old + delta)  # one step: nothing runs in between
        return old

    return G.model_ops(model, load=load, cmpxchg=cmpxchg, rmw=rmw, lock=lock, unlock_wait=unlock_wait,
                       wait_change=wait_change, B=base, A=pointers, words=words)


def explore(prog: G.Program, model: str, max_states: int = MAX_STATES) -> ModelResult:
    """Enumerate every execution of ``prog`` under ``model``."""
    if model not in ("native", "tso", "relaxed"):
        raise UsageError(f"unknown memory model {model!r}")
    test = prog.test
    start = time.perf_counter()
    variables = prog.variables
    base = list(range(len(variables)))
    pointers = {G.PTR_BASE + k: k for k in range(len(variables))}
    init_mem = tuple(_initial(test.init.get(v, 0), variables) for v in variables)
    words = list(init_mem)  # the models read and write this list in place
    atomic_words = {variables.index(v) for v in prog.atomic}
    kind = "tso" if model == "native" else model
    models, steps, pure, sizes = [], [], [], []
    for code in prog.threads:
        m = make_model(kind, words, _Sem(), [_Sem()] * 4, atomic_words.__contains__, seed=0)
        m.controlled()
        models.append(m)
        steps.append(G.compile_steps(code, namespace(m, words, base, pointers)))
        pure.append([ins.pure for ins in code.instrs])
        sizes.append(len(code.instrs))
    n = len(prog.threads)
    columns = test.columns()
    reg_cols = [(t, prog.threads[t].slots[r]) for t, r in test.registers()]
    var_cols = [variables.index(v) for v in test.condition_vars()]

    def run(t: int, pc: int, R: list) -> int:
        try:
            return steps[t][pc](R, 0)
        except (KeyError, ZeroDivisionError) as e:  # *r of a non-address, x / 0
            what = "dereferences a value that is not an address" if isinstance(e, KeyError) else "divides by zero"
            line = prog.threads[t].instrs[pc].line
            raise UsageError(f"{test.path}:{line}: P{t} {what} in some execution") from None

    def settle(t: int, pc: int, R: list) -> int:
        """Run thread t's local steps at once: they commute with everything."""
        while pc < sizes[t] and pure[t][pc]:
            pc = run(t, pc, R)
        return pc

    pcs0, regs0 = [], []
    for t, code in enumerate(prog.threads):
        R = list(code.initial)
        pcs0.append(settle(t, 0, R))
        regs0.append(tuple(R))
    empty = tuple(m.snapshot() for m in models)
    empties = set(empty)  # what an empty buffer's snapshot looks like
    cur = list(empty)  # the snapshot each model is in now: restore only when it differs

    def restore(t: int, snap) -> None:
        if cur[t] is not snap:
            models[t].restore(snap)
            cur[t] = snap

    initial = (init_mem, tuple(pcs0), tuple(regs0), empty)
    seen = {initial}
    stack = [initial]
    finals: set = set()
    stuck = 0
    complete = True
    while stack:
        state = stack.pop()
        mem, pcs, regs, bufs = state
        moved = False
        for t in range(n):
            m = models[t]
            pc = pcs[t]
            if pc < sizes[t]:
                words[:] = mem
                restore(t, bufs[t])
                R = list(regs[t])
                try:
                    nxt = run(t, pc, R)
                except Blocked:  # raised before any effect: the model is unchanged
                    nxt = None
                if nxt is not None:
                    moved = True
                    nxt = settle(t, nxt, R)
                    cur[t] = snap = m.snapshot()
                    new = (
                        tuple(words),
                        pcs[:t] + (nxt,) + pcs[t + 1 :],
                        regs[:t] + (tuple(R),) + regs[t + 1 :],
                        bufs[:t] + (snap,) + bufs[t + 1 :],
                    )
                    if new not in seen:
                        seen.add(new)
                        stack.append(new)
            if bufs[t] not in empties:
                restore(t, bufs[t])
                for j in m.drain_choices():
                    moved = True
                    words[:] = mem
                    restore(t, bufs[t])
                    m.drain_entry(j)
                    cur[t] = snap = m.snapshot()
                    new = (tuple(words), pcs, regs, bufs[:t] + (snap,) + bufs[t + 1 :])
                    if new not in seen:
                        seen.add(new)
                        stack.append(new)
        if not moved:
            if all(pcs[t] >= sizes[t] for t in range(n)):
                finals.add(tuple(regs[t][k] for t, k in reg_cols) + tuple(mem[k] for k in var_cols))
            else:
                stuck += 1
        if len(seen) > max_states:
            complete = False
            break
    return ModelResult(model, columns, finals, len(seen), stuck, time.perf_counter() - start, complete)


def _initial(value, variables) -> int:
    if isinstance(value, tuple):
        return G.PTR_BASE + variables.index(value[1])
    return int(value)
