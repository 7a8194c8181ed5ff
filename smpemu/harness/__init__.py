"""The harness: real processes on real shared memory, pinned, watched, cleaned up.

What lives here: ``config`` (a run's validated configuration), ``resources``
(``smpemu-*`` POSIX objects, created and unlinked by the coordinator),
``pinning``, ``coordinator`` (fork, start barrier, watchdog, gather),
``worker`` and ``bodies`` (what each forked process runs), ``context`` (what
one emulated CPU carries), ``freerun`` and ``baton`` (the two ways a process
waits: implementations of ``smpemu.kvm.waits``), ``router`` (``--ipi-route coordinator``),
``trace`` (event rings and their rendering) and ``report`` (tables, JSON).

It never imports the search, the studies, the litmus runner or the CLI: a
scheduled run gets the baton loop from the search by injection
(``coordinator.run(cfg, monitor=...)``).

May import: workloads, smpemu.sched, smpemu.kvm, smpemu.memory, smpemu.errors.
"""
