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
}
# the events of the dirty flag and the flushes (what a focused trace always keeps)
FLUSH_EVENTS = frozenset({SET_DIRTY, FLUSH_CLEARED, FLUSH_SENT, FLUSH_ACKED, NOTIFIER_DIRTY})

__all__ = ["EVENTS", "FLUSH_EVENTS"] + [n for n in dir() if n.isupper() and n not in ("EVENTS", "FLUSH_EVENTS")]
