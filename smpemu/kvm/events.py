"""Protocol events: the codes ``ctx.ev(code, a, b)`` records, named where they are emitted.

Why it exists: a trace explains a violation only if every event says what
happened.  The protocol code emits small integer codes (a trace ring holds
int64 words); this is their one table: a named constant per code for the
code that emits it, and the name and the meaning of the two operands that
``harness.trace`` renders.  A new event is added here, once.
"""

from __future__ import annotations

SET_DIRTY = 1  # a zap set remote_tlbs_dirty (a: the value stored)
ZAP = 2  # an spte zapped (a: slot, b: gfn)
FLUSH_CLEARED = 3  # a flush cleared the dirty flag / count
FLUSH_SENT = 4  # a flush sent its requests (a: targets, b: the requester's ipis_sent so far)
FLUSH_ACKED = 5  # every request of a flush was acked
SERVED = 6  # a vCPU served a request: TLB flushed, ack written
TLB_FILL = 7  # a TLB entry filled by a page walk (a: slot, b: pfn)
INVLPG = 8  # a guest invlpg (a: slot)
NOTIFIER_ZAPPED = 9  # the mmu notifier zapped a gfn's sptes (a: gfn, b: how many)
NOTIFIER_DIRTY = 10  # the notifier read the dirty flag (a: its value)
FREE = 11  # the host freed a frame (a: gfn, b: pfn)
VIOLATION = 12  # the oracle recorded a violation (a: kind, b: pfn)
WRITE_PROTECT = 13  # the sync path write-protected a gfn (a: gfn, b: whether an spte was protected)
FAULT = 14  # a shadow fault (a: slot, b: gfn)
COUNT_READ = 15  # tlbs-dirty: the count read before a flush (a: seen)
COUNT_CMPXCHG = 16  # tlbs-dirty: cmpxchg(count, seen, 0) (a: seen, b: found; cleared only if found == seen)
# steal time and the guest's shootdowns (issue 19: kvm/steal.py, kvm/shootdown.py)
SCHED_OUT = 17  # sched-out stored preempted (a: the value)
SCHED_IN = 18  # sched-in raised the steal-time request
STEAL_RECORD = 19  # entry: xchg(preempted, 0) (a: the old value; pv-writeback: the copy's)
STEAL_WRITEBACK = 20  # pv-writeback: the whole struct written back (a: the preempted value it carries)
PV_CMPXCHG = 21  # guest: cmpxchg FLUSH into a target's preempted (a: target vCPU, b: whether it took)
GUEST_IPI = 22  # guest: a flush IPI sent (a: target vCPU)
GUEST_HANDLER = 23  # guest: the flush handler ran (a: initiator, b: 0 up to date, 1 one page, 2 all)
SHOOTDOWN_DONE = 24  # guest: a shootdown returned (a: slot, b: its latency in us)
GUEST_FREED = 25  # guest: a frame freed after its shootdown (a: gfn)
RANGE_INVALIDATION = 26  # invalidate_range_start of one page: no pte lock, no mark (a: gfn)

# code -> (name, meaning of a, meaning of b): what a rendered trace shows
EVENTS = {
    SET_DIRTY: ("set dirty", "value", ""),
    ZAP: ("zap spte", "slot", "gfn"),
    FLUSH_CLEARED: ("flush: dirty = 0", "", ""),
    FLUSH_SENT: ("flush: requests sent", "targets", "ipis_sent"),
    FLUSH_ACKED: ("flush: all acked", "", ""),
    SERVED: ("serve: TLB flushed, ack", "", ""),
    TLB_FILL: ("TLB fill", "slot", "pfn"),
    INVLPG: ("invlpg", "slot", ""),
    NOTIFIER_ZAPPED: ("notifier: zapped", "gfn", "n"),
    NOTIFIER_DIRTY: ("notifier: dirty?", "value", ""),
    FREE: ("free", "gfn", "pfn"),
    VIOLATION: ("VIOLATION", "kind", "pfn"),
    WRITE_PROTECT: ("write-protect", "gfn", "protected"),
    FAULT: ("fault", "slot", "gfn"),
    COUNT_READ: ("flush: count read", "seen", ""),
    COUNT_CMPXCHG: ("flush: cmpxchg(count, seen, 0)", "seen", "found"),
    SCHED_OUT: ("sched out: store preempted", "value", ""),
    SCHED_IN: ("sched in: steal update requested", "", ""),
    STEAL_RECORD: ("entry: xchg(preempted, 0)", "old", ""),
    STEAL_WRITEBACK: ("entry: struct written back, preempted", "value", ""),
    PV_CMPXCHG: ("guest: cmpxchg FLUSH into preempted", "vcpu", "ok"),
    GUEST_IPI: ("guest: flush IPI", "vcpu", ""),
    GUEST_HANDLER: ("guest: flush handler", "initiator", "kind"),
    SHOOTDOWN_DONE: ("guest: shootdown done", "slot", "us"),
    GUEST_FREED: ("guest: frame freed", "gfn", ""),
    RANGE_INVALIDATION: ("notifier: range invalidation", "gfn", ""),
}
# the events of the dirty flag and the flushes (what a focused trace always keeps): the counter
# policies' count reads and cmpxchgs too
FLUSH_EVENTS = frozenset({SET_DIRTY, FLUSH_CLEARED, FLUSH_SENT, FLUSH_ACKED, NOTIFIER_DIRTY, COUNT_READ,
                          COUNT_CMPXCHG})
# steal time and the guest's shootdowns (a focused trace keeps them too)
PV_EVENTS = frozenset(range(SCHED_OUT, GUEST_FREED + 1))

__all__ = ["EVENTS", "FLUSH_EVENTS", "PV_EVENTS"] + [n for n in dir()
                                                  if n.isupper() and n not in ("EVENTS", "FLUSH_EVENTS", "PV_EVENTS")]
