"""Run a parsed litmus test with real processes through the memory-model layer.

Why it exists: a memory model is only believable if the classic litmus tests
come out right on it with real concurrency.  This runner does what litmus7
does, in Python:

- one process per litmus thread, forked, pinned round-robin to the allowed
  cores, each with its own memory model (its own store buffer);
- the shared variables live in one POSIX shared-memory segment of int64, as
  arrays: instance ``i`` of variable ``v`` is word ``v * batch + i``, so one
  batch runs ``batch`` independent instances with a single semaphore
  handshake (go/done) per thread and batch;
- inside a batch the threads meet at a shared-memory barrier before every
  instance (litmus7's "user" barrier; spin, then sleep on a semaphore if
  the partner was preempted), then each waits a random number of idle
  model loads (0..63), so the threads' operations really overlap and every
  order gets its chance;
- after its operations a thread runs on for another 0..15 idle loads, during
  which its store buffer drains at the model's random moments, then drains
  it and records its registers (the values its loads returned, kept in
  Python locals) in the segment;
- the coordinator (this process) reads registers and final shared values
  with numpy after each batch and keeps a histogram of final states (a
  ``smpemu.litmus.result.LitmusResult``).

The delays are counted in model loads, not in time, so they scale with the
cost of the test's own operations on a fast, slow or loaded machine.  Each
thread's code is compiled to a small Python function, as litmus7 compiles a
test to C, from the steps of ``smpemu.litmus.program`` (the code the
exhaustive enumerator runs too); its blocking primitives (spin_lock, a
grace period) wait here with one bounded ``wait_until``.

Layout of the segment (int64 words; B = batch size, T = threads):

    | name  | shape         | writer(s)                   | readers            |
    |-------|---------------|-----------------------------|--------------------|
    | cells | vars x B      | threads (model), coordinator| threads, coordinator|
    |       | (+ RCU words) | (reset, between batches)    | (after a batch)     |
    | regs  | registers x B | the register's thread       | coordinator         |
    | sync  | T x 8 (pad)   | thread t: words 8t (arrive),| other threads       |
    |       |               | 8t+1 (scratch), 8t+2 (sleep)| (not the scratch)   |

Every blocking wait is bounded; every POSIX object is unlinked on every exit
path; thread processes are killed if they outlive the run.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import posix_ipc

from smpemu.errors import AbortError, AckTimeout, UsageError
from smpemu.litmus import tree as T
from smpemu.litmus import program as G
from smpemu.litmus.result import LitmusResult
from smpemu.memory import MODELS, make_model
from smpemu.harness.resources import ResourceSet, new_run_id

DEFAULT_BATCH = 1000
N_ATOMIC_LOCKS = 4
SYNC_STRIDE = 8  # one cache line per thread's barrier word
# Random delays, counted in idle model loads (see the module docstring):
START_BITS = 6  # 0..63 idle loads before a thread's operations
BUSY_BITS = 4  # 0..15 idle loads after them, before the final drain
SPINS = 2048  # barrier spins (~0.1 ms) before sleeping
YIELDS = 16  # yields to a partner pinned to our own core before sleeping
SLEEP_SLICE = 0.002  # s; bounds the cost of a missed wake-up
_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_interrupts: list[int] = []  # signals seen by on_signal()


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (see ``on_signal``)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def on_signal(signum, frame) -> None:
    """A handler for SIGINT/SIGTERM that ends a run cleanly: it raises
    ``Interrupted``, and records the signal, because a blocking posix_ipc call
    runs the handler and then replaces its exception by SignalError."""
    _interrupts.append(signum)
    raise Interrupted(signum)


# -- code generation ------------------------------------------------------------------


def _namespace(model, words, plan: "_Plan", who: str, keep_busy) -> dict:
    """The primitives a thread's compiled steps call, in the runner's flavour:
    blocking operations wait (see ``_wait_until``), bounded by the timeout."""
    load, cmpxchg, drain = model.load, model.cmpxchg, model.drain
    timeout = plan.timeout

    def wait_until(ready, what: str) -> None:
        """The one blocking wait: drain (others may wait for our stores), spin,
        then yield and sleep, until ``ready()``; past the timeout, abort."""
        if ready():
            return
        drain()
        deadline = time.monotonic() + timeout
        n = 0
        while not ready():
            n += 1
            if n > SPINS:
                if n % 16 == 0:
                    time.sleep(SLEEP_SLICE / 10)  # the holder may be off the CPU
                    if time.monotonic() > deadline:
                        raise AckTimeout(f"litmus {who}: {what} did not happen within {timeout} s")
                else:
                    os.sched_yield()

    def lock(a):
        # pairs with the release store of spin_unlock in the previous holder
        wait_until(lambda: load(a) == 0 and cmpxchg(a, 0, 1) == 0, "spin_lock")

    def unlock_wait(a):
        wait_until(lambda: load(a) == 0, "spin_unlock_wait")

    def wait_change(a, snap):
        # pairs with the release store of rcu_read_unlock in the reader
        wait_until(lambda: load(a) != snap, "the RCU grace period")

    def rmw(a, delta):
        while True:  # lock-free: a failed cmpxchg means another thread's succeeded
            old = load(a)
            if cmpxchg(a, old, old + delta) == old:
                return old

    base = [plan.var_base[v] for v in plan.program.variables]
    return G.model_ops(model, load=load, cmpxchg=cmpxchg, drain=drain, rmw=rmw, lock=lock,
                       unlock_wait=unlock_wait, wait_change=wait_change, keep_busy=keep_busy, words=words,
                       B=base, A={G.PTR_BASE + k: b for k, b in enumerate(base)})


def _compile_thread(code: G.ThreadCode, reg_base: dict[str, int], ns: dict):
    """Compile a thread to ``body(i)``: instance i's operations, then the
    random busy tail during which its buffer drains, the final drain, and
    the registers written to the regs area."""
    epilogue = [f"keep_busy({BUSY_BITS})  # the buffer drains at random moments meanwhile", "drain()"]
    epilogue += [f"words[{reg_base[r]} + i] = R[{code.slots[r]}]" for r in code.named]
    return G.compile_body(code, ns, epilogue)


# -- the thread processes ---------------------------------------------------------


@dataclass
class _Plan:
    """Everything a thread process needs; inherited through fork."""

    test: T.LitmusTest
    program: G.Program
    model: str
    seed: int
    batches: list[int]
    batch: int
    var_base: dict[str, int]
    reg_base: dict[tuple[int, str], int]
    sync_base: int
    timeout: float


class _Barrier:
    """Meet the other threads before every instance: spin, then sleep.

    Each thread publishes the number of the instance it is about to run
    (its *arrive* word) and waits until every other thread has published it
    too, so every instance runs with all its threads on a CPU at once.

    A thread waits for a partner on another core by spinning for up to
    ``SPINS`` turns (~0.1 ms), for one pinned to its own core by yielding
    (that one cannot arrive until we do).  Past that, the partner has been
    preempted (a loaded machine): we publish "wake me when you reach N" in
    our *sleep* word and block on our wake semaphore, which the partner
    posts when it arrives.  Blocking matters: a thread that spins while its
    partner is off the CPU burns its own share and is preempted in turn
    when the partner comes back; a woken sleeper preempts whoever runs and
    meets its partner at once.  The words are written directly (not through
    the model): they are harness state, and the model's buffer has been
    drained before.
    """

    def __init__(self, words, t: int, n_threads: int, sync_base: int, same_core, wake: list, timeout: float):
        def arrive(u):
            return sync_base + SYNC_STRIDE * u

        self.words = words
        self.arrive = arrive(t)
        self.sleep = arrive(t) + 2  # written by this thread only
        self.wake = wake[t]
        self.others = [
            (arrive(u), arrive(u) + 2, wake[u], same_core(u), f"P{u}") for u in range(n_threads) if u != t
        ]
        self.timeout = timeout
        self.who = f"P{t}"

    def meet(self, target: int) -> None:
        words = self.words
        words[self.arrive] = target  # pairs with the wait loops in the others
        for _, sleep, wake, _, _ in self.others:
            until = words[sleep]
            if until and target >= until:  # it sleeps until we reach "until"
                wake.release()  # pairs with self.wake.acquire() in _wait()
        for arrive, _, _, same_core, partner in self.others:
            if words[arrive] < target:
                self._wait(arrive, target, same_core, partner)

    def _wait(self, arrive: int, target: int, same_core: bool, partner: str) -> None:
        words = self.words
        for _ in range(YIELDS if same_core else SPINS):
            if same_core:
                os.sched_yield()
            if words[arrive] >= target:  # pairs with "words[self.arrive] = target"
                return
        deadline = time.monotonic() + self.timeout
        words[self.sleep] = target  # pairs with the check of "until" in meet()
        try:
            # The partner may miss our sleep word (x86 may order its load of
            # it before its store of its arrive word): then we sleep one
            # SLEEP_SLICE and look again.
            while words[arrive] < target:
                try:
                    self.wake.acquire(SLEEP_SLICE)
                except posix_ipc.BusyError:
                    if time.monotonic() > deadline:
                        raise AckTimeout(
                            f"litmus {self.who} waited {self.timeout} s for {partner} to reach instance {target}"
                        ) from None
        finally:
            words[self.sleep] = 0


def _thread_main(t: int, plan: _Plan, mm, sems: dict, conn) -> None:
    """Body of the process that runs litmus thread ``P<t>``."""
    who = f"P{t}"
    try:
        # Ctrl-C reaches the whole process group: the coordinator handles it
        # (prints what finished, kills us); SIGTERM kills us outright.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # forked while the parent held them
        cpus = sorted(os.sched_getaffinity(0))
        core = t % len(cpus)  # round-robin pinning
        os.sched_setaffinity(0, {cpus[core]})
        words = memoryview(mm).cast("q")
        batch = plan.batch
        atomic_rows = {plan.var_base[v] // batch for v in plan.program.atomic}

        def is_atomic(addr: int) -> bool:
            return addr // batch in atomic_rows  # the cells of an atomic variable

        model = make_model(
            plan.model,
            words,
            sems[f"fence{t}"],
            [sems[f"alock{k}"] for k in range(N_ATOMIC_LOCKS)],
            is_atomic,
            seed=plan.seed * 1009 + t,
            lock_timeout=plan.timeout,
        )
        delay_bits = random.Random(plan.seed * 7919 + t + 1).getrandbits

        scratch = plan.sync_base + SYNC_STRIDE * t + 1  # private word, harness only
        load = model.load

        def keep_busy(bits: int):  # the CPU runs on; its buffer may drain meanwhile
            for _ in range(delay_bits(bits)):
                load(scratch)

        code = plan.program.threads[t]
        ns = _namespace(model, words, plan, who, keep_busy)
        body = _compile_thread(code, {r: plan.reg_base[(t, r)] for r in code.named}, ns)
        n_threads = len(plan.test.threads)
        barrier = _Barrier(
            words,
            t,
            n_threads,
            plan.sync_base,
            lambda u: u % len(cpus) == core,
            [sems[f"wake{u}"] for u in range(n_threads)],
            plan.timeout,
        )
        go, done = sems[f"go{t}"], sems[f"done{t}"]
        parent = os.getppid()
        instance = 0
        for count in plan.batches:
            _wait_for_go(go, parent, plan.timeout, who)
            for i in range(count):
                instance += 1
                barrier.meet(instance)
                keep_busy(START_BITS)  # shifts this thread's start against the others'
                body(i)
            model.drain()  # every store visible before the coordinator reads
            done.release()  # pairs with _wait_done() in the coordinator
    except BaseException as e:  # report, then die: the coordinator aborts the run
        try:
            conn.send(f"{type(e).__name__}: {e}")
        except Exception:
            pass
        os._exit(1)


def _wait_for_go(go, parent: int, timeout: float, who: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            go.acquire(0.5)  # pairs with go.release() in run_test()
            return
        except posix_ipc.BusyError:
            if os.getppid() != parent:
                raise AbortError(f"litmus {who}: the coordinator died") from None
            if time.monotonic() > deadline:
                raise AckTimeout(f"litmus {who}: no go from the coordinator within {timeout} s") from None


# -- the coordinator -------------------------------------------------------------------


def _proc_state(pid: int) -> str:
    """'stopped', 'running' or 'gone', from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
    return "stopped" if state in ("T", "t") else "running"


