"""Typed choices: the decisions a schedule is made of, and their names.

Why it exists: a schedule is a list of choices, and both ways of running one
(the explorer's world, the baton on real processes) must agree on what each
one is and does.  A choice is

- a ``Step`` of an actor: it runs from the scheduling point where it is
  parked to its next one (decision ``[cpu, point]``, the point where it
  resumed);
- a ``Command`` applied to a parked actor, which stays parked: a ``Drain``
  lets the oldest buffered store to one word reach memory (decision
  ``[cpu, "sb.drain", word]``, replay format 2); a ``SchedOut`` preempts a
  vCPU (the host scheduler takes its pCPU: ``[cpu, "sched.out"]``) and a
  ``SchedIn`` gives it back (``[cpu, "sched.in"]``, replay format 3):
  ``sched.preempt`` holds what they run.

A new kind of choice is a new subclass here: its decision tag, its code on
the baton's row (``sched.row``), whether its decision has an argument, and
what it does to the actor's context (``apply``), then ``register``-ed; a
new kind of step-like choice sets ``is_step``.  The
explorer only asks ``is_step`` (may it be put to sleep, does choosing it
continue or preempt the running actor) and ``loc`` (the pseudo-location
its footprint writes).

Choices are interned: ``Step(2) is Step(2)``, so equality and hashing are
identity (the explorer keys its sleep sets by them), and pickling (work
items sent to ``--jobs`` workers) gives back the interned object.
"""

from __future__ import annotations

from smpemu.errors import AbortError, UsageError
from smpemu.kvm.points import SCHED_POINTS

DRAIN = "sb.drain"  # the decision tag of a drain (a name in SCHED_POINTS: replay files check it)


class Loc(str):
    """A pseudo-location of an explorer's footprint (a semaphore, the clock,
    an actor's own progress), beside the arena's word addresses (ints).  A
    string, so that equal names are equal locations after pickling."""

    __slots__ = ()

    def __repr__(self):
        return f"Loc({str.__repr__(self)})"


CLOCK = Loc("clock")  # the logical clock: a TLB fill reads it, a sync writes it

_ACTOR_LOCS: list = []


def actor_loc(a: int) -> Loc:
    """What every choice of actor ``a`` writes: its steps and its drains conflict."""
    while len(_ACTOR_LOCS) <= a:
        _ACTOR_LOCS.append(Loc(f"actor {len(_ACTOR_LOCS)}"))
    return _ACTOR_LOCS[a]


class Choice:
    """One decision; ``actor`` is the process (vCPU, then hosts) it concerns."""

    __slots__ = ("actor", "loc", "__weakref__")
    is_step = False
    # what choosing it costs of the preemption bound: None, the explorer's
    # rule (1 when it is made while the actor stepped last is still enabled,
    # of anything else); or always this (search/explore.py)
    cost = None

    def on_sched(self, sched) -> None:
        """What it changes in the scheduler state (``sched.core.Sched``) once applied."""

    def name(self, point: str) -> list:
        """Its decision name, the actor being parked at ``point``."""
        raise NotImplementedError


class Step(Choice):
    """Run the actor from its scheduling point to its next one."""

    __slots__ = ()
    is_step = True
    _interned: dict = {}

    def __new__(cls, actor: int):
        s = cls._interned.get(actor)
        if s is None:
            s = object.__new__(cls)
            s.actor = actor
            s.loc = actor_loc(actor)
            cls._interned[actor] = s
        return s

    def __reduce__(self):
        return (Step, (self.actor,))

    def name(self, point: str) -> list:
        return [self.actor, point]

    def __repr__(self):
        return f"Step({self.actor})"


class Command(Choice):
    """Something done to a parked actor's context; it stays parked.
    Subclasses set ``tag`` (the decision's second element), ``code`` (on the
    baton's row), ``has_arg`` (its decision is ``[cpu, tag, arg]``, else
    ``[cpu, tag]``) and write ``apply``."""

    __slots__ = ("arg",)
    tag = ""
    code = 0
    has_arg = True
    _interned: dict = {}

    def __new__(cls, actor: int, arg: int = 0):
        key = (cls, actor, arg)
        c = Command._interned.get(key)
        if c is None:
            c = object.__new__(cls)
            c.actor = actor
            c.arg = arg
            c.loc = actor_loc(actor)
            Command._interned[key] = c
        return c

    def __reduce__(self):
        return (type(self), (self.actor, self.arg))

    def name(self, point: str = "") -> list:
        return [self.actor, self.tag, self.arg] if self.has_arg else [self.actor, self.tag]

    def apply(self, ctx) -> None:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.actor}, {self.arg})"


