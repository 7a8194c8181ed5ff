"""The one wait interface: how the protocol code blocks, whoever runs it.

Why it exists: every blocking wait of the kernel model (a lock, an ack, HLT,
the invalidation wait, a script event, a paused protocol point, the idle
host) is written once, in the protocol code, barriers included, over this
small interface.  A way of running implements the interface, and differs only
in HOW it blocks, never in WHAT is waited for:

- free-running processes (``smpemu.harness.freerun.FreeRun``): spin briefly,
  then block in the OS in short slices with a timeout, noticing a dead
  coordinator or an aborted run;
- the baton (``smpemu.harness.baton.Baton``): park cooperatively, publishing
  the wait condition (``smpemu.sched``), so the coordinator knows when the
  process can run;
- an in-process explorer (one actor per CPU in one process) may implement it
  the same way, with its own semaphore objects.

``ctx.waits`` is one object per process (or actor).  The protocol code calls:

``waits.point(ctx, name, poll=True)``
    A named scheduling point: every protocol point of ``kvm.points`` (through
    ``ctx.point``) and the points of ``kvm.points.SCHED_POINTS`` that are not waits
    ("start", "step", "lock.<lock>").  An implementation runs the test pauses
    and stress delays of ``ctx.points`` there (``Points.hit``: arms, delays)
    and may switch to another actor before or after.  ``poll=False``: a point
    inside a hardware page walk, where a paused CPU acks no IPI.

``waits.spin(ctx, ready, poll=None) -> bool``
    Busy-poll ``ready(False)`` briefly before a blocking wait (free-running:
    ``--spin-us``), calling ``poll()`` before each check.  True if ready.
    Implementations that never spin check once.

``waits.wait_until(ctx, name, ready, watch=(), sem=None, bell=False,
poll=None, timeout=None, timer=False, slice_s=0.005, optional=False) -> bool``
    Block until ``ready(took)`` is true; return True then, or False once the
    timeout expired.  The loop is written once, here (``Waits.wait_until``):
    ``ready``; then ``poll()`` and ``ready`` again, ``mm.drain()``, one
    bounded block (``_block``) and ``ready(took)``, expired?, repeat.

    - ``name``: the scheduling-point name of this wait (one of
      ``kvm.points.SCHED_POINTS``: replay files record it).
    - ``ready(took)``: the condition.  ``took`` is True when the
      implementation has just consumed one post of ``sem`` for the caller
      (a free-running block is ``sem.acquire(slice)``); for a semaphore that
      *is* the event (a lock, a kick, a script event) ready counts it as the
      event: ``lambda took: took or try_take(sem)``.  ready may consume a
      post itself, and runs the wait's barriers (it is called after every
      block).
    - ``watch``: arena word addresses whose change can make ready true: ints,
      and ``range`` objects of addresses (the baton holds at most two ints
      and one range); or a function returning them, called before each block
      (the words to watch change as the wait goes on: the next missing ack).
    - ``sem``: a semaphore whose post can make ready true (an event).
    - ``bell``: ``sem`` is only a doorbell (``ackwake``): it is posted after
      a watched word changed, so an implementation that blocks in the OS
      blocks on it, and one that watches the words may ignore it (it should
      take a pending post after each block, so that posts do not pile up).
    - ``poll()``: run before each re-check: take interrupts while in guest
      mode, the 2009 acks (``ctx.exit_poll``), a pending request while halted.
    - ``timeout``: seconds.  With ``timer=False`` it is a liveness bound (its
      expiry means something is broken: the caller raises with its message);
      an implementation that detects deadlocks itself may never expire it.
      With ``timer=True`` its expiry is an ordinary outcome (a timed HLT, the
      host's pacing): an implementation without a wall clock expires it after
      one block, in which the actor is runnable again once every other actor
      has had a turn (the baton's K_TURN); with nothing watched and no
      ``sem`` that block is a plain scheduling point.
    - ``slice_s``: the longest one OS block lasts (how often the wait
      re-checks when it blocks in the OS); 0 spins.
    - ``optional``: the caller allows the wait never to end (a script's
      ``["optional", OP]``): a free-running implementation returns False at
      the timeout as usual (the caller then skips); one that knows when
      nothing can satisfy the wait any more (the baton, the explorer:
      ``sched.core``) may end the run with the actor still waiting here.

``waits.kick(ctx, t)``
    Deliver the IPI to vCPU t (post ``ctx.kick[t]``, or through a router).

``waits.step_every``
    Guest steps between two ``VCPU.periodic()`` calls (each one ends in a
    ``"step"`` scheduling point).

The locks (``kvm.locks.lock``/``unlock`` over a ``Lock``: name, semaphore,
holder word, acquisition-count word) are written once over ``point`` and
``wait_until``: no implementation writes a lock.

Semaphores (``ctx.sems``, ``ctx.kick``, ``ctx.ackwake``, script events, the
lock semaphores, the memory model's fence and atomic stripes) are
duck-typed, so an in-process explorer passes its own objects:
``acquire(timeout)`` returns when it took a post and raises an ``Exception``
when it did not within ``timeout`` (0: a try; never a failure return value:
posix_ipc raises BusyError), ``release()`` posts, ``value`` is the number of
posts now.  Nothing here imports posix_ipc.

An implementation subclasses ``Waits`` and writes:

- ``point(ctx, name, poll)`` (call ``ctx.points.hit(ctx, name, poll)`` when
  ``ctx.points.active``: the test pauses are written there, once);
- ``_deadline(ctx, timeout, timer, watch, sem, bell, optional)``: any object,
  the wait's time state, passed to the two below;
- ``_expired(ctx, deadline) -> bool``, checked after each block (raise to
  leave the run, as ``ctx.check_alive`` does);
- ``_block(ctx, name, watch, sem, bell, slice_s, deadline) -> bool``: one bounded
  wait (the caller drained the store buffer just before), True if it took a
  post of ``sem``;

and ``spin``, ``kick``, ``step_every`` where the defaults do not fit.  A
context using it: ``harness.context.ProcContext(..., waits=MyWaits())``
(``FreeRun()`` when not given; the baton is set by ``harness.worker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


def try_take(sem) -> bool:
    """Take one post of ``sem`` if it has one, without blocking."""
    if sem.value <= 0:
        return False  # the common case, without the cost of a raised BusyError
    try:
        sem.acquire(0)
        return True
    except Exception:  # taken meanwhile: posix_ipc.BusyError, or an explorer semaphore's own
        return False


@dataclass(frozen=True)
class Lock:
    """One spinlock of the kernel model (see ``kvm.locks``)."""

    name: str  # "mmu_lock" / "pfn_lock"
    sem: object  # value 1 when free
    holder: int  # arena word: os pid of the holder, 0 when free
    acq: int  # arena word: acquisitions so far (moves while the lock changes hands)

    # cached: kvm.locks.lock reads them at every acquisition
    @cached_property
    def at(self) -> str:
        return "lock." + self.name  # the scheduling point before each acquisition

    @cached_property
    def wait(self) -> str:
        return "wait." + self.name  # the wait while it is taken


class Waits:
    """The contract (module docstring) and the one wait loop."""

    step_every = 256

    def point(self, ctx, name: str, poll: bool = True) -> None:
        raise NotImplementedError

    def kick(self, ctx, t: int) -> None:
        ctx.kick[t].release()

    def spin(self, ctx, ready, poll=None) -> bool:
        if poll is not None:
            poll()
        return ready(False)

    def wait_until(self, ctx, name, ready, watch=(), sem=None, bell=False, poll=None, timeout=None,
                   timer=False, slice_s=0.005, optional=False) -> bool:
        if ready(False):
            return True
        deadline = self._deadline(ctx, timeout, timer, watch, sem, bell, optional)
        mm = ctx.mm
        while True:
            if poll is not None:
                poll()
                if ready(False):
                    return True
            mm.drain()  # before blocking: whoever must wake us sees our stores
            if ready(self._block(ctx, name, watch, sem, bell, slice_s, deadline)):
                return True
            if self._expired(ctx, deadline):
                return False

    # -- what an implementation writes ---------------------------------------------
    def _deadline(self, ctx, timeout, timer, watch, sem, bell, optional):
        """The state ``_expired`` and ``_block`` need for this wait's time."""
        raise NotImplementedError

    def _expired(self, ctx, deadline) -> bool:
        """Time is up (raise instead if the run is over for this actor)."""
        raise NotImplementedError

    def _block(self, ctx, name, watch, sem, bell, slice_s, deadline) -> bool:
        """One bounded wait for a change of ``watch`` or a post of ``sem``.
        True if it consumed a post of ``sem`` (passed to ready as ``took``)."""
        raise NotImplementedError


__all__ = ["Waits", "Lock", "try_take"]
