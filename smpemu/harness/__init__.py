"""The harness: real processes on real shared memory, pinned, watched, cleaned up.

What lives here: ``config`` (a run's validated configuration), ``resources``
(``smpemu-*`` POSIX objects, created and unlinked by the coordinator),
``pinning``, ``coordinator`` (fork, start barrier, watchdog, gather),
``worker`` and ``bodies`` (what each forked process runs), ``context`` (what
one emulated CPU carries), ``router`` (``--ipi-route coordinator``),
``trace`` (event rings and their rendering) and ``report`` (tables, JSON).

May import: ``smpemu.kvm``, ``smpemu.memory``, ``smpemu.errors`` and
``workloads``; never the search, the studies, the litmus runner or the CLI.
"""
