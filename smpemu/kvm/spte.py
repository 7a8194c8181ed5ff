"""Shadow pte encoding: one int64 word, so one store publishes a whole spte.

A page walk reads the spte with one load, so it sees either the old or the new
spte, never a mix.  The pfn's generation at install time rides in the spte:
a TLB entry filled from it remembers which incarnation of the host page it
maps, and the oracle flags any use after the host freed that incarnation.

bits 0 present | 1 writable | 2-23 pfn (22) | 24-45 gfn (22) | 46-62 gen (17)
Generations compare modulo 2**17 (a pfn would have to be freed exactly a
multiple of 131072 times between fill and use to hide a stale entry).
"""

PRESENT = 1
WRITABLE = 2
_PFN_SHIFT, _GFN_SHIFT, _GEN_SHIFT = 2, 24, 46
_M22 = (1 << 22) - 1
GEN_MASK = (1 << 17) - 1
MAX_FRAMES = 1 << 22


def encode(pfn: int, gfn: int, gen: int, writable: bool) -> int:
    return (
        PRESENT
        | (WRITABLE if writable else 0)
        | (pfn << _PFN_SHIFT)
        | (gfn << _GFN_SHIFT)
        | ((gen & GEN_MASK) << _GEN_SHIFT)
    )


def pfn_of(s: int) -> int:
    return (s >> _PFN_SHIFT) & _M22


def gfn_of(s: int) -> int:
    return (s >> _GFN_SHIFT) & _M22


def gen_of(s: int) -> int:
    return (s >> _GEN_SHIFT) & GEN_MASK


def write_protect(s: int) -> int:
    return s & ~WRITABLE
