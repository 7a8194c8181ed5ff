"""``smpemu verdicts --confirm FILE``: a computed table's counterexamples, on real processes.

Why it exists: ``smpemu verdicts`` finds each minimal breaking scenario with
the in-process explorer, a search tool.  What it finds must hold on real
vCPU processes, shared memory and semaphores.  This takes a saved table
(``verdicts --json``), and for every row with a violation:

1. re-derives it: ``smpemu check --scenario`` on the row's minimal scenario,
   under the row's settings, must find the same kind, preemptions, drains and
   steps (the row was not edited, and the explorer still agrees with itself);
2. replays that counterexample with ``smpemu replay``'s machinery (real
   processes under the baton) and requires the recorded violation: kind,
   vCPU, slot, pfn and the point of the last decision.

A row that fails either is reported with what differed; nothing is retried.
"""

from __future__ import annotations

import json
import os
import tempfile
import time


def violation_rows(doc: dict, names=None) -> list[dict]:
    """The rows of a saved table with a minimal breaking scenario (of ``names`` only, if given)."""
    return [r for r in doc.get("rows", []) if r.get("violation") and (names is None or r["policy"] in names)]


def row_label(row: dict) -> str:
    mf = "" if row.get("max_flushers") is None else f" max-flushers {row['max_flushers']}"
    return f"{row['policy']} {row['memory_model']} notifier {row['notifier']} requests {row['requests']}{mf}"


def confirm_row(row: dict, bound: int, timeout: float | None = 600.0) -> dict:
    """Re-derive and replay one row's minimal scenario: a dict saying what held (``rederived``,
    ``reproduced``), what did not (``why``), and how long it took."""
    want = row["violation"]
    out = {"row": row_label(row), "kind": want["kind"], "rederived": False, "reproduced": False,
           "why": None, "replay_s": None, "interrupted": None}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="smpemu-confirm-") as d:
        _confirm_in(d, row, bound, timeout, out)
    out["elapsed_s"] = round(time.monotonic() - t0, 2)
    return out


def _confirm_in(d: str, row: dict, bound: int, timeout: float | None, out: dict) -> None:
    """confirm_row's work, its files in directory ``d``; fills ``out`` and stops at the first failure."""
    from smpemu.harness import explain
    from smpemu.search.baton_loop import run
    from smpemu.search.check_cmd import run_check
    from smpemu.search.replay_file import MATCH_KEYS, identity, load_replay, write_doc

    want = row["violation"]
    sc_path = os.path.join(d, "minimal.json")
    with open(sc_path, "w") as f:
        json.dump(want["scenario"], f)
    cr = run_check(row["policy"], scenario=sc_path, memory_model=row["memory_model"], requests=row["requests"],
                   notifier=row["notifier"], bound=bound, timeout=timeout)
    m = cr.res.minimal
    if cr.res.interrupted:  # Ctrl-C or SIGTERM during the search: the caller stops there
        out["interrupted"] = cr.res.interrupted
        out["why"] = f"interrupted ({cr.res.interrupted})"
        return
    if m is None:
        out["why"] = ("check --scenario finds no violation" + ("" if cr.res.complete else
                                                               " (its search did not complete)"))
        return
    tr = (cr.counterexample or {}).get("trace")
    pre, drains = explain.counts(tr)[:2] if tr is not None else (m.bound, 0)
    got = {"kind": m.violation["kind"], "preemptions": pre, "drains": drains, "steps": m.steps}
    diff = [f"{k} {got[k]} (table {want.get(k)})" for k in got if got[k] != want.get(k)]
    if diff:
        out["why"] = "check --scenario finds another minimal counterexample: " + ", ".join(diff)
        return
    out["rederived"] = True
    rp = os.path.join(d, "replay.json")
    if not write_doc(cr.replay, rp):
        out["why"] = "its replay file could not be written"
        return
    cfg, doc = load_replay(rp)
    t1 = time.monotonic()
    r = run(cfg)
    out["replay_s"] = round(time.monotonic() - t1, 2)
    if r.schedule and r.schedule.get("divergence"):
        out["why"] = f"the replay diverged: {r.schedule['divergence']}"
        return
    if r.aborted:
        out["why"] = f"the replay aborted: {r.aborted}"
        return
    ident = identity(r)
    if ident is None:
        out["why"] = "not reproduced: no violation on real processes"
        return
    diff = [f"{k} {ident.get(k)} (recorded {doc['violation'].get(k)})" for k in MATCH_KEYS
            if ident.get(k) != doc["violation"].get(k)]
    if diff:
        out["why"] = "a different violation on real processes: " + ", ".join(diff)
        return
    out["reproduced"] = True


__all__ = ["violation_rows", "row_label", "confirm_row"]
