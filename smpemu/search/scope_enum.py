"""Every small scenario, once: the alphabet, the start states, the canonical enumeration.

Why it exists: ``smpemu check --scope N`` (search/scope.py) explores *every*
scenario of up to N operations, so that what a policy survives is computed,
not argued from one hand-written scenario.  This module says what "every"
means: the operations (the script's own, ``ALPHABET``), the start states
(``START_STATES``), how ops are dealt to actors, and which scenarios are the
same up to renaming (one canonical representative each) or cannot reach a
flush-relevant state (dropped).  docs/check.md ("The scope search") argues
why no distinct scenario is lost, and tests/test_scope.py compares the
reduced enumeration with the unreduced one.

A scenario is ``Scn(start, v0, cachers, hosts)``: the start state, vCPU0's
program (the owner: its setup maps and touches the start's pages), the
programs of the other vCPUs (each caches U in its setup: a TLB entry a
flush must remove), and the host processes' programs.  A program is a tuple
of letters; a letter is an op in the script format, as a tuple.  In the
two-process start (``Start(1, d, 2)``, ``reused_letters``) ``cachers`` is
(vCPU1's program, in process 2; vCPU2's, caching U writable), in that order,
and there is no host.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, NamedTuple

U = ("u", 0, 0)
M = ("u", 0, 1)
PAGES = (U, M)


class Start(NamedTuple):
    pages: int  # 1: U; 2: U and M (both mapped and touched, writable, by vCPU0 in its setup)
    dirty: int  # the policy's dirty flag / counter at the start (script "dirty")
    procs: int = 1  # 2: the two-process start (reused_letters): U's frame reused as process 2's page table


# the two-process start comes last: the one-process starts' enumeration order (and so which of equal-cost
# violations is the minimal one) is what it was before it was added
START_STATES = tuple(Start(p, d) for p in (1, 2) for d in (0, 1)) + tuple(Start(1, d, 2) for d in (0, 1))
PT2 = ("pt", 2)  # process 2's page-table frame (script: ["pt", 2])


def vcpu_letters(pages: int) -> list[tuple]:
    out = []
    for P in PAGES[:pages]:
        out += [("touch", P, True), ("access", P, False), ("access", P, True), ("unmap", P), ("invlpg", P),
                ("write_pte", P, None)]
    out += [("pt_write", 1), ("invlpg_pt", 1), ("cr3", 1), ("flush",)]
    return out


def host_letters(pages: int) -> list[tuple]:
    out = []
    for P in PAGES[:pages]:
        out += [("reclaim", P), ("invalidate_range", P)]
    out += [("reclaim_freed", 0), ("flush",)]
    return out


# The two-process start (``Start(1, d, 2)``): a frame the guest reused as a page table while another
# vCPU still caches it writable (f81602958c11's missed flush; scenarios.py's ``sync-drop``).  Guest
# processes 1 and 2; vCPU v runs in process v % 2 + 1 (kvm/guest.py), so vCPU0 and vCPU2 share
# process 1's page tables and vCPU1 runs process 2.  Setup: vCPU0 points U's pte at process 2's
# page-table frame G and writes through it (an spte maps U -> G writable), then clears U's pte without
# invlpg (the guest freed U; KVM sees it at the next sync: the page is unsync) and invlpgs its page
# table's kernel mapping (the kunmap after a pte write); vCPU2 then caches U writable, from the spte
# the unsynced clear left.  No host process: the race it is for is the sync's write protection.
def reused_letters(proc: int) -> list[tuple]:
    """The letters of a vCPU of the two-process start: process 1's (U's pte is already clear, so
    neither ``unmap U`` nor ``write_pte U null``), or process 2's own page-table ops."""
    if proc == 2:
        return [("cr3", 2), ("pt_write", 2), ("flush",)]
    return [("touch", U, True), ("access", U, False), ("access", U, True), ("invlpg", U), ("pt_write", 1),
            ("invlpg_pt", 1), ("cr3", 1), ("flush",)]


