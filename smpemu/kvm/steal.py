"""Steal time: the ``preempted`` byte the host writes at sched-out and clears at entry.

Why it exists: KVM shares one ``struct kvm_steal_time`` per vCPU with the
guest.  When the host scheduler preempts a vCPU thread, KVM's preempt
notifier (``kvm_sched_out`` -> ``kvm_arch_vcpu_put`` ->
``kvm_steal_time_set_preempted``) writes KVM_VCPU_PREEMPTED into its
``preempted`` byte; when the thread runs again, ``kvm_sched_in`` ->
``kvm_arch_vcpu_load`` raises KVM_REQ_STEAL_UPDATE and ``record_steal_time``
clears the byte in ``vcpu_enter_guest``, before the next entry.  The
paravirtual TLB flush (f38a7b75267f, 4.16; the guest side in
``kvm/shootdown.py``) builds on it: the guest cmpxchg's KVM_VCPU_FLUSH_TLB
into the byte of a preempted vCPU instead of sending it an IPI, and
``record_steal_time`` flushes that vCPU's TLB before it enters.

``StealTime.sched_out`` and ``sched_in`` are what a host scheduler calls at
a scheduling point (``harness/hostsched.py``; the script's ``preempt`` op);
``record`` runs from ``VCPU.enter_guest`` (``cpu.pre_entry``) once
``sched_in`` raised the request.  Everything here runs on vCPU v's own
process, as in KVM on the vCPU's thread; ``host_preempted`` is the host's
own record (``vcpu->arch.st.preempted``), private to that thread.

The protocol (word ``steal[v][0]``, the guest's ``preempted`` byte: an atomic
word, so a plain store cannot slip into the middle of a cmpxchg or xchg):

    host, vCPU v's thread (sched-out)        guest initiator i (kvm_flush_tlb_multi)
    if host_preempted: return        (O0)
    preempted[v] = PREEMPTED         (O1)
                                             s = READ_ONCE(preempted[v])        (G1)
                                             if s & PREEMPTED and
                                                cmpxchg(preempted[v], s, s | FLUSH) == s:  (G2)
                                                 drop v from the IPI mask
    host, vCPU v's thread (entry: record_steal_time)
    st = xchg(preempted[v], 0)       (R1)    -- pairs with G2: either G2 came first
    host_preempted = 0                          and R1 returns FLUSH, or G2 fails (it
    if st & FLUSH: flush (+ sync)               sees 0) and i sends the IPI
    (steal, version updated)

``--guest-flush`` picks the host code (each variant is upstream as fixed,
with exactly one bug put back):

- ``native``, ``pv``: as above, with b53e84eed08b's sync (5.13 and later).
  Under ``native`` the guest never sets FLUSH: steal time is kept all the same.
- ``pv-writeback`` (b043138246a4's bug, 4.16 to 5.5): R1 is an xchg on the
  host's copy of the struct, read in before it (``kvm_read_guest_cached``)
  and written back whole after it (``kvm_write_guest_cached``): a FLUSH the
  guest's G2 adds between the read and the write-back is overwritten.
- ``pv-overwrite`` (8c6de56a42e0's bug, 4.16 to 5.5): no O0, so a vCPU
  preempted again before it entered (sched-in, then sched-out before
  ``vcpu_enter_guest``) stores PREEMPTED over PREEMPTED|FLUSH.
- ``pv-no-sync`` (5.6 to 5.12, before b53e84eed08b): the flush at R1 is
  ``kvm_vcpu_flush_tlb`` (the hardware TLB only): under shadow paging an
  unsync shadow page whose guest pte changed keeps its stale spte.
"""

from __future__ import annotations

from smpemu.kvm import events as ev
from smpemu.kvm import shadow_sync
from smpemu.kvm.layout import G

PREEMPTED = 1  # KVM_VCPU_PREEMPTED
FLUSH_TLB = 2  # KVM_VCPU_FLUSH_TLB
METHODS = ("native", "pv", "pv-writeback", "pv-overwrite", "pv-no-sync")
DESCRIBE = {  # smpemu list
    "native": "an IPI to every other vCPU of the mm, and a wait for each ack (preempted ones too)",
    "pv": "the paravirtual flush as upstream today (4.16's f38a7b75267f with the CVE-2019-3016 fixes and "
          "5.13's b53e84eed08b): preempted targets get FLUSH in their steal time instead of an IPI",
    "pv-writeback": "pv with b043138246a4's bug (4.16-5.5): the entry clears preempted on a copy and writes "
                    "it back whole, losing a FLUSH set in between",
    "pv-overwrite": "pv with 8c6de56a42e0's bug (4.16-5.5): a second sched-out before entry stores "
                    "PREEMPTED over PREEMPTED|FLUSH",
    "pv-no-sync": "pv before b53e84eed08b (5.6-5.12): the flush at entry skips the shadow sync",
}
ST_PREEMPTED, ST_STEAL, ST_VERSION = 0, 1, 2  # words of steal[v]