class _Watch:
    """The coordinator's view of the thread processes, to name the culprit.

    A thread whose partner stops (SIGSTOP, an endless wait) times out at the
    barrier and dies saying whom it waited for: the report then names that
    partner, with the instance it reached (its *arrive* word), not the thread
    that noticed.
    """

    def __init__(self, procs, conns, arena, sync_base: int):
        self.procs = procs
        self.conns = conns
        self.arena = arena
        self.sync_base = sync_base
        self.reasons: dict[int, str] = {}

    def reason(self, u: int) -> str:
        if u not in self.reasons:
            c = self.conns[u]
            self.reasons[u] = c.recv() if c.poll() else f"exit code {self.procs[u].exitcode}"
        return self.reasons[u]

    def check(self, batch_no: int) -> None:
        """Raise AbortError if a thread died (0: finished its last batch)."""
        dead = [u for u, p in enumerate(self.procs) if p.exitcode not in (None, 0)]
        if not dead:
            return
        own = [u for u in dead if not re.search(r"waited .* for P\d+", self.reason(u))]
        if own:
            u = own[0]
            raise AbortError(f"litmus thread P{u} (pid {self.procs[u].pid}) died in batch {batch_no}: {self.reason(u)}")
        m = re.search(r"for (P\d+) to reach", self.reason(dead[0]))
        self.blame(int(m.group(1)[1:]), batch_no, self.reason(dead[0]))

    def blame(self, u: int, batch_no: int, why: str) -> None:
        p = self.procs[u]
        state = _proc_state(p.pid) if p.exitcode is None else f"dead ({self.reason(u)})"
        reached = int(self.arena[self.sync_base + SYNC_STRIDE * u])
        raise AbortError(
            f"litmus thread P{u} (pid {p.pid}) {state} at instance {reached} of batch {batch_no} ({why})"
        )

    def laggard(self) -> int:
        n = len(self.procs)
        return min(range(n), key=lambda u: int(self.arena[self.sync_base + SYNC_STRIDE * u]))


