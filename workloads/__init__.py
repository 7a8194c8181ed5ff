"""Guest workloads: one module each, with ``run(cpu, guest, rng, cfg)``.

``cpu`` is a ``smpemu.kvm.vcpu.VCPU``, ``guest`` a ``smpemu.kvm.guest.GuestKernel``;
a workload loops until the vCPU raises ``StopRun``.  Guest code: it drives
the kernel model and knows nothing of how it is run.

May import: smpemu.kvm, smpemu.memory, smpemu.errors.
"""

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
}


def get(name: str):
    try:
        return import_module(WORKLOADS[name])
    except KeyError:
        raise UsageError(
            f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}"
        ) from None


def describe() -> dict[str, str]:
    return {n: (get(n).__doc__ or "").strip().splitlines()[0] for n in WORKLOADS}
