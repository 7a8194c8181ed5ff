"""The lost-flush oracle: judges the emulated state, never the policy's name.

Why it exists: a flush protocol is wrong exactly when a CPU can use a
translation to memory the host has taken back (or, check 4, that the guest
has taken back).  Four checks, each on state only.  Three of them run inline
on hot paths, so they are written where they run; this module records what
they find (``Oracle.record``) and runs the first.  Where each one runs:

1. ``LOST_FLUSH`` (host side, at free), ``Oracle.check_free`` below, called
   from ``kvm/mmu.py`` ``MMU.host_invalidate`` under pfn_lock, right after the
   pfn's generation is bumped: after the notifier's flush, the host frees a
   pfn; any vCPU whose TLB mirror still maps that pfn and that has no flush
   request pending holds a stale translation nobody will remove.
2. ``STALE_ACCESS`` (vCPU side, at access), inlined in ``kvm/vcpu.py``
   ``VCPU.access`` (the TLB-hit path: the entry's generation against
   ``pfn_gen`` of its pfn) and recorded by ``VCPU._check``, which also runs
   it on every fill (``VCPU._walk``): a guest access hits a TLB entry whose
   pfn generation is no longer the pfn's current generation: a use-after-free
   through a stale translation.
3. ``STALE_WRITE`` (vCPU side, at write, after a sync), inlined in
   ``VCPU.access`` next to check 2 (a write through an entry filled before
   ``wp_time_ns`` of its gfn) and recorded by ``VCPU._check``; ``wp_time_ns``
   is set in ``kvm/mmu.py`` ``MMU.sync_children`` once the sync path returned
   (the time taken before any spte was write-protected; ``VCPU._walk`` takes
   an entry's fill time before it loads the spte): a guest write through a
   writable TLB entry filled before mmu_sync_children write-protected that
   gfn, after the sync path returned: the shadow page table silently goes out
   of sync.
4. ``GUEST_STALE`` (vCPU side, at access, guest level), in
   ``kvm/shootdown.py`` (``Shootdowns._access``, which stands in for
   ``VCPU.access`` in runs whose guest shoots down TLBs): the guest frees a
   frame only after the shootdown that unmapped it returned to its initiator,
   and stamps the frame (``gfree_ns``); a guest access that then hits a TLB
   entry for that frame filled before the stamp reached the old frame through
   a translation the shootdown should have removed.  The state judged is the
   entry's fill time against the frame's free time, whatever flush method ran.

Each process writes its own violation records (first ``VIOL_MAX``) to its row
of the shared ``viol`` field; the coordinator gathers them (``gather``).
"""

from __future__ import annotations

from smpemu.kvm import events as ev
from smpemu.kvm.layout import C, VIOL_MAX

LOST_FLUSH = 1
STALE_ACCESS = 2
STALE_WRITE = 3
GUEST_STALE = 4
KIND_NAMES = {LOST_FLUSH: "lost_flush", STALE_ACCESS: "stale_access", STALE_WRITE: "stale_write",
              GUEST_STALE: "guest_stale"}
FIELDS = ("kind", "vcpu", "slot", "gfn", "pfn", "entry_gen", "cur_gen", "time_ns", "fill_ns", "reporter")


class Oracle:
    def __init__(self, ctx):
        self.ctx = ctx
        a = ctx.arena
        self.mirror = a.tlb_mirror
        self.mirror_slot = a.tlb_mirror_slot
        self.req_seq = a.req_seq
        self.ack_seq = a.ack_seq
        self.req_flag = a.req_flag
        self.viol = a.viol[ctx.pid_index]
        self.stop_on_violation = False

    def record(self, kind, vcpu, slot, gfn, pfn, entry_gen, cur_gen, fill_ns=0) -> None:
        ctx = self.ctx
        n = ctx.counters[C["violations"]]
        if n < VIOL_MAX:
            self.viol[n, : len(FIELDS)] = (
                kind, vcpu, slot, gfn, pfn, entry_gen, cur_gen,
                ctx.clock.stamp(), fill_ns, ctx.pid_index,
            )
        ctx.counters[C["violations"]] = n + 1
        ctx.ev(ev.VIOLATION, kind, pfn)
        if self.stop_on_violation:
            # stop everyone now, while the trace rings still hold the race
            ctx.W[ctx.stop_addr] = 1

    def _pending(self, v: int) -> bool:
        return bool(self.req_flag[v, 0]) or bool((self.req_seq[v] > self.ack_seq[v]).any())

    def check_free(self, pfn: int, gfn: int) -> None:
        """Check 1, run by whoever frees ``pfn`` (its generation already bumped)."""
        hits = (self.mirror == pfn + 1).nonzero()
        for v, i in zip(*hits):
            if self._pending(v):
                continue  # it will flush before it next runs guest code
            # re-read after the pending check: a vCPU clears its mirror before
            # it acks, so an entry still here now is really stale
            if self.mirror[v, i] != pfn + 1:
                continue
            gen = int(self.ctx.arena.pfn_gen[pfn])
            self.record(LOST_FLUSH, int(v), int(self.mirror_slot[v, i]), gfn, pfn, gen - 1, gen)


def gather(viol_rows, counters, t0_ns: int) -> list[dict]:
    """Violation records of every process as dicts, oldest first."""
    out = []
    for r in range(viol_rows.shape[0]):
        n = min(int(counters[r, C["violations"]]), VIOL_MAX)
        for k in range(n):
            rec = dict(zip(FIELDS, (int(x) for x in viol_rows[r, k, : len(FIELDS)])))
            rec["kind"] = KIND_NAMES.get(rec["kind"], str(rec["kind"]))
            rec["t_s"] = round((rec["time_ns"] - t0_ns) / 1e9, 6)
            out.append(rec)
    out.sort(key=lambda d: d["t_s"])
    return out