ALPHABET = {"vcpu": vcpu_letters(2), "host": host_letters(2), "vcpu (two processes)": reused_letters(1),
            "vcpu of process 2": reused_letters(2)}
HOST_FREES = {"reclaim", "reclaim_freed", "invalidate_range"}  # a host op that frees a frame (lost_flush's end)
WRITES = {"touch", "pt_write"}  # guest writes, besides ("access", P, True)
# the ops that can flush (issue 18's --max-flushers): always, and where the policy's zap flushes
FLUSH_OPS_HOST = {"reclaim", "reclaim_freed", "invalidate_range", "flush"}
FLUSH_OPS_VCPU = {"flush", "cr3"}
ZAP_OPS = {"invlpg", "unmap", "touch"}


class Scn(NamedTuple):
    start: Start
    v0: tuple
    cachers: tuple  # of programs (sorted: equal starts, so the order is a renaming)
    hosts: tuple  # of programs, each non-empty (sorted)

    @property
    def ops(self) -> int:
        return len(self.v0) + sum(map(len, self.cachers)) + sum(map(len, self.hosts))


def _progs(letters, n, min_len=0):
    """Every program of ``min_len``..``n`` letters, shortest first."""
    for k in range(min_len, n + 1):
        yield from itertools.product(letters, repeat=k)


def _pkey(p):
    return (len(p), p)


def _multisets(by_len, count, total, min_len) -> Iterator[tuple]:
    """Tuples of ``count`` programs, sorted by ``_pkey``, whose lengths sum to ``total``."""
    flat = sorted((p for k in by_len if k >= min_len for p in by_len[k]), key=_pkey)

    def rec(k, left, lo):
        if k == 0:
            if left == 0:
                yield ()
            return
        for i in range(lo, len(flat)):
            p = flat[i]
            if len(p) > left:
                break  # flat is sorted by length
            for rest in rec(k - 1, left - len(p), i):
                yield (p,) + rest

    yield from rec(count, total, 0)


def _by_len(letters, n, min_len):
    out = {}
    for p in _progs(letters, n, min_len):
        out.setdefault(len(p), []).append(p)
    return out


def swap_pages(x):
    if x == U:
        return M
    if x == M:
        return U
    if isinstance(x, tuple):
        return tuple(swap_pages(y) for y in x)
    return x


def canonical(s: Scn) -> Scn:
    """The representative of ``s``'s class: cachers and hosts sorted (actors with
    equal starts are interchangeable); with no cacher, U and M (equal starts)
    renamed so that the scenario is the smaller of the two namings."""
    if s.start.procs == 2:  # vCPU1 (process 2) and vCPU2 (caches U) are not alike: nothing to rename
        return s
    c = Scn(s.start, s.v0, tuple(sorted(s.cachers, key=_pkey)), tuple(sorted(s.hosts, key=_pkey)))
    if s.start.pages == 2 and not s.cachers:
        d = Scn(s.start, swap_pages(s.v0), (), tuple(sorted((swap_pages(h) for h in s.hosts), key=_pkey)))
        c = min(c, d, key=_key)
    return c


def _key(s: Scn):
    return repr(s)


def _letters_of(s: Scn):
    for p in (s.v0, *s.cachers):
        for op in p:
            yield "v", op
    for p in s.hosts:
        for op in p:
            yield "h", op


def well_formed(s: Scn) -> bool:
    """What the script interpreter can run to its end: a page is unmapped (or its
    pte cleared) at most once; reclaim_freed only of a page vCPU0 unmaps."""
    seen = {}
    for who, op in _letters_of(s):
        if op[0] in ("unmap", "write_pte"):
            if seen.get(op[1]):
                return False
            seen[op[1]] = True
    if any(op == ("reclaim_freed", 0) for _, op in _letters_of(s)):
        if not any(op[0] == "unmap" for op in s.v0):
            return False
        if sum(op == ("reclaim_freed", 0) for _, op in _letters_of(s)) > 1:
            return False
    return True


