"""The scheduler core: what a schedule is, whoever runs it.

Why it exists: a schedule found by the in-process explorer (``smpemu check``)
is replayed by the baton on real processes.  That holds only if both mean
the same thing by every decision: the same wait conditions, the same
enabled set, the same rule for timed waits, the same drain, the same
deadlock and the same end.  So those are written once, here, and the two
ways of running a schedule are thin transports over them: shared-memory
rows and semaphores (``harness.baton`` in each process,
``search.baton_loop`` in the coordinator) and greenlet switches
(``search.world``).  loom's ``rt/`` is the model: one execution, every
primitive written once over it.

- ``conds``: typed wait conditions (``Wait``: what a parked actor waits
  for; ``Cond``: that, with the words as it saw them), evaluated with each
  transport's own untracked reader;
- ``choices``: typed choices (an actor's ``Step``; a ``Drain`` of one
  buffered word, a ``Command`` run on a parked actor), their decision names
  (``[cpu, point]``, ``[cpu, "sb.drain", word]``), parsing them back, the
  drain lookup, and ``Loc``, the pseudo-locations of an explorer's footprints;
- ``core``: ``Sched``, one run's scheduler state: the enabled set with the
  timed-wait rule, the end rule (per workload), deadlock detection and its
  report, what optional waits skipped;
- ``row``: the baton's row of the shared ``sched`` field (layout, wait
  kinds, commands), written by a process and read by the coordinator here.

May import: smpemu.kvm, smpemu.memory, smpemu.errors.
"""