# trace event codes (harness/trace.py EVENTS)


class StealTime:
    """The host side of one vCPU's steal time (``vcpu->arch.st``)."""

    def __init__(self, cpu, method: str):
        ctx = cpu.ctx
        self.cpu = cpu
        self.ctx = ctx
        self.mm = ctx.mm
        self.a = ctx.arena.layout["steal"].addr(cpu.me, 0)
        self.method = method
        self.host_preempted = 0  # vcpu->arch.st.preempted: PREEMPTED stored and not yet cleared at entry
        self.t_out = 0  # when the thread was scheduled out
        self.pending_ns = 0  # steal time not yet recorded (run_delay)
        self.stats = ctx.arena.np["gstats"][cpu.me]

    # -- the scheduler's two calls ---------------------------------------------------
    def sched_out(self, preempted: bool = True) -> None:
        """kvm_sched_out -> kvm_arch_vcpu_put, on the vCPU's thread, outside
        guest mode.  ``preempted``: scheduled out while still runnable (a
        blocked thread, e.g. HLT, is not marked)."""
        if not preempted:
            self.t_out = 0  # blocked: not runnable, no steal time until it is woken
            return
        self.t_out = self.ctx.clock.stamp()
        if self.host_preempted and self.method != "pv-overwrite":
            return  # O0 (8c6de56a42e0): already stored; storing again would wipe a FLUSH added since
        self.ctx.point("steal.set_preempted")
        # O1: an atomic word (pairs with the guest's cmpxchg G2 and our xchg R1)
        self.mm.store(self.a + ST_PREEMPTED, PREEMPTED)
        self.host_preempted = PREEMPTED
        self.ctx.ev(ev.SCHED_OUT, PREEMPTED)

    def queued(self) -> None:
        """Runnable and waiting for a pCPU from now on (steal time runs)."""
        if not self.t_out:
            self.t_out = self.ctx.clock.stamp()

    def sched_in(self) -> None:
        """kvm_sched_in -> kvm_arch_vcpu_load: raise KVM_REQ_STEAL_UPDATE on
        ourselves; ``record`` serves it in ``vcpu_enter_guest``."""
        if self.t_out:
            self.pending_ns += self.ctx.clock.stamp() - self.t_out
            self.t_out = 0
        self.cpu.pre_entry = self.record
        self.ctx.ev(ev.SCHED_IN)

    # -- entry --------------------------------------------------------------------------
    def record(self) -> None:
        """record_steal_time(): in vcpu_enter_guest, outside guest mode, before entry."""
        cpu = self.cpu
        cpu.pre_entry = None  # the request is taken (a retried entry does not run it again)
        ctx = self.ctx
        mm = self.mm
        a = self.a
        ctx.point("steal.record")
        copy = None
        if self.method == "pv-writeback":
            # kvm_read_guest_cached(): the host's copy of the whole struct
            copy = [mm.load(a + k) for k in (ST_PREEMPTED, ST_STEAL, ST_VERSION)]
            st, copy[ST_PREEMPTED] = copy[ST_PREEMPTED], 0  # R1 on the copy: the guest's G2 does not see it
        else:
            st = mm.xchg(a + ST_PREEMPTED, 0)  # R1 on the guest's byte: pairs with G2 (a full barrier)
        self.host_preempted = 0
        ctx.ev(ev.STEAL_RECORD, st)
        if st & FLUSH_TLB:
            self.stats[G["pv_flushes"]] += 1
            if self.method == "pv-no-sync":
                cpu.flush_tlb()  # kvm_vcpu_flush_tlb(): the hardware TLB only
            else:
                shadow_sync.flush_tlb_guest(cpu)  # b53e84eed08b: sync the shadow pages, then flush
        delta, self.pending_ns = self.pending_ns, 0
        self.stats[G["preempted_ns"]] += delta
        if copy is not None:
            copy[ST_VERSION] += 2
            copy[ST_STEAL] += delta
            ctx.point("steal.record.writeback")
            # kvm_write_guest_cached(): the whole struct, preempted included (a
            # FLUSH set by G2 since the copy was read is overwritten here)
            for k in (ST_VERSION, ST_STEAL, ST_PREEMPTED):
                mm.store(a + k, copy[k])
            ctx.ev(ev.STEAL_WRITEBACK, copy[ST_PREEMPTED])
        else:
            v = mm.load(a + ST_VERSION)
            mm.store(a + ST_VERSION, v + 1)
            mm.wmb()  # version odd before steal: pairs with the guest's reads of steal (not modelled)
            mm.store(a + ST_STEAL, mm.load(a + ST_STEAL) + delta)
            mm.wmb()  # steal before version even
            mm.store(a + ST_VERSION, v + 2)


__all__ = ["StealTime", "PREEMPTED", "FLUSH_TLB", "METHODS"]
