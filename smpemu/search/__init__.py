"""The search for bad interleavings: stress, controlled schedules, replay.

What lives here: ``stress`` (rounds of widened race windows until the oracle
fires), ``schedule`` (the baton: one process at a time in a seeded order,
and replay files) and ``schedule_cli`` (``smpemu replay``).

May import: ``smpemu.harness``, ``smpemu.kvm``, ``smpemu.memory``,
``smpemu.errors`` and ``workloads``; never the studies, the litmus runner or
the CLI.
"""
