"""The guest: its address-space layout and the guest kernel's paths.

Why it exists: the seed's invlpg flood comes from a 32-bit highmem guest:
each first touch of a user page maps it through the CPU's kmap slot, zeroes
it, unmaps the slot (invlpg), and writes the guest pte; a free unmaps and invlpgs
each page.  Those guest-kernel paths are the same for every workload, so they
live here; workloads only decide which pages to touch and when.

Address space (spte/gpte slot = table * n_vpn + vpn):
- table 0, the kernel, global: vpn v < N is vCPU v's kmap slot; vpn N + g maps
  guest page-table page g (direct map, static).
- table 1 + p: guest process p.  vCPU v runs thread v // P of process v % P
  and mallocs in its own vpn range of that process; threads of a process
  share it, so one vCPU's pages can sit in another vCPU's TLB.
Guest frames: gfn < n_pt are page-table pages (1024 ptes each); the rest are
data frames, split into one pool per vCPU (the guest's per-CPU page lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from smpemu.errors import UsageError

PTES_PER_PT = 1024


@dataclass(frozen=True)
class GuestLayout:
    # the derived sizes are cached_property (computed once per layout: the
    # address helpers below use them on every guest op, and ``smpemu check``
    # rebuilds every vCPU's objects once per schedule)
    n_vcpus: int
    n_gfns: int
    n_procs: int
    pages_per_thread: int

    @staticmethod
    def plan(n_vcpus: int, n_gfns: int, n_procs: int | None = None) -> "GuestLayout":
        P = n_procs or max(1, (n_vcpus + 1) // 2)
        threads = -(-n_vcpus // P)
        # page-table pages take a small share; the rest is split per vCPU
        ppt = 1
        for cand in (512, 256, 128, 64, 32, 16, 8, 4):
            pt = P * -(-(threads * cand) // PTES_PER_PT)
            if (n_gfns - pt) // n_vcpus >= cand * 2:
                ppt = cand
                break
        else:
            raise UsageError(
                f"--guest-mem gives {n_gfns} guest pages: too small for {n_vcpus} vCPUs "
                f"(need at least {n_vcpus * 8 + P} pages)"
            )
        return GuestLayout(n_vcpus, n_gfns, P, ppt)

    @cached_property
    def threads_per_proc(self) -> int:
        return -(-self.n_vcpus // self.n_procs)

    @cached_property
    def user_vpns(self) -> int:
        return self.threads_per_proc * self.pages_per_thread

    @cached_property
    def pt_per_proc(self) -> int:
        return -(-self.user_vpns // PTES_PER_PT)

    @cached_property
    def n_pt_gfns(self) -> int:
        return self.n_procs * self.pt_per_proc

    @cached_property
    def n_vpn(self) -> int:
        return max(self.user_vpns, self.n_vcpus + self.n_pt_gfns)

    @cached_property
    def n_slots(self) -> int:
        return (self.n_procs + 1) * self.n_vpn

    @cached_property
    def pool_size(self) -> int:
        return (self.n_gfns - self.n_pt_gfns) // self.n_vcpus

    def slot(self, table: int, vpn: int) -> int:
        return table * self.n_vpn + vpn

    def kmap_slot(self, v: int) -> int:
        return self.slot(0, v)

    def pt_slot(self, pt_gfn: int) -> int:
        return self.slot(0, self.n_vcpus + pt_gfn)

    def pt_gfn_of(self, slot: int) -> int:
        table, vpn = divmod(slot, self.n_vpn)
        return (table - 1) * self.pt_per_proc + vpn // PTES_PER_PT

    def pt_slots(self, pt_gfn: int) -> range:
        """The slots whose guest ptes live in page-table page ``pt_gfn``
        (what FNAME(sync_page) reads when that page is synced)."""
        table = 1 + pt_gfn // self.pt_per_proc
        lo = (pt_gfn % self.pt_per_proc) * PTES_PER_PT
        return range(self.slot(table, lo), self.slot(table, min(lo + PTES_PER_PT, self.user_vpns)))

    def pt_gfns_of_table(self, table: int) -> range:
        lo = (table - 1) * self.pt_per_proc
        return range(lo, lo + self.pt_per_proc)

    def home_table(self, v: int) -> int:
        return 1 + v % self.n_procs

    def user_range(self, v: int) -> range:
        t = v // self.n_procs
        lo = self.slot(self.home_table(v), t * self.pages_per_thread)
        return range(lo, lo + self.pages_per_thread)

    def sibling_ranges(self, v: int) -> list[range]:
        return [self.user_range(u) for u in range(self.n_vcpus)
                if u != v and u % self.n_procs == v % self.n_procs]

    def pool(self, v: int) -> range:
        lo = self.n_pt_gfns + v * self.pool_size
        return range(lo, lo + self.pool_size)

    def data_gfns(self) -> range:
        return range(self.n_pt_gfns, self.n_pt_gfns + self.n_vcpus * self.pool_size)


class GuestKernel:
    """The guest kernel on one vCPU: page faults, kmap, unmap, frame pool."""

    def __init__(self, cpu, layout: GuestLayout):
        self.cpu = cpu
        self.L = layout
        self.me = cpu.ctx.pid_index
        self.free_gfns = list(layout.pool(self.me))
        a = cpu.ctx.arena
        F = a.layout.fields  # the dict itself: smpemu check builds this once per schedule
        self.W = a.words
        self.a_gpte = F["gpte"].offset
        self.freed_ring = F["freed_ring"].addr(self.me, 0)
        self.freed_ring_n = F["freed_ring"].shape[1]
        self.freed_head = F["freed_head"].addr(self.me, 0)
        self.kmap = layout.kmap_slot(self.me)

    def gfn_at(self, slot: int) -> int:
        return self.W[self.a_gpte + slot] - 1

    def touch(self, slot: int, write: bool = True) -> None:
        """A guest access that the guest kernel makes succeed (demand paging)."""
        cpu = self.cpu
        while not cpu.access(slot, write):
            self.page_fault(slot)

    def try_read(self, slot: int) -> bool:
        """Read a page some other thread owns, without demand paging.

        A racy guest read, or the hardware's speculative TLB fill: it walks
        the *shadow* table as the MMU does (never the guest pte first), so it
        can re-fill a TLB from an spte the guest already unmapped but KVM has
        not zapped yet: the window the v3 race needs.  Nothing happens if the
        page is not mapped (no #PF handling).
        """
        return self.cpu.access(slot, False)

    def page_fault(self, slot: int) -> None:
        self.map_page(slot, zero=True)

    def map_page(self, slot: int, zero: bool = True) -> None:
        """Give ``slot`` a fresh frame (zeroed through kmap for anonymous memory)."""
        gfn = self.free_gfns.pop()
        if zero:
            self.kmap_zero(gfn)
        self.set_gpte(slot, gfn)

    def kmap_zero(self, gfn: int) -> None:
        """kmap_atomic(page) into this CPU's slot, zero the page, kunmap_atomic.

        As in 2.6.29's x86-32 highmem: kunmap_atomic() clears the slot's pte
        and invlpgs it (kpte_clear_flush), so every first touch costs one
        invlpg of a per-CPU slot that no other CPU ever maps.
        """
        self.W[self.a_gpte + self.kmap] = gfn + 1
        self.touch(self.kmap, True)
        self.W[self.a_gpte + self.kmap] = 0
        self.cpu.invlpg(self.kmap)

    def set_gpte(self, slot: int, gfn: int) -> None:
        """Write the guest pte: a guest write to its page-table page."""
        self.touch(self.L.pt_slot(self.L.pt_gfn_of(slot)), True)
        self.W[self.a_gpte + slot] = gfn + 1

    def unmap(self, slot: int) -> None:
        """munmap one page: clear the pte, invlpg, give the frame back."""
        gfn = self.gfn_at(slot)
        if gfn < 0:
            return
        self.set_gpte(slot, -1)
        self.cpu.invlpg(slot)
        self.free_gfn(gfn)

    def free_gfn(self, gfn: int) -> None:
        """Give a frame back to this vCPU's pool, and tell the host (its freed ring)."""
        self.free_gfns.append(gfn)
        h = self.W[self.freed_head]
        self.W[self.freed_ring + h % self.freed_ring_n] = gfn
        self.W[self.freed_head] = h + 1  # single writer; the host reads it racily
