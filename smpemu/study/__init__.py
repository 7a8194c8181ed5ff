"""Studies: scaling sweeps over vCPUs, policies and pinnings, their CSV logs and plots;
the benchmarks (``bench/``).

May import: ``smpemu.harness``, ``smpemu.kvm``, ``smpemu.memory`` and
``smpemu.errors``; never the search, the litmus runner or the CLI.
"""
