"""Typed wait conditions: what a parked actor waits for, and whether it may go on.

Why it exists: the one wait loop of ``kvm.waits`` ends, under a schedule,
in a park with a *wait condition*: words whose change, or a semaphore whose
post, can let the actor go on.  Whoever schedules (the baton's coordinator,
the explorer's world) snapshots the watched words when the actor parks (it
ran alone since it looked at them, so the snapshot is what it saw) and
treats it as disabled until one of them changed.  That evaluation is
written here, once.

``Wait`` is what the actor asks (built from the contract's arguments by
``Wait.of``); ``Cond`` is a Wait with the values seen at park time.
``Cond.ready(mem, count, last, me)`` reads through the caller's own
*untracked* accessors: ``mem[addr]`` (a memoryview of the arena: the
coordinator's, or the explorer's raw one, which records nothing into the
running step's footprint) and ``count(sem)`` (posts now: a POSIX
semaphore's ``value``, an explorer stand-in's raw counter).
"""

from __future__ import annotations


class Wait:
    """What a parked actor waits for (any one of these lets it go on).

    ``words``: arena word addresses whose change matters; ``rng``: a range of
    such addresses (the baton's row holds at most two words and one range);
    ``sem``: a semaphore whose post matters (the transport's own object);
    ``timed``: a timed wait (``timer=True`` in the contract), which is also
    runnable again once another actor has run; ``optional``: the scenario
    allows this wait never to end (``Sched.over``)."""

    __slots__ = ("words", "rng", "sem", "timed", "optional")

    def __init__(self, words=(), rng=None, sem=None, timed=False, optional=False):
        self.words = words
        self.rng = rng
        self.sem = sem
        self.timed = timed
        self.optional = optional

    @classmethod
    def of(cls, name, watch, sem, bell, timer, optional=False):
        """The condition of one block of ``Waits.wait_until`` (its arguments);
        None when nothing is watched: the block is then a plain scheduling
        point, runnable at once."""
        if callable(watch):
            watch = watch()
        words = []
        rng = None
        for w in watch:
            if isinstance(w, range):
                if rng is not None:
                    raise ValueError(f"{name}: the baton watches one range of words")
                rng = w
            else:
                words.append(w)
        if len(words) > 2:
            raise ValueError(f"{name}: the baton watches at most two words, not {len(words)}")
        if bell:
            sem = None  # a doorbell rings after a watched word changed
        if not words and rng is None and sem is None:
            return None
        return cls(tuple(words), rng, sem, timer, optional)

    def addrs(self):
        """Every watched word."""
        return self.words + tuple(self.rng) if self.rng is not None else self.words


class Cond:
    """A Wait as the actor left it: each watched word with the value it saw."""

    __slots__ = ("wait", "seen", "sem", "timed", "optional")

    def __init__(self, wait: Wait, mem):
        self.wait = wait
        seen = [(a, mem[a]) for a in wait.words]
        if wait.rng is not None:
            seen += [(a, mem[a]) for a in wait.rng]
        self.seen = seen
        self.sem = wait.sem
        self.timed = wait.timed
        self.optional = wait.optional

    def ready(self, mem, count, last: int, me: int) -> bool:
        """Can the actor ``me`` go on?  A watched word changed, the semaphore
        has a post, or (timed) another actor ran since it parked."""
        for a, seen in self.seen:
            if mem[a] != seen:
                return True
        sem = self.sem
        if sem is not None and count(sem) > 0:
            return True
        return self.timed and last != me


__all__ = ["Wait", "Cond"]
