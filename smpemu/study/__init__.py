"""Studies: scaling sweeps over vCPUs, policies and pinnings, their CSV logs and plots.

It never imports the search, the litmus runner or the CLI.

May import: smpemu.harness, workloads, smpemu.kvm, smpemu.memory, smpemu.errors.
"""
