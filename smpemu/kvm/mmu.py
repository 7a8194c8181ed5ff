"""The shadow MMU: faults, invlpg, rmap, write protection, mmu notifier.

Why it exists: these are the KVM paths of the seed (arch/x86/kvm/mmu.c and
paging_tmpl.h of 2009, virt/kvm/kvm_main.c's notifier), written over the
shared arena.  Everything a flush policy may change is delegated to
``ctx.policy``; everything else (locking, rmap bookkeeping, the notifier
retry protocol) is the same for every policy, so policies cannot cheat.

Encodings: rmap cells hold slot+1 and memslot cells hold pfn+1 (0 = empty),
so a zero-filled arena is an empty MMU.
"""

from __future__ import annotations

from smpemu.kvm import events as ev
from smpemu.kvm import spte as S
from smpemu.errors import AbortError
from smpemu.kvm.locks import lock, unlock
from smpemu.kvm.layout import C, CTL_NFREE, CTL_NOTIFIER_COUNT, CTL_NOTIFIER_SEQ

FAULT_OK = 0
GUEST_PF = 1  # the guest page table has no mapping: inject #PF into the guest
FAULT_RETRY = 2  # raced an invalidation: re-enter the guest and fault again (RET_PF_RETRY)


class MMU:
    """Addresses of the MMU's fields plus the paths that use them."""

    def __init__(self, ctx, guest):
        """``guest``: the GuestLayout (which gfns are page tables, where each
        one's ptes are: sync_page reads them)."""
        self.ctx = ctx
        self.guest = guest
        L = ctx.arena.layout
        F = L.fields  # the dict itself: smpemu check builds every MMU once per schedule
        self.W = ctx.arena.words
        self.a_spte = F["spte"].offset
        self.a_gpte = F["gpte"].offset
        self.a_rmap = F["rmap"].offset
        self.rmap_n = L.geometry.rmap_size
        self.a_unsync = F["unsync"].offset
        self.a_wp_time = F["wp_time_ns"].offset
        self.a_memslot = F["memslot"].offset
        self.a_reclaiming = F["reclaiming"].offset
        self.a_free = F["free_pfns"].offset
        self.a_gen = F["pfn_gen"].offset
        self.a_nfree = ctx.arena.ctl_addr(CTL_NFREE)
        self.a_nseq = ctx.arena.ctl_addr(CTL_NOTIFIER_SEQ)
        self.a_ncount = ctx.arena.ctl_addr(CTL_NOTIFIER_COUNT)
        self.n_pt_gfns = guest.n_pt_gfns

    # -- host memory: gfn -> pfn (the host mm, under pfn_lock) ------------------
    def _pfn_lock(self):
        lock(self.ctx, self.ctx.pfn_lk)

    def _pfn_unlock(self):
        unlock(self.ctx, self.ctx.pfn_lk)

    def gfn_to_pfn(self, gfn: int) -> int:
        """Find or allocate (swap in) the host page backing ``gfn``."""
        W = self.W
        self._pfn_lock()
        try:
            cur = W[self.a_memslot + gfn]
            if cur:
                return cur - 1
            n = W[self.a_nfree]
            if n <= 0:
                raise AbortError("host out of pfns (guest-mem larger than host frames)")
            pfn = W[self.a_free + n - 1]
            W[self.a_nfree] = n - 1
            W[self.a_memslot + gfn] = pfn + 1
            return pfn
        finally:
            self._pfn_unlock()

    # -- rmap (under mmu_lock) ----------------------------------------------------
    def rmap_remove(self, gfn: int, slot: int) -> None:
        W = self.W
        base = self.a_rmap + gfn * self.rmap_n
        for k in range(self.rmap_n):
            if W[base + k] == slot + 1:
                W[base + k] = 0
                return

    def rmap_add(self, gfn: int, slot: int) -> None:
        """Add ``slot`` to rmap[gfn].

        The rmap is bounded: when it is full, the oldest spte is zapped (through
        the policy, as invlpg zaps: the policy flushes or defers), never
        silently forgotten.
        """
        W = self.W
        base = self.a_rmap + gfn * self.rmap_n
        free = -1
        for k in range(self.rmap_n):
            v = W[base + k]
            if v == slot + 1:
                return
            if v == 0 and free < 0:
                free = k
        if free < 0:
            victim = W[base] - 1
            self.ctx.counters[C["rmap_evictions"]] += 1
            self.ctx.policy.zap(self.ctx, self, victim, gfn, "evict")
            free = 0
            for k in range(self.rmap_n):
                if W[base + k] == 0:
                    free = k
                    break
        W[base + free] = slot + 1

    def rmap_slots(self, gfn: int) -> list[int]:
        W = self.W
        base = self.a_rmap + gfn * self.rmap_n
        return [W[base + k] - 1 for k in range(self.rmap_n) if W[base + k]]

    def zap_spte(self, slot: int, gfn: int) -> None:
        """Make the spte non-present and drop it from the rmap (mmu_lock held)."""
        self.rmap_remove(gfn, slot)
        self.ctx.mm.store(self.a_spte + slot, 0)
        self.ctx.ev(ev.ZAP, slot, gfn)

    def is_pt_gfn(self, gfn: int) -> bool:
        return gfn < self.n_pt_gfns

    # -- shadow page fault -----------------------------------------------------------
    def shadow_fault(self, slot: int, write: bool) -> int:
        """Install the spte for ``slot`` from the guest pte.

        If an mmu-notifier invalidation raced with us (mmu_notifier_retry),
        return FAULT_RETRY: the vCPU re-enters guest mode, which serves the
        invalidation's flush request, and faults again.  Retrying in here
        instead would never ack that flush while the invalidation waits for it.
        """
        ctx = self.ctx
        mm = ctx.mm
        W = self.W
        ctx.counters[C["faults"]] += 1
        seq = mm.load(self.a_nseq)
        mm.rmb()  # seq before gfn_to_pfn: pairs with the seq bump in host_invalidate()
        gfn = W[self.a_gpte + slot] - 1
        if gfn < 0:
            return GUEST_PF
        pfn = self.gfn_to_pfn(gfn)
        ctx.mmu_lock()
        try:
            if mm.load(self.a_ncount) or mm.load(self.a_nseq) != seq:
                ctx.counters[C["fault_retries"]] += 1
                return FAULT_RETRY  # an invalidation ran since we looked the pfn up
            if W[self.a_gpte + slot] - 1 != gfn:
                return FAULT_RETRY  # the guest remapped meanwhile: walk again
            old = mm.load(self.a_spte + slot)
            writable = True
            if self.is_pt_gfn(gfn):
                # a shadowed guest page table: read-only unless unsync
                if write:
                    W[self.a_unsync + gfn] = 1
                writable = bool(W[self.a_unsync + gfn])
            if old & S.PRESENT:
                if S.pfn_of(old) == pfn and S.gfn_of(old) == gfn:
                    if writable and not (old & S.WRITABLE):
                        # upgrade in place (unsync): no stale mapping to flush
                        mm.store(self.a_spte + slot, old | S.WRITABLE)
                    return FAULT_OK
                ctx.policy.zap(ctx, self, slot, S.gfn_of(old), "fault")
            self.rmap_add(gfn, slot)
            gen = W[self.a_gen + pfn]
            mm.store(self.a_spte + slot, S.encode(pfn, gfn, gen, writable))
        finally:
            ctx.mmu_unlock()
        return FAULT_OK

    # -- invlpg ----------------------------------------------------------------------
    def invlpg(self, slot: int) -> None:
        """FNAME(invlpg): zap one spte under mmu_lock; the policy decides the
        remote flush; the caller requests the local flush."""
        ctx = self.ctx
        ctx.counters[C["invlpg"]] += 1
        ctx.ev(ev.INVLPG, slot)
        ctx.mmu_lock()
        try:
            old = ctx.mm.load(self.a_spte + slot)
            if old & S.PRESENT:
                ctx.policy.zap(ctx, self, slot, S.gfn_of(old), "invlpg")
        finally:
            ctx.mmu_unlock()

    # -- cr3 write: mmu_sync_children ----------------------------------------------------
    def rmap_write_protect(self, gfn: int) -> bool:
        """Clear the writable bit of every spte mapping gfn (mmu_lock held)."""
        mm = self.ctx.mm
        protected = False
        for slot in self.rmap_slots(gfn):
            s = mm.load(self.a_spte + slot)
            if s & S.WRITABLE:
                mm.store(self.a_spte + slot, S.write_protect(s))
                protected = True
        return protected

    def sync_children(self, pt_gfns) -> None:
        """mmu_sync_children on a cr3 write, under mmu_lock (2009 ran it from
        mmu_sync_roots, under the lock; so did every later kernel), in
        upstream's order: write-protect the unsync guest page tables
        reachable from the new cr3, flush as the policy says, then sync each
        one (``sync_page``); then tell the oracle the sync is done."""
        ctx = self.ctx
        W = self.W
        synced = []
        protected = False
        ctx.mmu_lock()
        try:
            t_wp = ctx.clock.sync()  # before any spte is write-protected
            for gfn in pt_gfns:
                if W[self.a_unsync + gfn]:
                    protected |= self.rmap_write_protect(gfn)
                    W[self.a_unsync + gfn] = 0
                    synced.append(gfn)
            for gfn in synced:
                ctx.ev(ev.WRITE_PROTECT, gfn, int(protected))
            # we hold mmu_lock: a policy whose flush takes it must not take it again
            ctx.policy.flush_cond_locked(ctx, protected, "sync")
            for gfn in synced:
                self.sync_page(gfn)
        finally:
            ctx.mmu_unlock()
        # the sync path returned: from now on no TLB may write these gfns
        # through an entry filled before t_wp (oracle check 3)
        for gfn in synced:
            W[self.a_wp_time + gfn] = t_wp

    def sync_page(self, pt_gfn: int) -> None:
        """FNAME(sync_page) of an unsync guest page table (mmu_lock held):
        the guest wrote its ptes without a trap, so an spte whose guest pte no
        longer maps the spte's gfn (cleared, or pointing elsewhere) is dropped,
        through the policy's zap at site "sync" (2.6.31-2.6.37 dropped it with
        no remote flush; 2.6.38 bumped tlbs_dirty; 5.15 flushes at once:
        docs/timeline.md).  Where no guest pte changed it reads and does
        nothing: no scheduling point."""
        mm = self.ctx.mm
        W = self.W
        a_spte, a_gpte = self.a_spte, self.a_gpte
        for slot in self.guest.pt_slots(pt_gfn):
            s = mm.load(a_spte + slot)  # sptes change under mmu_lock only, which we hold
            # the guest pte: guest memory the guest writes with no trap, read
            # racily as kvm_read_guest_atomic() does; a write after this read
            # makes the table unsync again (shadow_fault) for the next sync
            if s & S.PRESENT and W[a_gpte + slot] - 1 != S.gfn_of(s):
                self.ctx.counters[C["sync_drops"]] += 1
                self.ctx.policy.zap(self.ctx, self, slot, S.gfn_of(s), "sync")

    # -- host: mmu notifier invalidate + free ------------------------------------------------
    def host_invalidate(self, gfn: int) -> bool:
        """invalidate_page (kswapd's ptep_clear_flush_notify) before freeing
        gfn's page.  True if freed.

        One invalidate_page of a page at a time: in 2009 it ran from
        ptep_clear_flush_notify(), under the lock of the host pte it cleared,
        so two reclaimers never invalidate_page the same page at once (the
        second finds the pte gone and has nothing to unmap).  Here a
        reclaimer marks the gfn ``reclaiming`` under pfn_lock first; one that
        finds it marked returns at once; only the one that set the mark
        clears it.  A range invalidation (``host_invalidate_range``) takes no
        pte lock and no mark, so it can overlap an invalidate_page of the same
        page, as munmap or madvise(DONTNEED) could overlap kswapd in 2009.
        """
        ctx = self.ctx
        W = self.W
        if ctx.n_hosts == 1:
            # nobody else invalidates: no mark needed, and a one-reclaimer
            # run keeps the scheduling points it had (replay files)
            return self._invalidate(gfn, True)
        self._pfn_lock()
        try:
            busy = W[self.a_reclaiming + gfn]
            if not busy:
                W[self.a_reclaiming + gfn] = ctx.pid_index + 1
        finally:
            self._pfn_unlock()
        if busy:
            return False  # another reclaimer is invalidating this page: it frees it
        return self._invalidate(gfn, True)  # clears the mark when it frees, under pfn_lock

    def host_invalidate_range(self, gfn: int) -> bool:
        """invalidate_range_start/end over one page's hva, then the free
        (munmap, madvise(DONTNEED) with mmap_sem held for read, the balloon
        through QEMU's madvise): no host pte lock held, no mark taken.  True
        if it freed the page."""
        self.ctx.counters[C["range_invalidations"]] += 1
        self.ctx.ev(ev.RANGE_INVALIDATION, gfn)
        return self._invalidate(gfn, False)

    def _invalidate(self, gfn: int, page: bool) -> bool:
        """The notifier (the range_start/end shape) and the free.  Its flush
        follows ``--notifier``: 2009 after mmu_unlock, 2012 before it
        (565f3be21746): a second invalidation of the page that finds no spte
        returns only after the first one flushed.  ``page``: an
        invalidate_page, which clears its ``reclaiming`` mark at the free."""
        ctx = self.ctx
        mm = ctx.mm
        W = self.W
        policy = ctx.policy
        ctx.mmu_lock()
        try:
            mm.store(self.a_ncount, mm.load(self.a_ncount) + 1)
            zapped = False
            for slot in self.rmap_slots(gfn):
                self.zap_spte(slot, gfn)
                zapped = True
            ctx.ev(ev.NOTIFIER_ZAPPED, gfn, int(zapped))
            owed = policy.notifier_owes(ctx, zapped)  # 2.6.38: zapped | tlbs_dirty, read under the lock
            if ctx.params.notifier == "2012":
                policy.flush_cond_locked(ctx, owed, "notifier")  # before spin_unlock (3.4 on)
        finally:
            ctx.mmu_unlock()
        ctx.point("notifier.after_unlock")
        if ctx.params.notifier != "2012":
            policy.flush_cond(ctx, owed, "notifier")  # after spin_unlock (2009 to 3.3)
        freed = False
        self._pfn_lock()
        try:
            if page:  # flushed: the page may be reclaimed again (pairs with the mark in host_invalidate)
                W[self.a_reclaiming + gfn] = 0
            cur = W[self.a_memslot + gfn]
            if cur:
                pfn = cur - 1
                W[self.a_memslot + gfn] = 0
                W[self.a_gen + pfn] += 1
                ctx.ev(ev.FREE, gfn, pfn)
                if ctx.oracle is not None:
                    ctx.oracle.check_free(pfn, gfn)  # oracle check 1 (kvm/oracle.py)
                n = W[self.a_nfree]
                W[self.a_free + n] = pfn
                W[self.a_nfree] = n + 1
                freed = True
        finally:
            self._pfn_unlock()
        ctx.mmu_lock()
        try:
            mm.store(self.a_nseq, mm.load(self.a_nseq) + 1)
            mm.wmb()  # seq before count drop: pairs with rmb() in shadow_fault()
            mm.store(self.a_ncount, mm.load(self.a_ncount) - 1)
        finally:
            ctx.mmu_unlock()
        if freed:
            ctx.counters[C["reclaims"]] += 1
        return freed
