"""The explorer's actor greenlets, pooled across worlds.

Why it exists: each actor of an explorer's world (search/world.py) runs its
body (a vCPU's workload, a host's ops) in a greenlet, and every schedule
re-executes a world from scratch.  Creating, starting and killing a greenlet
costs ~18 us, five per world, so the greenlets are kept and reused: a
*worker* runs one body per job, reports to the world's thread of control,
and waits for the next job.

A worker reports what it delivers to the world's ``switch()``: ``()``
(the actor parked: an argumentless switch), ``DONE`` (its body returned)
or ``("raised", exception)``.
"""

from __future__ import annotations

import greenlet

DONE = "done"  # what a worker reports when its actor's body has returned


def new_worker():
    """A worker greenlet, started and waiting for its first job (a job is
    never passed as the start arguments: the greenlet would keep those, and
    through them the world, for as long as it lives)."""
    g = greenlet.greenlet(_worker)
    g.switch()
    return g


def _worker():
    """Run one body per job ``(body, main)``, then report to ``main`` and
    wait for the next job."""
    job = greenlet.getcurrent().parent.switch()  # idle until the first job
    while True:
        body, main = job
        job = None
        try:
            body()
            out = DONE
        except greenlet.GreenletExit:
            raise  # the pool is being collected
        except BaseException as e:  # handed to the world's thread of control
            out = ("raised", e)
        # an idle worker holds nothing of the world it ran (the body's closure
        # holds the world, the world its Proto, the Proto this greenlet): the
        # Proto and its pool are freed by reference counting
        body = None
        job = main.switch(out)
        out = None


__all__ = ["new_worker", "DONE"]
