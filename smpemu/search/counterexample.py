"""A counterexample found by the explorer: rendered as CPU columns, and as a replay file.

Why it exists: ``smpemu check`` (search/check_cmd.py) and the scope search
(search/scope_run.py) both run a minimal schedule once more with tracing,
print it as one column per CPU, and write it as a replay file (format 2)
that ``smpemu replay`` runs on real processes; one module for both (moved
from check_cmd.py, which keeps the names).
"""

from __future__ import annotations

import dataclasses

from smpemu import __version__
from smpemu.harness.trace import describe
from smpemu.search.replay_file import REPLAY_FORMAT


def _names(proto):
    return [f"vCPU{i}" if i < proto.N else (f"host{i - proto.N}" if proto.H > 1 else "host")
            for i in range(proto.n)]


def replay_schedule(proto, choices, n_setup: int = 0):
    """Run ``choices`` once more with tracing: baton decisions, events, rendering
    (the first ``n_setup`` choices are the scenario's setup: no preemptions)."""
    events = []
    w = proto.world(trace=events)
    decisions, rows, cur = [], [], None
    try:
        for k, ch in enumerate(choices):
            if k == n_setup:
                cur = None  # exploration starts free after the setup
            preempt = k >= n_setup and cur is not None and cur.is_step and w.enabled(cur) and ch is not cur
            decisions.append(w.decision(ch))
            n0 = len(events)
            w.step(ch)
            cur = ch
            rows.append((k, decisions[-1], preempt, events[n0:]))
        violation = w.violation
    finally:
        w.close()
    names = _names(proto)
    width = 31
    lines = [f"{'#':>4}  " + "".join(f"{n:<{width}}" for n in names),
             f"{'':>4}  " + "".join(f"{'-' * (width - 2):<{width}}" for _ in names)]
    out_events = []
    for (k, d, preempt, evs), ch in zip(rows, choices):
        a = d[0]
        if not ch.is_step:
            texts = [f"~ drain: word {d[2]} reaches memory"]
        else:
            texts = [("* " if preempt else "") + f"@{d[1]}"]
            for (_, code, x, y) in evs:
                if code == "command":
                    continue
                texts.append(describe(code, x, y))
                out_events.append({"decision": k, "cpu": names[a], "event": describe(code, x, y)})
        if d[1] == "step" and len(texts) == 1 and not preempt:
            continue  # a guest step with no protocol event: not worth a row
        for j, t in enumerate(texts):
            cells = ["" for _ in names]
            cells[a] = t[:width - 1]
            lines.append(f"{k if j == 0 else '':>4}  " + "".join(f"{c:<{width}}" for c in cells))
    lines.append("(* a preemption; @point: where the CPU was resumed; ~ a store-buffer drain)")
    return {"decisions": decisions, "rendered": "\n".join(lines), "events": out_events, "violation": violation}


def _replay_doc(cr, proto, sc) -> dict:
    m = cr.res.minimal
    dec = cr.counterexample["decisions"]
    v = m.violation
    last = dec[-1]
    return {
        "smpemu_replay": REPLAY_FORMAT, "smpemu_version": __version__,
        "scenario": sc.name, "reclaimers": proto.H, "seed": proto.cfg.seed,
        "config": dataclasses.replace(proto.cfg, script=None).as_dict(), "script": sc.script,
        "schedule": {"strategy": "check", "end": "violation",
                     "last": {"decision": len(dec) - 1, "cpu": last[0], "point": last[1]},
                     "check": {"bound": m.bound, "schedule": m.schedule}},
        "violation": {**{k: v.get(k) for k in ("kind", "vcpu", "slot", "gfn", "pfn", "reporter")},
                      "point": last[1], "cpu": last[0]},
        "decisions": dec,
    }


__all__ = ["replay_schedule", "_replay_doc"]
