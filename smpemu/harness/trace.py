"""Protocol event traces: bounded per-process rings, merged on a violation.

Why it exists: a lost flush is an interleaving, and a count of violations
does not explain one.  When tracing is on (``--trace-out FILE`` or ``stress``),
each process appends protocol events (dirty stores, zaps, flush start and
end, kicks, acks, TLB fills, frees) with a CLOCK_MONOTONIC timestamp to its
own ring in shared memory (single writer, no lock).  The coordinator merges
the rings and renders the window that led to a violation as one column per
CPU, like the seed's CPU0/CPU1 diagram.  The event codes and what their
operands mean are ``smpemu.kvm.events``, beside the code that emits them.
"""

from __future__ import annotations

import textwrap
import time

from smpemu.kvm import events as ev
from smpemu.kvm.events import EVENTS  # the codes, named where they are emitted
from smpemu.kvm.layout import host_name

CODE = {v[0]: k for k, v in EVENTS.items()}  # an event name -> its code
RING = 2048
FIELDS = 4  # ts_ns, code, a, b


class Tracer:
    """Appends to one process's ring (row ``idx`` of the shared ``trace`` field)."""

    def __init__(self, arena, idx: int):
        f = arena.layout["trace"]
        self.W = arena.words
        self.base = f.addr(idx, 0, 0)
        self.head_addr = arena.layout["trace_head"].addr(idx, 0)
        self.n = f.shape[1]
        self.head = 0

    def __call__(self, code: int, a: int = 0, b: int = 0) -> None:
        W = self.W
        h = self.head
        off = self.base + (h % self.n) * FIELDS
        W[off] = time.monotonic_ns()
        W[off + 1] = code
        W[off + 2] = a
        W[off + 3] = b
        self.head = h + 1
        W[self.head_addr] = h + 1  # publish after the record: read by the coordinator after exit


def collect(arena) -> list[tuple]:
    """Every recorded event as (ts_ns, cpu, code, a, b), oldest first."""
    tr = arena.trace
    heads = arena.trace_head[:, 0]
    out = []
    for cpu in range(tr.shape[0]):
        h = int(heads[cpu])
        n = min(h, tr.shape[1])
        for k in range(h - n, h):
            ts, code, a, b = (int(x) for x in tr[cpu, k % tr.shape[1]])
            if code:
                out.append((ts, cpu, code, a, b))
    out.sort()
    return out


def window(events, t_ns: int, before: int = 40, after: int = 3) -> list[tuple]:
    """The events leading to time ``t_ns`` (a violation), its own VIOLATION
    event, and a few after.

    The oracle stamps the record before the tracer stamps the event, and
    other CPUs may log any number of events in between: the window ends at
    the first VIOLATION event stamped at or after ``t_ns``, not a fixed count
    past ``t_ns``."""
    i = 0
    while i < len(events) and events[i][0] <= t_ns:
        i += 1
    j = i
    while j < len(events) and events[j][2] != ev.VIOLATION:
        j += 1
    end = j + 1 if j < len(events) else i  # no VIOLATION event logged: as before
    return events[max(0, i - before): end + after]




def focus(events, violation: dict | None, keep: int = 24) -> list[tuple]:
    """The events that explain a violation: the dirty flag and flushes, the
    violating slot's fills and zaps, the victim's acks, the page's free."""
    if violation is None:
        return events[-keep:]
    slot, pfn, victim = violation["slot"], violation["pfn"], violation["vcpu"]
    gfn = violation.get("gfn")
    out = []
    for e in events:
        ts, cpu, code, a, b = e
        if (code in ev.FLUSH_EVENTS or code in ev.PV_EVENTS or code == ev.VIOLATION
                or (code in (ev.ZAP, ev.INVLPG) and a == slot)
                or (code == ev.TLB_FILL and (a == slot or b == pfn))
                # the page's invalidations (which one found the spte)
                or (code in (ev.NOTIFIER_ZAPPED, ev.RANGE_INVALIDATION) and a == gfn)
                or (code == ev.FREE and b == pfn)
                or (code == ev.SERVED and cpu == victim)):
            out.append(e)
    return out[-keep:]


def describe(code: int, a: int, b: int) -> str:
    name, an, bn = EVENTS.get(code, (f"event {code}", "a", "b"))
    parts = [name]
    if an:
        parts.append(f"{an}={a}")
    if bn:
        parts.append(f"{bn}={b}")
    return " ".join(parts)


def render(events, n_vcpus: int, t0_ns: int, mark_ns: int | None = None, width: int = 30,
           n_hosts: int = 1) -> str:
    """Columns, one per CPU (vCPUs, then the host processes: ``host`` when
    there is one, ``host0``, ``host1``... when several), time flowing down.

    A cell longer than its column wraps onto further lines (at spaces, so a
    ``name=value`` field stays whole); nothing is cut."""
    cpus = sorted({e[1] for e in events})
    names = {c: (f"vCPU{c}" if c < n_vcpus else host_name(c - n_vcpus, n_hosts)) for c in cpus}
    head = f"{'t (us)':>10}  " + "".join(f"{names[c]:<{width}}" for c in cpus)
    lines = [head.rstrip(), (f"{'':>10}  " + "".join(f"{'-' * (width - 2):<{width}}" for _ in cpus)).rstrip()]
    for ts, cpu, code, a, b in events:
        text = describe(code, a, b)
        if mark_ns is not None and ts == mark_ns and code == ev.VIOLATION:
            text = ">> " + text
        col = cpus.index(cpu)
        parts = textwrap.wrap(text, width - 2, subsequent_indent="  ", break_on_hyphens=False) or [""]
        for k, part in enumerate(parts):
            cells = ["" for _ in cpus]
            cells[col] = part
            stamp = f"{(ts - t0_ns) / 1000:>10.1f}" if k == 0 else " " * 10
            lines.append((f"{stamp}  " + "".join(f"{c:<{width}}" for c in cells)).rstrip())
    return "\n".join(lines)


def fields_of(code: int, a: int, b: int) -> dict:
    """An event's fields by name (``{"slot": 5, "pfn": 9}``), as ``describe`` shows them."""
    if code not in EVENTS:
        return {"a": a, "b": b}
    _, an, bn = EVENTS[code]
    return {**({an: a} if an else {}), **({bn: b} if bn else {})}


def as_json(events, n_vcpus: int, t0_ns: int, n_hosts: int = 1) -> list[dict]:
    """One dict per event: t_us, cpu, event, then its fields by name (per event kind)."""
    return [
        {"t_us": round((ts - t0_ns) / 1000, 3), "cpu": cpu if cpu < n_vcpus else host_name(cpu - n_vcpus, n_hosts),
         "event": EVENTS.get(code, (str(code),))[0], **fields_of(code, a, b)}
        for ts, cpu, code, a, b in events
    ]
