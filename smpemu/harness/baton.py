"""The baton, process side: park at every scheduling point and wait.

Why it exists: under ``--schedule`` only the process holding the baton runs
(the coordinator's loop, the strategies and replay files are in
``smpemu.search``; docs/schedules.md).  This is the ``kvm.waits.Waits``
implementation such a process uses.  At every scheduling point it publishes
where it is (its row of the shared ``sched`` field: ``sched.row``), hands
the baton back (posts ``sched``) and blocks on its own ``sched-go<r>``
semaphore until the coordinator chooses it.  Nobody may block in the OS
while another process waits for the baton, so a wait never blocks here: it
parks with its *wait condition* (``sched.conds.Wait``: watched words whose
change, a semaphore whose post, can let it go on), and the coordinator
decides, by the rules of ``sched.core``, when it may run.  Time is
decisions: a timer expires once every other process has had a turn.  The
in-process explorer (``search.world``) uses this class too, with ``park``
switching greenlets instead of posting semaphores.
"""

from __future__ import annotations

from smpemu.harness.router import send_ipi
from smpemu.kvm.layout import CTL_SCHED_END
from smpemu.kvm.points import SCHED_POINTS
from smpemu.kvm.vcpu import StopRun
from smpemu.kvm.waits import Waits, try_take
from smpemu.sched import row
from smpemu.sched.conds import Wait
from smpemu.sched.preempt import resume

PID = {name: i for i, name in enumerate(SCHED_POINTS)}


class SchedEnd(StopRun):
    """The schedule is over: leave now (raised at a scheduling point)."""


class Baton(Waits):
    """One process's end of the baton (``ctx.waits`` under ``--schedule``)."""

    atomic = False  # inside a decision (a sched.out: sched.preempt): no scheduling point

    def __init__(self, ctx, spec):
        idx = ctx.pid_index
        arena = ctx.arena
        self.me = idx
        self.W = arena.words
        self.row = arena.layout["sched"].addr(idx, 0)
        self.end = arena.ctl_addr(CTL_SCHED_END)
        self.go = spec.sems[f"sched-go{idx}"]
        self.post = spec.sems["sched"]
        self.sem_index = {id(spec.sems[k]): i for i, k in enumerate(sorted(spec.sems))}
        self.step_every = spec.cfg.sched_steps
        self.n = 0

    def park(self, ctx, point: int, wait=None) -> None:
        """Publish where we are, hand the baton back, run again when told to."""
        if self.atomic:
            return
        W = self.W
        r = self.row
        self.n += 1
        row.publish(W, r, point, self.n, wait, self.sem_index, ctx.op)
        self.post.release()  # the row before the post: the coordinator reads it after
        go = self.go
        while True:
            try:
                go.acquire(0.1)
            except Exception:  # posix_ipc.BusyError / SignalError
                ctx.check_alive()  # a low priority may park us for long; a dead coordinator may not
                continue
            cmd = row.take(W, r, self.me)
            if cmd is None:
                break
            # a command (a drain, a sched.out or sched.in): we stay parked at the
            # same point; preempted (sched.out), this process stays blocked on its
            # go semaphore until the coordinator's sched.in and then a step
            cmd.apply(ctx)
            self.post.release()  # pairs with the coordinator's wait after it sent the command
        if W[self.end]:
            ctx.trace = None  # nothing after the schedule's end is part of its interleaving
            raise SchedEnd()
        resume(ctx)  # scheduled in since the last step: enter guest mode again

    def start(self, ctx) -> None:
        self.park(ctx, PID["start"])

    def done(self) -> None:
        row.done(self.W, self.row)
        self.post.release()

    # -- kvm.waits.Waits ----------------------------------------------------------------
    def point(self, ctx, name: str, poll: bool = True) -> None:
        self.park(ctx, PID[name])
        p = ctx.points
        if p is not None and p.active:
            p.hit(ctx, name, poll)  # a script's pause armed here (no delays under a schedule)

    kick = staticmethod(send_ipi)  # kick(ctx, t): as free-running

    def _deadline(self, ctx, timeout, timer, watch, sem, bell, optional=False):
        return [timer, 0, optional]  # [timed, parks so far, optional]: time is decisions, never seconds

    def _expired(self, ctx, deadline) -> bool:
        return deadline[0] and deadline[1] > 0

    def _block(self, ctx, name, watch, sem, bell, slice_s, deadline) -> bool:
        wait = Wait.of(name, watch, sem, bell, deadline[0], deadline[2])
        deadline[1] += 1
        self.park(ctx, PID[name], wait)
        return sem is not None and try_take(sem)


__all__ = ["Baton", "SchedEnd", "PID", "SCHED_POINTS"]
