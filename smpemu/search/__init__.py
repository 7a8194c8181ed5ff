"""The search for bad interleavings: stress, controlled schedules, replay.

What lives here: ``stress`` (rounds of widened race windows until the oracle
fires), ``baton_loop`` (the coordinator's side of a controlled schedule: one
process at a time in a seeded order; the process side is
``smpemu.harness.baton``), ``strategies`` (PCT, replay), ``replay_file``
(write, load and compare replay files) and ``replay_cmd`` (``smpemu replay``).

It never imports the studies, the litmus runner or the CLI.

May import: smpemu.harness, workloads, smpemu.sched, smpemu.kvm, smpemu.memory, smpemu.errors.
"""