def relevant(s: Scn) -> bool:
    """Can ``s`` reach a state the oracle judges?  lost_flush and stale_access need
    a host free (the oracle's check 1 runs at a free, check 2 needs a pfn whose
    generation moved: only a host free moves it); stale_write needs a sync
    (cr3) and a guest write.  A second page that no op names only adds an entry
    nobody uses: that scenario is represented by the one-page one (``representative``)."""
    ops = list(_letters_of(s))
    if any(w == "h" and op[0] in HOST_FREES for w, op in ops):
        return True
    has_sync = any(op[0] == "cr3" for _, op in ops)
    has_write = any(op[0] in WRITES or (op[0] == "access" and op[2]) for w, op in ops if w == "v")
    return has_sync and has_write


def representative(s: Scn) -> Scn:
    """The scenario the reduced enumeration explores for ``s``: canonical, and a
    second page no op names left out of the start."""
    c = canonical(s)
    if c.start.pages == 2 and not any(M in op for _, op in _letters_of(c)):
        c = Scn(Start(1, c.start.dirty), c.v0, c.cachers, c.hosts)
    return c


def flushers(s: Scn, zap_flushes: bool) -> int:
    """Actors with an op that can flush under the policy (issue 18's definition)."""
    vset = FLUSH_OPS_VCPU | (ZAP_OPS if zap_flushes else set())
    n = sum(any(op[0] in vset for op in p) for p in (s.v0, *s.cachers))
    return n + sum(any(op[0] in FLUSH_OPS_HOST for op in p) for p in s.hosts)


@dataclass(frozen=True)
class Limits:
    vcpus: int = 3  # actors: vCPU0 and up to vcpus - 1 cachers
    hosts: int = 2
    pages: int = 2  # start states of up to this many pages (U; U and M)
    procs: int = 2  # 2: the two-process start too (it needs 3 vCPUs)


def scenarios_of_size(n: int, lim: Limits, reduce: bool = True) -> Iterator[Scn]:
    """Every scenario of exactly ``n`` ops (canonical ones only if ``reduce``),
    in a fixed order."""
    for start in START_STATES:
        if start.pages > lim.pages:
            continue
        if start.procs == 2:
            if lim.procs >= 2 and lim.vcpus >= 3:
                yield from _reused(start, n, reduce)
            continue
        vl, hl = vcpu_letters(start.pages), host_letters(start.pages)
        vby = _by_len(vl, n, 0)
        hby = _by_len(hl, n, 1)
        memo = {}

        def group(by, count, total, min_len, kind):
            key = (kind, count, total)
            if key not in memo:
                gen = _multisets if reduce else _tuples
                memo[key] = list(gen(by, count, total, min_len))
            return memo[key]

        for nc in range(lim.vcpus):
            for nh in range(lim.hosts + 1):
                for n0 in range(n + 1):
                    for nv in range(n - n0 + 1):
                        nhops = n - n0 - nv
                        if (nh == 0) != (nhops == 0) or nhops < nh or (nc == 0 and nv):
                            continue
                        cgroups = group(vby, nc, nv, 0, "v")
                        hgroups = group(hby, nh, nhops, 1, "h")
                        for v0 in vby.get(n0, []):
                            for cs in cgroups:
                                for hs in hgroups:
                                    s = Scn(start, v0, cs, hs)
                                    if not well_formed(s):
                                        continue
                                    if reduce and (not relevant(s) or representative(s) != s):
                                        continue
                                    yield s