def drain_word(mm, addr: int) -> None:
    """The drain lookup: let the oldest buffered store to word ``addr`` that
    may drain now reach memory (``mm``: a store-buffer model)."""
    for j, a in zip(mm.drain_choices(), mm.drain_choice_addrs()):
        if a == addr:
            mm.drain_entry(j)
            return
    raise AbortError(f"no buffered store to word {addr} may drain now")


class Drain(Command):
    """One buffered store to word ``arg`` of the actor reaches memory."""

    __slots__ = ()
    tag = DRAIN
    code = 1

    def apply(self, ctx) -> None:
        drain_word(ctx.mm, self.arg)


COMMANDS: dict = {}  # decision tag -> kind
BY_CODE: dict = {}  # row code -> kind


def register(kind):
    """Make a Command subclass a kind of decision (its tag parsed, its code on the row)."""
    assert kind.tag not in COMMANDS and kind.code not in BY_CODE and kind.code > 0, kind
    COMMANDS[kind.tag] = kind
    BY_CODE[kind.code] = kind
    return kind


register(Drain)


_RUNNABLE_LOCS: list = []


def runnable_loc(a: int) -> Loc:
    """Whether vCPU ``a`` holds a pCPU: written by its sched.out and sched.in,
    read by each of its steps (they change what is enabled without writing a
    watched word: search/explore.py)."""
    while len(_RUNNABLE_LOCS) <= a:
        _RUNNABLE_LOCS.append(Loc(f"runnable {len(_RUNNABLE_LOCS)}"))
    return _RUNNABLE_LOCS[a]


class SchedOut(Command):
    """The host scheduler preempts vCPU ``actor`` where it is parked (a
    point where Linux can preempt a vCPU thread: ``sched.preempt``): it
    leaves guest mode, is scheduled out (steal time: PREEMPTED) and runs no
    more until its SchedIn.  Always one preemption of the bound."""

    __slots__ = ()
    tag = "sched.out"
    code = 2
    has_arg = False
    cost = 1

    def apply(self, ctx) -> None:
        from smpemu.sched.preempt import sched_out

        sched_out(ctx)

    def on_sched(self, sched) -> None:
        sched.preempted[self.actor] = True

    def __repr__(self):
        return f"SchedOut({self.actor})"


class SchedIn(Command):
    """The host scheduler gives preempted vCPU ``actor`` a pCPU back (steal
    time: KVM_REQ_STEAL_UPDATE); it re-enters guest mode at its next step.
    Its cost is a drain's (the explorer's rule): a switch away from an
    actor that could go on is one preemption, whatever comes next."""

    __slots__ = ()
    tag = "sched.in"
    code = 3
    has_arg = False

    def apply(self, ctx) -> None:
        from smpemu.sched.preempt import sched_in

        sched_in(ctx)

    def on_sched(self, sched) -> None:
        sched.preempted[self.actor] = False

    def __repr__(self):
        return f"SchedIn({self.actor})"


register(SchedOut)
register(SchedIn)


_DRAINS: list = []  # actor -> {word: its Drain} (drains, per explored node: no key tuple to build)


def drains(actor: int, mm) -> list:
    """The drain choices of ``actor``'s store buffer now (under relaxed, one
    per word that may drain next: every drain order is a branch)."""
    while len(_DRAINS) <= actor:
        _DRAINS.append({})
    known = _DRAINS[actor]
    out = []
    for a in mm.drain_choice_addrs():
        d = known.get(a)
        if d is None:
            d = known[a] = Drain(actor, a)
        out.append(d)
    return out


def parse(d) -> tuple:
    """A recorded decision -> (choice, the point the actor must be parked at;
    None for a command).  Raises UsageError for what is no decision."""
    if not isinstance(d, list) or len(d) < 2 or not isinstance(d[0], int) or isinstance(d[0], bool):
        raise UsageError(f"{d!r} is not a decision")
    kind = COMMANDS.get(d[1])
    if kind is not None:
        if not kind.has_arg:
            if len(d) != 2:
                raise UsageError(f"{d!r} is not a decision [cpu, {d[1]!r}]")
            return kind(d[0]), None
        if len(d) != 3 or not isinstance(d[2], int) or isinstance(d[2], bool) or d[2] < 0:
            raise UsageError(f"{d!r} is not a decision [cpu, {d[1]!r}, arg]")
        return kind(d[0], d[2]), None
    if len(d) != 2 or d[1] not in SCHED_POINTS:
        raise UsageError(f"{d!r} is not a decision [cpu, point]")
    return Step(d[0]), d[1]


__all__ = ["Choice", "Step", "Command", "Drain", "SchedOut", "SchedIn", "runnable_loc", "DRAIN", "COMMANDS", "BY_CODE", "register", "Loc", "CLOCK",
           "actor_loc", "drain_word", "drains", "parse"]
