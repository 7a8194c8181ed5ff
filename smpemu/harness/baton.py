"""The baton, process side: park at every scheduling point and wait.

Why it exists: under ``--schedule`` only the process holding the baton runs
(the coordinator's loop, the strategies and replay files are in
``smpemu.search``; docs/schedules.md).  This is the ``kvm.waits.Waits``
implementation such a process uses.  At every scheduling point it publishes
where it is (its row of the shared ``sched`` field), hands the baton back
(posts ``sched``) and blocks on its own ``sched-go<r>`` semaphore until the
coordinator chooses it.  Nobody may block in the OS while another process
waits for the baton, so a wait never blocks here: it parks with its *wait
condition* (watched words whose change, a semaphore whose post, can let it go
on); the coordinator snapshots the watched words when the process parks and
treats it as disabled until one of them changes.  Time is decisions: a timer
expires once every other process has had a turn.
"""

from __future__ import annotations

from smpemu.harness.router import send_ipi
from smpemu.kvm.layout import CTL_SCHED_END
from smpemu.kvm.vcpu import StopRun
from smpemu.kvm.points import SCHED_POINTS
from smpemu.kvm.waits import Waits, try_take

PID = {name: i for i, name in enumerate(SCHED_POINTS)}

# one row of the shared ``sched`` field per process (written by the process
# while it holds the baton, read by the coordinator after the post)
R_STATE, R_POINT, R_COUNT, R_KIND, R_W0, R_W1, R_SEM, R_RBASE, R_RSTRIDE, R_RCOUNT, R_CMD = range(11)
DRAIN = "sb.drain"  # a decision that drains one buffered store of a parked process (replay format 2)
PARKED, DONE = 1, 2
# wait conditions (bits of R_KIND): runnable again once any of them holds
K_WORDS = 1  # word R_W0 or R_W1 (-1: none) differs from its value at park time
K_SEM = 2  # semaphore number R_SEM (sorted run semaphore names) has a post
K_RANGE = 4  # one of R_RCOUNT words from R_RBASE, R_RSTRIDE apart, changed
K_TURN = 8  # another process has run since (a timed wait whose time is up)


class SchedEnd(StopRun):
    """The schedule is over: leave now (raised at a scheduling point)."""


def drain_addr(mm, addr: int) -> None:
    """Let the oldest buffered store to ``addr`` that may drain now reach memory."""
    for j, a in zip(mm.drain_choices(), mm.drain_choice_addrs()):
        if a == addr:
            mm.drain_entry(j)
            return
    raise RuntimeError(f"no buffered store to word {addr} may drain now")


class Baton(Waits):
    """One process's end of the baton (``ctx.waits`` under ``--schedule``)."""

    def __init__(self, ctx, spec):
        idx = ctx.pid_index
        arena = ctx.arena
        self.W = arena.words
        self.row = arena.layout["sched"].addr(idx, 0)
        self.end = arena.ctl_addr(CTL_SCHED_END)
        self.go = spec.sems[f"sched-go{idx}"]
        self.post = spec.sems["sched"]
        self.sem_id = {id(spec.sems[k]): i for i, k in enumerate(sorted(spec.sems))}
        self.step_every = spec.cfg.sched_steps
        self.n = 0

    def park(self, ctx, point: int, kind: int = 0, w0: int = -1, w1: int = -1, sem: int = -1,
             rbase: int = 0, rstride: int = 0, rcount: int = 0) -> None:
        """Publish where we are, hand the baton back, run again when told to."""
        W = self.W
        r = self.row
        self.n += 1
        W[r + R_POINT] = point
        W[r + R_COUNT] = self.n
        W[r + R_KIND] = kind
        W[r + R_W0] = w0
        W[r + R_W1] = w1
        W[r + R_SEM] = sem
        W[r + R_RBASE] = rbase
        W[r + R_RSTRIDE] = rstride
        W[r + R_RCOUNT] = rcount
        W[r + R_STATE] = PARKED
        self.post.release()  # the row before the post: the coordinator reads it after
        go = self.go
        while True:
            try:
                go.acquire(0.1)
            except Exception:  # posix_ipc.BusyError / SignalError
                ctx.check_alive()  # a low priority may park us for long; a dead coordinator may not
                continue
            cmd = W[r + R_CMD]
            if not cmd:
                break
            # a drain decision (controlled drains): one buffered store reaches
            # memory, and we stay parked at the same point
            W[r + R_CMD] = 0
            drain_addr(ctx.mm, cmd - 1)
            self.post.release()  # pairs with the coordinator's wait after it wrote R_CMD
        if W[self.end]:
            ctx.trace = None  # nothing after the schedule's end is part of its interleaving
            raise SchedEnd()

    def start(self, ctx) -> None:
        self.park(ctx, PID["start"])

    def done(self) -> None:
        self.W[self.row + R_STATE] = DONE
        self.post.release()

    # -- kvm.waits.Waits ----------------------------------------------------------------
    def point(self, ctx, name: str, poll: bool = True) -> None:
        self.park(ctx, PID[name])
        p = ctx.points
        if p is not None and p.active:
            p.hit(ctx, name, poll)  # a script's pause armed here (no delays under a schedule)

    kick = staticmethod(send_ipi)  # kick(ctx, t): as free-running

    def _deadline(self, ctx, timeout, timer, watch, sem, bell):
        return [timer, 0]  # [timed, parks so far]: time is decisions, never seconds

    def _expired(self, ctx, deadline) -> bool:
        return deadline[0] and deadline[1] > 0

    def _block(self, ctx, name, watch, sem, bell, slice_s, deadline) -> bool:
        if callable(watch):
            watch = watch()
        kind = 0
        words = []
        rbase = rstride = rcount = 0
        for w in watch:
            if isinstance(w, range):
                if rcount:
                    raise ValueError(f"{name}: the baton watches one range of words")
                kind |= K_RANGE
                rbase, rstride, rcount = w.start, w.step, len(w)
            else:
                words.append(w)
        if len(words) > 2:
            raise ValueError(f"{name}: the baton watches at most two words, not {len(words)}")
        if words:
            kind |= K_WORDS
        words += [-1, -1]
        sid = -1
        if sem is not None and not bell:  # a doorbell rings after a watched word changed
            kind |= K_SEM
            sid = self.sem_id[id(sem)]
        if deadline[0] and kind:
            kind |= K_TURN  # a timed wait: runnable again once the others had a turn
        deadline[1] += 1
        self.park(ctx, PID[name], kind, words[0], words[1], sid, rbase, rstride, rcount)
        return sem is not None and try_take(sem)


__all__ = ["Baton", "SchedEnd", "PID", "SCHED_POINTS", "DRAIN", "drain_addr"]
