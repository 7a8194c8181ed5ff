"""The baton's row: where a parked process publishes where it is and what it waits for.

Why it exists: under ``--schedule`` each process has a row of the shared
``sched`` field (``kvm.layout``).  The process writes it while it holds the
baton, then posts ``sched`` (``harness.baton``); the coordinator reads it
after that post (``search.baton_loop``).  The layout, the wait kinds and
the commands are defined here and encoded and decoded here, once.

Row words: ``R_STATE`` (PARKED, DONE), ``R_POINT`` (index in SCHED_POINTS),
``R_COUNT`` (parks so far: the coordinator sees that the process it chose
came back), ``R_KIND`` (bits: K_WORDS, K_SEM, K_RANGE, K_TURN, K_OPT),
``R_W0``, ``R_W1`` (watched words, -1: none), ``R_SEM`` (index of the
semaphore in the run's sorted semaphore names), ``R_RBASE``, ``R_RSTRIDE``,
``R_RCOUNT`` (a watched range), ``R_OP`` (a script actor's op, -1: none);
``R_CMD`` and ``R_ARG``: a command for the parked process (written by the
coordinator: a ``choices.Command`` code and its argument).
"""

from __future__ import annotations

from smpemu.sched.choices import BY_CODE
from smpemu.sched.conds import Wait

(R_STATE, R_POINT, R_COUNT, R_KIND, R_W0, R_W1, R_SEM, R_RBASE, R_RSTRIDE, R_RCOUNT, R_CMD, R_ARG,
 R_OP) = range(13)
PARKED, DONE = 1, 2
# wait conditions (bits of R_KIND): runnable again once any of them holds
K_WORDS = 1  # word R_W0 or R_W1 (-1: none) differs from its value at park time
K_SEM = 2  # semaphore number R_SEM has a post
K_RANGE = 4  # one of R_RCOUNT words from R_RBASE, R_RSTRIDE apart, changed
K_TURN = 8  # timed: another process has run since (its time is up)
K_OPT = 16  # optional: the scenario allows it never to end


def publish(W, r: int, point: int, n: int, wait, sem_index: dict, op: int) -> None:
    """The process side: write where we park (``wait``: a conds.Wait or None;
    ``sem_index``: id(semaphore) -> its number), the state word last."""
    kind = 0
    w0 = w1 = sem = -1
    rbase = rstride = rcount = 0
    if wait is not None:
        words = wait.words
        if words:
            kind |= K_WORDS
            w0 = words[0]
            if len(words) > 1:
                w1 = words[1]
        if wait.rng is not None:
            kind |= K_RANGE
            rbase, rstride, rcount = wait.rng.start, wait.rng.step, len(wait.rng)
        if wait.sem is not None:
            kind |= K_SEM
            sem = sem_index[id(wait.sem)]
        if wait.timed:
            kind |= K_TURN
        if wait.optional:
            kind |= K_OPT
    W[r + R_POINT] = point
    W[r + R_COUNT] = n
    W[r + R_KIND] = kind
    W[r + R_W0] = w0
    W[r + R_W1] = w1
    W[r + R_SEM] = sem
    W[r + R_RBASE] = rbase
    W[r + R_RSTRIDE] = rstride
    W[r + R_RCOUNT] = rcount
    W[r + R_OP] = op
    W[r + R_STATE] = PARKED  # the coordinator reads the row after our post


def done(W, r: int) -> None:
    W[r + R_STATE] = DONE


def read(W, r: int, sems: list):
    """The coordinator side, after the post: (state, point, parks so far,
    the Wait or None, op).  ``sems``: the run's semaphores, by number."""
    kind = W[r + R_KIND]
    wait = None
    if kind:
        words = tuple(w for w in (W[r + R_W0], W[r + R_W1]) if w >= 0) if kind & K_WORDS else ()
        rng = None
        if kind & K_RANGE:
            base, stride = W[r + R_RBASE], W[r + R_RSTRIDE]
            rng = range(base, base + stride * W[r + R_RCOUNT], stride)
        wait = Wait(words, rng, sems[W[r + R_SEM]] if kind & K_SEM else None, bool(kind & K_TURN),
                    bool(kind & K_OPT))
    return W[r + R_STATE], W[r + R_POINT], W[r + R_COUNT], wait, W[r + R_OP]


def send(W, r: int, cmd) -> None:
    """The coordinator tells a parked process to run a command (then posts its go)."""
    W[r + R_ARG] = cmd.arg
    W[r + R_CMD] = cmd.code


def take(W, r: int, me: int):
    """The process side (``me``), after its go: the command sent, or None (run on)."""
    code = W[r + R_CMD]
    if not code:
        return None
    W[r + R_CMD] = 0
    return BY_CODE[code](me, W[r + R_ARG])


def pending(W, r: int) -> bool:
    """A command not yet taken (the process did not run it)."""
    return W[r + R_CMD] != 0


__all__ = ["publish", "done", "read", "send", "take", "pending", "PARKED", "DONE", "R_STATE", "R_POINT"]