def _reused(start: Start, n: int, reduce: bool = True) -> Iterator[Scn]:
    """The two-process start's scenarios of ``n`` ops: vCPU0, vCPU1 (process 2) and vCPU2 (caches U
    writable) always present (a program may be empty), no host; each scenario is its own class."""
    p1, p2 = _by_len(reused_letters(1), n, 0), _by_len(reused_letters(2), n, 0)
    for n0 in range(n + 1):
        for n1 in range(n - n0 + 1):
            for v0 in p1.get(n0, []):
                for a in p2.get(n1, []):
                    for c in p1.get(n - n0 - n1, []):
                        s = Scn(start, v0, (a, c), ())
                        if not reduce or relevant(s):
                            yield s


def _tuples(by_len, count, total, min_len):
    """Ordered tuples (the unreduced enumeration)."""
    flat = [p for k in sorted(by_len) for p in by_len[k] if k >= min_len]

    def rec(k, left):
        if k == 0:
            if left == 0:
                yield ()
            return
        for p in flat:
            if len(p) <= left:
                for rest in rec(k - 1, left - len(p)):
                    yield (p,) + rest

    yield from rec(count, total)


def to_script(s: Scn, bound: int | None = None) -> dict:
    """The scenario as a script (workloads/script.py format, with ``setup``)."""
    if s.start.procs == 2:
        return _reused_script(s, bound)
    pages = [list(P) for P in PAGES[:s.start.pages]]
    setup0 = [["map", P] for P in pages] + [["touch", P, True] for P in pages]
    cpus = {"0": setup0 + [_op(o) for o in s.v0]}
    setup = {"0": len(setup0)}
    for i, p in enumerate(s.cachers, 1):
        cpus[str(i)] = [["access", list(U), False]] + [_op(o) for o in p]
        setup[str(i)] = 1
    script = {"cpus": cpus, "setup": setup}
    if s.hosts:
        script["hosts"] = {str(i): [_op(o) for o in p] for i, p in enumerate(s.hosts)}
    if s.start.dirty:
        script["dirty"] = s.start.dirty
    if bound is not None:
        script["bound"] = bound
    return script


def _reused_script(s: Scn, bound: int | None) -> dict:
    u = list(U)
    setup0 = [["write_pte", u, list(PT2)], ["access", u, True], ["write_pte", u, None], ["invlpg_pt", 1]]
    setup2 = [["access", u, True]]
    a, c = s.cachers
    script = {"procs": 2, "cpus": {"0": setup0 + [_op(o) for o in s.v0], "1": [_op(o) for o in a],
                                   "2": setup2 + [_op(o) for o in c]},
              "setup": {"0": len(setup0), "2": len(setup2)}}
    if s.start.dirty:
        script["dirty"] = s.start.dirty
    if bound is not None:
        script["bound"] = bound
    return script


def _op(o):
    return [list(x) if isinstance(x, tuple) else x for x in o]


def describe(s: Scn) -> str:
    """One line: the scenario's programs."""
    def prog(p):
        return "; ".join(" ".join(_name(x) for x in op) for op in p) or "-"
    if s.start.procs == 2:
        a, c = s.cachers
        return (f"[start: two processes; U's frame reused as process 2's page table G, U's pte cleared "
                f"unsynced; dirty {s.start.dirty}] vCPU0: {prog(s.v0)} | vCPU1 (process 2): {prog(a)} | "
                f"vCPU2 (caches U -> G writable): {prog(c)}")
    parts = [f"vCPU0: {prog(s.v0)}"] + [f"vCPU{i} (caches U): {prog(p)}" for i, p in enumerate(s.cachers, 1)]
    parts += [f"host{i}: {prog(p)}" for i, p in enumerate(s.hosts)]
    start = "U" if s.start.pages == 1 else "U, M"
    return f"[start: {start} mapped by vCPU0, dirty {s.start.dirty}] " + " | ".join(parts)


def _name(x):
    return {U: "U", M: "M"}.get(x, str(x).lower() if isinstance(x, bool) else str(x))


__all__ = ["ALPHABET", "START_STATES", "Start", "Scn", "Limits", "scenarios_of_size", "canonical", "relevant",
           "representative", "well_formed", "flushers", "to_script", "describe", "reused_letters"]
