"""Flush policies: one module each behind ``smpemu.kvm.policies.base.Policy``."""

from smpemu.errors import UsageError
from smpemu.kvm.policies.base import DeferredPolicy
from smpemu.kvm.policies.deferred_v3 import DeferredV3Policy
from smpemu.kvm.policies.deferred_v4_nowmb import DeferredV4NoWmbPolicy
from smpemu.kvm.policies.eager import EagerPolicy
from smpemu.kvm.policies.eager_2637 import Eager2637Policy
from smpemu.kvm.policies.mmu_lock import MmuLockPolicy
from smpemu.kvm.policies.sync_protected_only import SyncProtectedOnlyPolicy
from smpemu.kvm.policies.tlbs_dirty import TlbsDirtyPolicy
from smpemu.kvm.policies.tlbs_dirty_2638 import TlbsDirty2638Policy, TlbsDirty46Policy

POLICIES = {
    p.name: p
    for p in (
        EagerPolicy,
        Eager2637Policy,
        DeferredV3Policy,
        DeferredPolicy,
        DeferredV4NoWmbPolicy,
        TlbsDirtyPolicy,
        TlbsDirty2638Policy,
        TlbsDirty46Policy,
        MmuLockPolicy,
        SyncProtectedOnlyPolicy,
    )
}
DEFAULT = "deferred-v4"


def get(name: str):
    try:
        return POLICIES[name]()
    except KeyError:
        raise UsageError(
            f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}"
        ) from None