def _wait_done(done, watch: _Watch, t: int, batch_no: int, timeout: float) -> None:
    """Wait for thread t to finish a batch; abort if any thread died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done.acquire(0.05)  # pairs with done.release() in _thread_main()
            return
        except posix_ipc.BusyError:
            pass
        except posix_ipc.SignalError:
            # posix_ipc ran our handler but replaced its exception by this one
            if _interrupts:
                raise Interrupted(_interrupts[-1]) from None
        watch.check(batch_no)
        if time.monotonic() > deadline:
            watch.blame(watch.laggard(), batch_no, f"P{t} did not finish the batch within {timeout} s")


def _tally(hist: Counter, arena, column_bases: list[int], count: int) -> None:
    """Add one batch's final states (one column per register/variable)."""
    if not column_bases:
        hist[()] += count
        return
    table = np.stack([arena[b : b + count] for b in column_bases], axis=1)  # a copy
    states, counts = np.unique(table, axis=0, return_counts=True)
    for state, c in zip(states.tolist(), counts.tolist()):
        hist[tuple(state)] += c


def run_test(
    test: T.LitmusTest,
    iterations: int = 100_000,
    model: str = "relaxed",
    seed: int = 0,
    batch: int = DEFAULT_BATCH,
    timeout: float = 10.0,
    program: G.Program | None = None,
    progress=None,
) -> LitmusResult:
    """Run ``iterations`` instances of ``test`` under ``model``.

    ``timeout`` bounds every wait of a thread (barrier, go, atomic lock,
    spin_lock, grace period); the coordinator gives a batch twice as long,
    so that a thread's own diagnosis comes first.  ``progress(done)`` is
    called after every batch.
    """
    if model not in MODELS:
        raise UsageError(f"unknown memory model {model!r} (choose one of {', '.join(MODELS)})")
    if iterations <= 0:
        raise UsageError(f"iterations must be positive, got {iterations}")
    prog = program or G.build(test)
    batch = max(1, min(batch, iterations))
    batches = [batch] * (iterations // batch)
    if iterations % batch:
        batches.append(iterations % batch)

    variables = prog.variables
    regs = test.registers()
    var_base = {v: k * batch for k, v in enumerate(variables)}
    reg_start = len(variables) * batch
    reg_base = {tr: reg_start + k * batch for k, tr in enumerate(regs)}
    sync_base = reg_start + len(regs) * batch
    n_threads = len(test.threads)
    n_words = sync_base + SYNC_STRIDE * n_threads
    cond_vars = test.condition_vars()
    columns = test.columns()

    plan = _Plan(test, prog, model, seed, batches, batch, var_base, reg_base, sync_base, timeout)
    ctx = multiprocessing.get_context("fork")
    rs = ResourceSet(new_run_id())
    procs: list = []
    conns: list = []
    arena = None
    try:
        # A signal between creating an object (or a process) and recording it
        # would leak it: hold signals until everything is recorded.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            mm = rs.shm("litmus", n_words * 8)
            sems = {}
            for t in range(n_threads):
                for what, initial in (("fence", 1), ("go", 0), ("done", 0), ("wake", 0)):
                    sems[f"{what}{t}"] = rs.sem(f"{what}{t}", initial)
            for k in range(N_ATOMIC_LOCKS):
                sems[f"alock{k}"] = rs.sem(f"alock{k}", 1)
            arena = np.frombuffer(mm, dtype=np.int64)
            for t in range(n_threads):
                recv, send = ctx.Pipe(duplex=False)
                conns.append(recv)
                p = ctx.Process(
                    target=_thread_main, args=(t, plan, mm, sems, send), name=f"smpemu-litmus-P{t}", daemon=True
                )
                procs.append(p)
                p.start()
                send.close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held signal is handled here
        watch = _Watch(procs, conns, arena, sync_base)

        hist: Counter = Counter()
        init_vals = [_initial(test.init.get(v, 0), variables) for v in variables]
        start = time.perf_counter()
        done_iterations = 0
        for b, count in enumerate(batches):
            for k, v in enumerate(init_vals):  # threads are parked on go: no race
                arena[k * batch : k * batch + count] = v
            for t in range(n_threads):
                sems[f"go{t}"].release()  # pairs with _wait_for_go() in the threads
            for t in range(n_threads):
                _wait_done(sems[f"done{t}"], watch, t, b, 2 * timeout)
            _tally(hist, arena, [reg_base[tr] for tr in regs] + [var_base[v] for v in cond_vars], count)
            done_iterations += count
            if progress is not None:
                progress(done_iterations)
        elapsed = time.perf_counter() - start
        for t, p in enumerate(procs):
            p.join(timeout)
            if p.exitcode is None:
                raise AckTimeout(f"litmus thread P{t} (pid {p.pid}) did not exit within {timeout} s")
            if p.exitcode != 0:
                raise AbortError(f"litmus thread P{t} (pid {p.pid}) ended with exit code {p.exitcode}")
    finally:
        # A signal now would cut the cleanup short: hold it until every
        # process is reaped and every POSIX object unlinked.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join(5)
            for c in conns:
                c.close()
            del arena
            rs.close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held signal is handled here

    res = LitmusResult(test, prog, model, iterations, columns, hist, 0, 0, elapsed, seed)
    res.positive = sum(hist[s] for s in res.witnesses())
    res.negative = sum(c for s, c in hist.items() if res.kept(s)) - res.positive
    return res


def _initial(value, variables) -> int:
    if isinstance(value, tuple):
        return G.PTR_BASE + variables.index(value[1])
    return int(value)
