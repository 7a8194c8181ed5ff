"""The search for bad interleavings: stress, controlled schedules, replay, systematic exploration.

What lives here: ``stress`` (rounds of widened race windows until the oracle
fires), ``baton_loop`` (the coordinator's side of a controlled schedule: one
process at a time in a seeded order; the process side is
``smpemu.harness.baton``, the rules both follow ``smpemu.sched``),
``strategies`` (PCT, replay), ``replay_file`` (write, load and compare
replay files), ``replay_cmd`` (``smpemu replay``), and ``smpemu check``:
``explore`` (bounded exploration with sleep sets), ``scenarios`` (what it
explores), ``world`` (the in-process world: a transport over
``smpemu.sched`` too), ``tracked`` (the stand-ins that record footprints),
``greenlets`` (the actors' pooled greenlets) and ``check_cmd`` (the command).

It never imports the studies, the litmus runner or the CLI.

May import: smpemu.harness, workloads, smpemu.sched, smpemu.kvm, smpemu.memory, smpemu.errors.
"""
