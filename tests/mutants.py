"""Protocol mutants: one-line changes of correct code that ``smpemu check`` must catch.

Each policy mutant is a Policy subclass registered in ``policies.POLICIES``
for the test (forked replay processes inherit the registration); the vCPU
entry mutant patches ``VCPU.enter_guest`` in the test process, before the
explorer runs and before the replay forks.

Not in the table: "v4 without the flush-side wmb", "tlbs-dirty without its
zap-side wmb" and "the vCPU entry without its mb()" are equivalent mutants in
smpemu's memory models: the dirty word and the mode word are atomic words,
never buffered (a plain store to one first drains what is before the last
barrier and goes straight to memory; cmpxchg drains everything), so the
barrier orders nothing that could move.  ``test_check.py`` shows it.  The
requester's side of the entry's pairing (``make_request`` without its mb())
is in the table instead: the request flag is a plain, buffered word.
"""

from __future__ import annotations

import contextlib
import inspect
import textwrap

from smpemu.kvm import ipi, policies
from smpemu.kvm.policies.base import DeferredPolicy
from smpemu.kvm.policies.eager import EagerPolicy
from smpemu.kvm.policies.tlbs_dirty import TlbsDirtyPolicy
from smpemu.kvm.vcpu import VCPU


class EagerAfterUnlock(EagerPolicy):
    """eager, flushing after mmu_unlock instead of under it (docs/decisions.md)."""

    name = "mutant-eager-after-unlock"

    def zap(self, ctx, mmu, slot, gfn):
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        return True  # mutant: the caller flushes after mmu_unlock


class TlbsDirtyPlainStore(TlbsDirtyPolicy):
    """tlbs-dirty clearing the counter with a plain store instead of cmpxchg(seen, 0)."""

    name = "mutant-tlbs-dirty-store"

    def flush_remote(self, ctx):
        mm = ctx.mm
        seen = mm.load_acquire(ctx.a_dirty)
        ctx.ev(3, seen)
        mm.mb()
        ctx.point("flush.after_clear_dirty")
        ipi.flush_all_cpus(ctx)
        mm.store(ctx.a_dirty, 0)  # mutant: a bump since 'seen' is lost


class V4NoZapWmb(DeferredPolicy):
    """v4 without the zap-side smp_wmb() (what deferred-v4-nowmb ships as a policy)."""

    name = "mutant-v4-no-zap-wmb"

    def zap(self, ctx, mmu, slot, gfn):
        mm = ctx.mm
        mmu.zap_spte(slot, gfn)
        ctx.point("invlpg.after_zap")
        mm.store(ctx.a_dirty, 1)  # mutant: no wmb() before it
        ctx.ev(1, 1)
        ctx.point("invlpg.after_set_dirty")
        return False


class V4NoFlushWmb(DeferredPolicy):
    """v4 without the flush-side smp_wmb(): an equivalent mutant here (see above)."""

    name = "mutant-v4-no-flush-wmb"

    def flush_remote(self, ctx):
        mm = ctx.mm
        mm.store(ctx.a_dirty, 0)
        ctx.ev(3)
        ctx.point("flush.after_clear_dirty")  # mutant: no wmb() before the requests
        ipi.flush_all_cpus(ctx)


def drop_line(func, needle: str):
    """``func`` recompiled without the one source line containing ``needle``."""
    src = textwrap.dedent(inspect.getsource(func)).splitlines(keepends=True)
    hits = [i for i, line in enumerate(src) if needle in line]
    assert len(hits) == 1, (func.__qualname__, needle, hits)
    del src[hits[0]]
    ns = {}
    exec(compile("".join(src), inspect.getsourcefile(func), "exec"), func.__globals__, ns)
    return ns[func.__name__]


@contextlib.contextmanager
def patched(owner, name: str, needle: str):
    """Patch ``owner.name`` (a module or class) with the one-line mutant."""
    saved = getattr(owner, name)
    setattr(owner, name, drop_line(saved, needle))
    try:
        yield
    finally:
        setattr(owner, name, saved)


def entry_without_mb():
    """The vCPU entry without its mb(): equivalent here (see below)."""
    return patched(VCPU, "enter_guest", "mm.mb()  # mode before requests")


def request_without_mb():
    """kvm_make_all_cpus_request without the mb() between the request flags
    and the mode loads (the requester's side of the entry's pairing)."""
    return patched(ipi, "make_request", "mm.mb()  # flag before mode load")


@contextlib.contextmanager
def registered(cls):
    policies.POLICIES[cls.name] = cls
    try:
        yield cls.name
    finally:
        policies.POLICIES.pop(cls.name, None)


# (mutant, base policy for the entry mutant, memory model where it matters)
POLICY_MUTANTS = [
    (EagerAfterUnlock, "native"),
    (TlbsDirtyPlainStore, "native"),
    (V4NoZapWmb, "relaxed"),
]
