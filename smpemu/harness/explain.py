"""A counterexample a person can read: its slice, its words named, a paragraph.

Why it exists: ``check``'s minimal counterexample, ``stress``'s interleaving
and ``replay``'s are the product's main output, and the complete diagram
(every scheduling point of every actor, one column each) is too wide and too
long to read.  This module turns one into a focused rendering that fits the
terminal:

- the backward dependency slice of the violating step: with footprints (the
  explorer's world records what every step read and wrote), a step is kept
  when a kept later step reads what it wrote, or it is an earlier step of a
  kept actor; without (a real run's event rings), the events that name the
  violation's slot, gfn or pfn, the dirty flag and the flushes are kept;
- the steps before the race (the scenario's setup) collapsed into one line;
- a drain says which word reached memory (``dirty``, ``spte[slot 3]``,
  ``vCPU1.mode``), named from the arena layout;
- preemptions (``*``) and drains (``~``) counted as they are marked;
- a paragraph derived from the events alone (never from the policy's name):
  the stale TLB fill, the flush that should have removed it, and why it did
  not happen (the value it read and the decision that wrote that value).

The rendering (columns when they fit, else a vertical list with the CPU as
prefix) is ``harness.counterexample.render_counterexample(trace, width,
full=False)``; a trace is a ``Trace`` of ``Row`` s, built by ``trace_of``
(``search.check_cmd.replay_schedule``: decisions with footprints) or
``from_events`` (a real run's merged rings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smpemu.kvm import events as ev
from smpemu.kvm.layout import CTL_FLUSH_DIRTY, N_CTL
from smpemu.kvm.oracle import KIND_NAMES
from smpemu.harness.trace import describe

DRAIN = "sb.drain"  # sched.choices.DRAIN: the decision tag of a drain
# ctl words by index (kvm/layout.py), as a drain names them
_CTL_NAMES = {0: "stop", CTL_FLUSH_DIRTY: "dirty", 2: "notifier_seq", 3: "notifier_count", 4: "mmu_lock holder",
              5: "pfn_lock holder", 6: "nfree", 7: "t0", 8: "mmu_lock acquisitions", 9: "pfn_lock acquisitions",
              10: "sched_end", 11: "range_target"}
# footprint words that say nothing about why the violation happened: bookkeeping (lock holders and
# acquisition counts, counters, coverage, traces, the baton's rows)
_BOOKKEEPING_FIELDS = ("counters", "points", "ack_hist", "viol", "errmsg", "trace", "trace_head", "sched")
_BOOKKEEPING_CTL = (4, 5, 8, 9)
_LOCK_SEMS = ("sem mmu_lock", "sem pfn_lock")  # search/world.py's pseudo-locations of the two locks
_DIRTY_WRITES = (ev.SET_DIRTY, ev.FLUSH_CLEARED, ev.COUNT_CMPXCHG)  # events that store the dirty flag


@dataclass
class Row:
    """One decision (check, replay) or one event (a real run's rings)."""

    n: int  # its number: the decision number (the replay file's index), or the event's
    actor: int
    kind: str = "step"  # "step", DRAIN, another command's tag, or "event" (a ring's)
    point: str = ""  # a step: the scheduling point where the actor resumed
    arg: int | None = None  # a command's argument (a drain: the word)
    preempt: bool = False
    events: list = field(default_factory=list)  # (code, a, b)
    r: frozenset | None = None  # footprint: words / pseudo-locations read, written (None: unknown)
    w: frozenset | None = None


@dataclass
class Trace:
    rows: list
    names: list  # actor -> "vCPU0", "host1"
    violation: dict | None
    layout: object = None  # kvm.layout.Layout: to name words
    n_setup: int = 0  # rows of the scenario's setup (before the exploration)
    unit: str = "decision"  # what a row number counts
    ignore: frozenset = frozenset()  # footprint words that carry no dependence (bookkeeping)


# -- naming -------------------------------------------------------------------------------
def word_name(layout, addr: int, names: list) -> str:
    """The arena word ``addr`` by what it is: ``dirty``, ``spte[slot 3]``, ``vCPU1.mode``."""
    if layout is None:
        return f"word {addr}"
    for f in layout.fields.values():
        if f.offset <= addr < f.offset + f.size:
            idx, off = [], addr - f.offset
            for s in f._strides:
                idx.append(off // s)
                off %= s
            nm = lambda i: names[i] if 0 <= i < len(names) else str(i)  # noqa: E731
            if f.name == "ctl":
                return _CTL_NAMES.get(idx[0], f"ctl[{idx[0]}]")
            if f.name in ("spte", "gpte"):
                return f"{f.name}[slot {idx[0]}]"
            if len(f.shape) == 2 and f.shape[1] == 8:  # one line per vCPU / requester: word 0 is the value
                return f"{nm(idx[0])}.{f.name}" + (f"[{idx[1]}]" if idx[1] else "")
            if f.name in ("req_seq", "ack_seq", "route_req"):
                return f"{f.name}[{nm(idx[0])}, {nm(idx[1])}]"
            if f.name in ("tlb_mirror", "tlb_mirror_slot"):
                return f"{nm(idx[0])}.{f.name}[{idx[1]}]"
            return f"{f.name}[{', '.join(map(str, idx))}]"
    return f"word {addr}"


def dirty_addr(layout) -> int | None:
    return None if layout is None else layout["ctl"].addr(CTL_FLUSH_DIRTY, 0)


def bookkeeping(layout) -> frozenset:
    """The words of ``layout`` no dependence is traced through (``Trace.ignore``)."""
    if layout is None:
        return frozenset()
    out = set()
    for name in _BOOKKEEPING_FIELDS:
        f = layout[name]
        out.update(range(f.offset, f.offset + f.size))
    ctl = layout["ctl"]
    for k in _BOOKKEEPING_CTL:
        if k < N_CTL:
            out.add(ctl.addr(k, 0))
    return frozenset(out)


_SHORT = {  # an event in a few words, by code (a, b: the event's two fields)
    ev.SET_DIRTY: lambda a, b: f"dirty = {a}",
    ev.ZAP: lambda a, b: f"zap spte[slot {a}] (gfn {b})",
    ev.FLUSH_CLEARED: lambda a, b: "flush: dirty = 0",
    ev.FLUSH_SENT: lambda a, b: "flush: requests sent",
    ev.FLUSH_ACKED: lambda a, b: "flush: all acked",
    ev.SERVED: lambda a, b: "serve: TLB flushed, ack",
    ev.TLB_FILL: lambda a, b: f"TLB fill slot {a} -> pfn {b}",
    ev.INVLPG: lambda a, b: f"invlpg slot {a}",
    ev.NOTIFIER_ZAPPED: lambda a, b: f"notifier: gfn {a}, {b} spte(s) zapped",
    ev.NOTIFIER_DIRTY: lambda a, b: f"notifier: read dirty = {a}",
    ev.FREE: lambda a, b: f"free gfn {a} (pfn {b})",
    ev.WRITE_PROTECT: lambda a, b: f"write-protect gfn {a}: {'spte protected' if b else 'no spte'}",
    ev.COUNT_READ: lambda a, b: f"flush: read dirty count = {a}",
    ev.COUNT_CMPXCHG: lambda a, b: f"flush: cmpxchg(count, {a}, 0) found {b}",
}


def short(code: int, a: int, b: int, kinds: dict | None = None) -> str:
    """An event in a few words (``harness.trace.describe`` is the long form)."""
    if code == ev.VIOLATION:
        return f">> VIOLATION {(kinds or KIND_NAMES).get(a, a)} pfn {b}"
    f = _SHORT.get(code)
    if f is not None:
        return f(a, b)
    return describe(code, a, b)  # no short form: the long one


def row_marks(row: Row) -> str:
    if row.kind == DRAIN:
        return "~ "
    if row.preempt:  # a step, or a command that preempts (the host scheduler's sched.out)
        return "* "
    if row.kind not in ("step", "event"):
        return "+ "
    return ""


def row_texts(row: Row, tr: Trace, kinds: dict | None = None) -> list:
    """What a row shows: its mark and point (a preemption), a drain's word, then its events."""
    if row.kind == DRAIN:
        return [f"~ drain: {word_name(tr.layout, row.arg, tr.names)} reaches memory"]
    out = []
    if row.kind not in ("step", "event"):  # another command (sched.out / sched.in): shown as recorded
        out.append(row_marks(row) + row.kind + (f" {row.arg}" if row.arg is not None else ""))
    elif row.preempt:
        out.append(f"* @{row.point}")
    out += [short(c, a, b, kinds) for c, a, b in row.events if c != "command"]
    return out


def counts(tr: Trace) -> tuple:
    """(preemptions, drains, other commands) as the diagram marks them (``*``, ``~``, ``+``)."""
    p = sum(1 for r in tr.rows if r.kind != DRAIN and r.preempt)
    d = sum(1 for r in tr.rows if r.kind == DRAIN)
    o = sum(1 for r in tr.rows if r.kind not in ("step", "event", DRAIN) and not r.preempt)
    return p, d, o


def counts_text(tr: Trace) -> str:
    p, d, o = counts(tr)
    parts = [f"{p} preemption{'s' if p != 1 else ''}"]
    if d or any(r.kind == DRAIN for r in tr.rows):
        parts.append(f"{d} drain{'s' if d != 1 else ''}")
    if o:
        parts.append(f"{o} other command{'s' if o != 1 else ''}")
    return ", ".join(parts)


# -- the slice ------------------------------------------------------------------------------
def _last_violation_row(tr: Trace) -> int:
    for i in range(len(tr.rows) - 1, -1, -1):
        if any(c == ev.VIOLATION for c, _, _ in tr.rows[i].events):
            return i
    return len(tr.rows) - 1


def slice_rows(tr: Trace) -> set:
    """Indices of the rows the violation depends on (the violating row included)."""
    rows = tr.rows
    if not rows:
        return set()
    end = _last_violation_row(tr)
    if rows[end].r is None:
        return _event_slice(tr, end)
    keep = {end}
    need = set(rows[end].r) - tr.ignore  # what the kept rows read (that an earlier row may have written)
    actors = {rows[end].actor}
    for i in range(end - 1, -1, -1):
        r = rows[i]
        w = (r.w or frozenset()) - tr.ignore
        # words, the clock, the protocol's semaphores (kicks, ack doorbells); not a lock's handoff, not
        # an actor's own pseudo-location
        writes_needed = any(not isinstance(x, str) or (x.startswith("sem ") and x not in _LOCK_SEMS) or x == "clock"
                            for x in w & need)
        if writes_needed or r.actor in actors:
            keep.add(i)
            actors.add(r.actor)
            need |= set(r.r or ()) - tr.ignore
    return keep


def _event_slice(tr: Trace, end: int) -> set:
    """Without footprints: the rows whose events name the violation's slot, gfn or pfn, the dirty
    flag and the flushes, the victim's acks."""
    v = tr.violation or {}
    slot, gfn, pfn, victim = v.get("slot"), v.get("gfn"), v.get("pfn"), v.get("vcpu")
    keep = set()
    for i, r in enumerate(tr.rows[:end + 1]):
        for code, a, b in r.events:
            if (code in ev.FLUSH_EVENTS or code == ev.VIOLATION or code in ev.PV_EVENTS
                    or (code in (ev.ZAP, ev.INVLPG, ev.FAULT) and a == slot)
                    or (code == ev.TLB_FILL and (a == slot or b == pfn))
                    or (code in (ev.NOTIFIER_ZAPPED, ev.RANGE_INVALIDATION, ev.WRITE_PROTECT) and a == gfn)
                    or (code == ev.FREE and b == pfn)
                    or (code == ev.SERVED and r.actor == victim)):
                keep.add(i)
        if r.kind == DRAIN:
            keep.add(i)
    return keep


# -- the paragraph --------------------------------------------------------------------------
def _events(tr: Trace, upto: int):
    """(row index, row, code, a, b) of every event up to row ``upto``, in order."""
    for i, r in enumerate(tr.rows[:upto + 1]):
        for code, a, b in r.events:
            if code != "command":
                yield i, r, code, a, b


def _last(evs, pred, before: int | None = None):
    hit = None
    for e in evs:
        if before is not None and e[0] > before:
            break
        if pred(e):
            hit = e
    return hit


def _writer_of_dirty(tr: Trace, evs: list, read_i: int):
    """The row that wrote the dirty flag value read at row ``read_i`` (footprints when known),
    with the event that stored it (a drain's: the store it drained)."""
    da = dirty_addr(tr.layout)
    rows = tr.rows
    wi = None
    if rows[read_i].r is not None and da is not None:
        for i in range(read_i - 1, -1, -1):
            if rows[i].w is not None and da in rows[i].w:
                wi = i
                break
    else:
        e = _last(evs, lambda e: e[2] in _DIRTY_WRITES and not (e[2] == ev.COUNT_CMPXCHG and e[3] != e[4]),
                  before=read_i - 1)
        wi = e[0] if e else None
    if wi is None:
        return None, None
    row = rows[wi]
    actor, upto = row.actor, wi
    store = _last(evs, lambda e: e[1].actor == actor and e[2] in _DIRTY_WRITES, before=upto)
    return wi, store


def explain(tr: Trace) -> str:
    """What went wrong, in words, from the events (empty when there is no violation to explain)."""
    return explain_refs(tr)[0]


def explain_refs(tr: Trace) -> tuple:
    """(the paragraph, the indices of the rows it cites by number)."""
    refs = set()
    if not tr.violation:
        return "", refs

    def num(i):
        refs.add(i)
        return f"#{tr.rows[i].n}"
    return _explain(tr, num), refs


def _explain(tr: Trace, num) -> str:
    v = tr.violation
    end = _last_violation_row(tr)
    evs = list(_events(tr, end))
    names = tr.names
    nm = lambda a: names[a] if 0 <= a < len(names) else f"cpu {a}"  # noqa: E731
    kind, vcpu, slot, gfn, pfn = v.get("kind"), v.get("vcpu"), v.get("slot"), v.get("gfn"), v.get("pfn")
    victim = nm(vcpu) if isinstance(vcpu, int) and vcpu >= 0 else "a vCPU"
    fill = _last(evs, lambda e: e[1].actor == vcpu and e[2] == ev.TLB_FILL and e[3] == slot)
    filled = f"filled at {num(fill[0])}" if fill else "filled before the trace"
    out = []
    zap = _last(evs, lambda e: (e[2] == ev.ZAP and e[3] == slot)
                or (e[2] == ev.NOTIFIER_ZAPPED and e[3] == gfn and e[4] > 0))
    if kind == "stale_write":
        wp = _last(evs, lambda e: e[2] == ev.WRITE_PROTECT and e[3] == gfn)
        out.append(f"{victim} wrote pfn {pfn} (gfn {gfn}) at {num(end)} through its TLB entry for slot {slot} "
                   f"({filled})"
                   + (f" after {nm(wp[1].actor)} write-protected gfn {gfn} at {num(wp[0])}" if wp else "")
                   + ".")
        if wp:
            flusher = wp[1].actor
            sent = _last(evs, lambda e: e[1].actor == flusher and e[2] == ev.FLUSH_SENT and e[0] >= wp[0])
            if sent:
                out.append(f"{nm(flusher)}'s flush (requests sent at {num(sent[0])}) should have removed it.")
            else:
                why = ("found no spte to protect (protected=0)" if not wp[4] else "protected an spte")
                out.append(f"The flush that should have removed it did not happen: {nm(flusher)}'s "
                           f"write-protect at {num(wp[0])} {why} and {nm(flusher)} did not flush.")
                out += _flag_reasons(tr, evs, flusher, wp[0], end, nm, num)
        if zap:
            out.append(f"The spte of slot {slot} had been dropped at {num(zap[0])} by {nm(zap[1].actor)}"
                       + _mark_after(evs, zap, nm, num) + ".")
        return " ".join(out)
    if kind == "guest_stale":  # the guest's own shootdown (issue 19): no host free
        gf = _last(evs, lambda e: e[2] == ev.GUEST_FREED and e[3] == gfn)
        out.append(f"{victim} accessed pfn {pfn} (gfn {gfn}) at {num(end)} through its TLB entry for slot {slot} "
                   f"({filled})" + (f", after {nm(gf[1].actor)}'s shootdown returned and the guest freed gfn "
                                    f"{gfn} at {num(gf[0])}" if gf else "") + ".")
        pv = _last(evs, lambda e: e[2] == ev.PV_CMPXCHG and e[3] == vcpu and e[4])
        if pv:
            xr = _last(evs, lambda e: e[1].actor == vcpu and e[2] == ev.STEAL_RECORD and e[0] > pv[0])
            out.append(f"{nm(pv[1].actor)} sent {victim} no IPI: its cmpxchg of FLUSH into {victim}'s preempted "
                       f"took at {num(pv[0])}" + (f"; {victim}'s entry read preempted = {xr[3]} at {num(xr[0])}"
                                                  if xr else "") + (", and its fill came after" if xr and fill and
                                                                    fill[0] >= xr[0] else "") + ".")
        return " ".join(out)
    free = _last(evs, lambda e: e[2] == ev.FREE and e[4] == pfn)
    freer = free[1].actor if free else v.get("reporter", -1)
    if kind == "stale_access":  # seen by the vCPU at its access, not by the host at the free
        out.append(f"{victim} accessed pfn {pfn} (gfn {gfn}) at {num(end)} through its TLB entry for slot {slot} "
                   f"({filled}), after {nm(freer)} freed it" + (f" at {num(free[0])}." if free else "."))
    else:
        out.append(f"{nm(freer)} freed pfn {pfn} (gfn {gfn})" + (f" at {num(free[0])}" if free else "")
                   + f" while {victim}'s TLB still mapped it (slot {slot}, {filled}).")
    zpos = next((k for k, e in enumerate(evs) if e is zap), None)  # the zap's place among the events
    if zap:
        mem = _in_memory(tr, zap, slot)
        out.append(f"The spte was zapped at {num(zap[0])} by {nm(zap[1].actor)}"
                   + (f" (in memory at {num(mem)})" if mem is not None and mem != zap[0] else "")
                   + _mark_after(evs, zap, nm, num) + ".")
        if mem is not None:
            zap = (mem,) + zap[1:]  # what the flushes race with: the zap as the other CPUs see it
    # the freer's invalidation of this page: from its notifier (or its previous free) to the free
    fi = free[0] if free else end
    start = _last(evs, lambda e: e[1].actor == freer and e[0] <= fi and (
        (e[2] in (ev.NOTIFIER_ZAPPED, ev.RANGE_INVALIDATION) and e[3] == gfn) or (e[2] == ev.FREE and e[0] < fi)))
    lo = start[0] if start else 0
    sent = _last(evs, lambda e: e[1].actor == freer and e[2] == ev.FLUSH_SENT and e[0] >= lo)
    if sent:
        served = _last(evs, lambda e: e[1].actor == vcpu and e[2] == ev.SERVED and e[0] >= sent[0])
        out.append(f"{nm(freer)}'s flush (requests sent at {num(sent[0])}) should have removed it"
                   + (f", but {victim} served it at {num(served[0])}, before its fill" if served and fill
                      and served[0] <= fill[0] else "") + ".")
        return " ".join(out)
    reasons = _flag_reasons(tr, evs, freer, lo, end, nm, num, skipped=True, zap=zap, fill=fill)
    if not reasons:
        found = _last(evs, lambda e: e[1].actor == freer and e[2] == ev.NOTIFIER_ZAPPED and e[3] == gfn
                      and e[0] <= fi)
        reasons = [(f"{nm(freer)}'s invalidation found no spte at {num(found[0])}" if found and found[4] == 0
                    else f"{nm(freer)} read no dirty flag") + " and it freed the page with no flush."]
        if zap and zap[1].actor != freer:
            za = zap[1].actor
            after = evs[zpos + 1:] if zpos is not None else []  # events after the zap (same row too)
            zs = _last(after, lambda e: e[1].actor == za and e[2] == ev.FLUSH_SENT and e[0] <= fi)
            zk = _last(after, lambda e: e[1].actor == za and e[2] == ev.FLUSH_ACKED and e[0] <= fi)
            reasons.append(f"{nm(za)}, which zapped it, " + (
                f"had flushed (all acked at {num(zk[0])})" if zk else
                f"had sent its flush at {num(zs[0])}, not all acked," if zs else "had not flushed yet")
                + " when the page was freed.")
    out += reasons
    return " ".join(out)


def _in_memory(tr: Trace, zap, slot) -> int | None:
    """The row where a zap's spte store reached memory (its own, or a later drain's), if footprints
    say."""
    if tr.layout is None or zap[2] != ev.ZAP or tr.rows[zap[0]].w is None:
        return None
    a = tr.layout["spte"].addr(slot)
    for i in range(zap[0], len(tr.rows)):
        if tr.rows[i].actor == zap[1].actor and tr.rows[i].w is not None and a in tr.rows[i].w:
            return i
    return None


def _mark_after(evs, zap, nm, num) -> str:
    """", which set dirty = 1 at #15": the zapping actor's dirty mark nearest the zap (before it or
    after it, within that actor's next or previous few events)."""
    mine = [e for e in evs if e[1].actor == zap[1].actor]
    k = next(j for j, e in enumerate(mine) if e is zap)
    near = sorted((e for e in mine[max(0, k - 3):k + 4] if e[2] == ev.SET_DIRTY), key=lambda e: abs(e[0] - zap[0]))
    if not near:
        return ", with no dirty mark"
    m = near[0]
    return f", which set dirty = {m[3]} at {num(m[0])}" + (" (before the zap)" if m[0] < zap[0] else "")


def _flag_reasons(tr, evs, actor, lo: int, end: int, nm, num, skipped: bool = False, zap=None,
                  fill=None) -> list:
    """Why ``actor`` did not flush: the last dirty flag value it read (after row ``lo``), and
    the decision that wrote that value."""
    read = _last([e for e in evs if e[0] >= lo], lambda e: e[1].actor == actor
                 and e[2] in (ev.NOTIFIER_DIRTY, ev.COUNT_READ))
    if read is None:
        return ([f"{nm(actor)} did not read dirty."] if not skipped else [])
    val = read[3]
    what = "dirty" if read[2] == ev.NOTIFIER_DIRTY else "the dirty count"
    s = (f"{nm(actor)}'s flush was skipped because it read {what} = {val} at {num(read[0])}"
         if skipped else f"{nm(actor)} read {what} = {val} at {num(read[0])}")
    wi, store = _writer_of_dirty(tr, evs, read[0])
    if wi is None:
        return [s + ", its value from before the trace."]
    wrow = tr.rows[wi]
    who = nm(wrow.actor)
    at = (f"at {num(store[0])} (in memory at {num(wi)})" if store is not None and store[0] != wi
          else f"at {num(wi)}")
    if wrow.kind == DRAIN:
        s += (f", which reached memory at {num(wi)} (a drain of {who}'s store"
              + (f" at {num(store[0])}: {short(*store[2:])}" if store else "") + ")")
    elif store is not None and store[2] == ev.COUNT_CMPXCHG:
        s += f", written {at} by {who}'s cmpxchg(count, {store[3]}, 0), which found {store[4]}"
        cread = _last(evs, lambda e: e[1].actor == wrow.actor and e[2] == ev.COUNT_READ, before=wi)
        if cread:
            others = [e for e in evs if cread[0] < e[0] < wi and e[1].actor != wrow.actor and e[2] in _DIRTY_WRITES
                      and not (e[2] == ev.COUNT_CMPXCHG and e[3] != e[4])]
            s += (f", the count it had read at {num(cread[0])}"
                  + (" (" + ", then ".join(f"{nm(e[1].actor)} " + (f"set it to {e[3]}" if e[2] == ev.SET_DIRTY
                                                                    else "cleared it") + f" at {num(e[0])}"
                                            for e in others) + " in between: that update was lost)" if others else ""))
    elif store is not None:
        s += f", written {at} by {who}" + (
            "'s flush" if store[2] == ev.FLUSH_CLEARED else f" ({short(*store[2:])})")
        if store[2] == ev.FLUSH_CLEARED:
            acked = _last(evs, lambda e: e[1].actor == wrow.actor and e[2] == ev.FLUSH_ACKED and e[0] >= wi)
            sent = _last(evs, lambda e: e[1].actor == wrow.actor and e[2] == ev.FLUSH_SENT and e[0] >= wi)
            if acked is None:
                s += (" in progress (its requests " + (f"sent at {num(sent[0])}, not all acked," if sent
                                                       else "not yet sent") + " when the page was freed)")
            else:
                s += f", which completed at {num(acked[0])}"
            if zap is not None and wi < zap[0]:
                s += (f", but it had cleared dirty before the zap reached memory (at {num(zap[0])})"
                      + (f": the fill at {num(fill[0])} came in between" if fill and wi < fill[0] < zap[0] else ""))
    else:
        s += f", written at {num(wi)} by {who}"
    return [s + "."]


def trace_of(proto, rows, fps, choices, violation, n_setup: int) -> Trace:
    """A schedule the explorer's world ran again (``search.check_cmd.replay_schedule``): ``rows``
    of (decision number, decision, preempted, events), ``fps`` each step's footprint (reads,
    writes).  The violating step's oracle scan (every TLB mirror, request and ack word) counts
    as a read of the victim's TLB mirror and the page's generation only: what the violation is."""
    N, H = proto.N, proto.H
    L = proto.layout
    names = [f"vCPU{i}" if i < N else (f"host{i - N}" if H > 1 else "host") for i in range(proto.n)]
    out = []
    for (k, d, preempt, evs), (r, w), ch in zip(rows, fps, choices):
        kind, point, arg = "step", "", None
        if ch.is_step:
            point = d[1]
        else:
            kind = d[1]
            arg = d[2] if len(d) > 2 else None
        out.append(Row(k, d[0], kind, point, arg, preempt, [(c, a, b) for (_, c, a, b) in evs if c != "command"],
                       frozenset(r), frozenset(w)))
    if violation and out:
        v = violation.get("vcpu", -1)
        keep = set()
        if 0 <= v < N:
            for fname in ("tlb_mirror", "tlb_mirror_slot"):
                f = L[fname]
                keep.update(range(f.addr(v, 0), f.addr(v, 0) + f.shape[1]))
        pfn = violation.get("pfn", -1)
        if 0 <= pfn < L["pfn_gen"].shape[0]:
            keep.add(L["pfn_gen"].addr(pfn))
        last = _last_violation_row(Trace(out, names, violation))
        r = out[last]
        r.r = frozenset((r.r - proto.scanned) | (r.r & keep))
    return Trace(out, names, violation, L, n_setup, "decision", bookkeeping(L))


def from_events(events, n_vcpus: int, n_hosts: int, violation: dict | None) -> Trace:
    """A real run's merged event rings ((ts, cpu, code, a, b), oldest first) as a Trace: one row
    per event, numbered from 0, no footprints."""
    from smpemu.kvm.layout import host_name

    n = max([n_vcpus + n_hosts] + [e[1] + 1 for e in events])
    names = [f"vCPU{i}" if i < n_vcpus else host_name(i - n_vcpus, n_hosts) for i in range(n)]
    rows = [Row(k, cpu, "event", events=[(code, a, b)]) for k, (ts, cpu, code, a, b) in enumerate(events)]
    return Trace(rows, names, violation, unit="event")


__all__ = ["Row", "Trace", "explain", "explain_refs", "trace_of", "row_texts", "row_marks", "slice_rows", "word_name", "counts",
           "counts_text", "from_events", "bookkeeping", "short"]
