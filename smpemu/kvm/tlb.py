"""A vCPU's private TLB: bounded, FIFO replacement, mirrored for the oracle.

Why it exists: a hardware TLB is per CPU and small; stale entries in *other*
CPUs' TLBs are the whole reason remote flushes exist.  The TLB itself is a
dict local to the vCPU process (fast lookups); each fill is also published to
this vCPU's row of the shared ``tlb_mirror`` *before* the entry is used, and a
flush clears the mirror *before* the flush is acked, so the host's check at
free time never misses an entry and never sees one that was already acked
away.
"""

from __future__ import annotations

from smpemu.kvm import spte as S

# entry tuple fields
E_PFN, E_GEN, E_WR, E_GFN, E_FILL_NS, E_IDX, E_GEN_ADDR = range(7)


class TLB:
    def __init__(self, size: int, mirror_row, mirror_slot_row, global_below: int):
        self.size = size
        self.map: dict[int, tuple] = {}
        self.slot_at = [-1] * size
        self.next = 0
        self.mirror = mirror_row  # numpy row: pfn+1 per entry, 0 = empty
        self.mirror_slot = mirror_slot_row
        self.global_below = global_below  # slots < this are kernel (global) mappings
        self.gen_base = 0  # word address of pfn_gen[0], set by the VCPU that owns this TLB

    def get(self, slot: int):
        return self.map.get(slot)

    def fill(self, slot: int, s: int, fill_ns: int) -> tuple:
        old = self.map.get(slot)
        if old is not None:
            i = old[E_IDX]
        else:
            i = self.next
            self.next = (i + 1) % self.size
            victim = self.slot_at[i]
            if victim >= 0:
                del self.map[victim]
            self.slot_at[i] = slot
        pfn = S.pfn_of(s)
        # publish before use: pairs with the oracle's mirror scan at host free
        self.mirror_slot[i] = slot
        self.mirror[i] = pfn + 1
        e = (pfn, S.gen_of(s), bool(s & S.WRITABLE), S.gfn_of(s), fill_ns, i, self.gen_base + pfn)
        self.map[slot] = e
        return e

    def flush_all(self) -> None:
        self.map.clear()
        self.slot_at = [-1] * self.size
        self.mirror[:] = 0  # cleared before the ack: pairs with Oracle.check_free()

    def flush_non_global(self) -> None:
        """cr3 write without PCID: drop user entries, keep global kernel ones."""
        for slot in [s for s in self.map if s >= self.global_below]:
            i = self.map.pop(slot)[E_IDX]
            self.slot_at[i] = -1
            self.mirror[i] = 0
