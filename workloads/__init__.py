"""Guest workloads: one module each, with ``run(cpu, guest, rng, cfg)``.

``cpu`` is a ``smpemu.kvm.vcpu.VCPU``, ``guest`` a ``smpemu.kvm.guest.GuestKernel``;
a workload loops until the vCPU raises ``StopRun``.  Guest code: it drives
the kernel model and knows nothing of how it is run.

May import: smpemu.kvm, smpemu.memory, smpemu.errors.
"""

import sys
from importlib import import_module

from smpemu.errors import UsageError

WORKLOADS = {
    "malloc-touch": "workloads.malloc_touch",
    "script": "workloads.script",
    "swap-pressure": "workloads.swap_pressure",
    "cr3-switch": "workloads.cr3_switch",
    "invlpg-storm": "workloads.invlpg_storm",
    "trace": "workloads.trace",
    "share-unmap": "workloads.share_unmap",
    "guest-shootdown": "workloads.guest_shootdown",
}


def get(name: str):
    try:
        # sys.modules first: smpemu check's actors look their workload up once per schedule
        return sys.modules.get(WORKLOADS[name]) or import_module(WORKLOADS[name])
    except KeyError:
        raise UsageError(
            f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}"
        ) from None


def hosts_finish(name: str) -> bool:
    """The end rule of a run of workload ``name``: True when its host
    processes run a finite list of ops too (a script: the run ends when every
    process has finished), False when they reclaim for ever (the run ends
    when the vCPUs have)."""
    return getattr(get(name), "HOSTS_FINISH", False)


def describe() -> dict[str, str]:
    """name -> first line of its docstring, without the leading ``name:``."""
    out = {}
    for n in WORKLOADS:
        first = ((get(n).__doc__ or "").strip().splitlines() or [""])[0]
        if first.startswith(n + ":"):
            first = first[len(n) + 1:].strip()
        out[n] = first
    return out
