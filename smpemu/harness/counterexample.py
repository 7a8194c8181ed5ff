"""Rendering a counterexample (harness/explain.py's Trace) no wider than the terminal.

Why it exists: the slice and the paragraph (harness/explain.py) say what to
show; this says how, at a given width: the setup on one line, then one
column per actor with a row shown when each gets 30 characters, else a
vertical list with the CPU as prefix (``#12 vCPU1  TLB fill slot 24 ->
pfn 1``), the legend of the marks, and the paragraph.  ``check``, ``stress``,
``replay`` (and anything else that prints a counterexample) call
``render_counterexample(trace, width, full=False)``; ``term_width`` is the
width they render at (``COLUMNS``, the terminal's, else 80).
"""

from __future__ import annotations

import textwrap

from smpemu.kvm import events as ev
from smpemu.harness.explain import Trace, counts, explain_refs, row_marks, row_texts, slice_rows


def _wrap(text: str, width: int, indent: str = "") -> list:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=True) or [""]


def _setup_line(tr: Trace, rows: list, width: int, kinds) -> list:
    if not rows:
        return []
    per = {}
    for r in rows:
        for t in row_texts(r, tr, kinds):
            d = per.setdefault(r.actor, {})
            d[t] = d.get(t, 0) + 1  # an event repeated: counted, once
    what = "; ".join(f"{tr.names[a]}: " + ", ".join(t if k == 1 else f"{t} (x{k})" for t, k in ts.items())
                     for a, ts in per.items()) or "no events"
    label = "setup" if tr.n_setup else "before"
    span = f"#{rows[0].n}-#{rows[-1].n}" if len(rows) > 1 else f"#{rows[0].n}"
    return _wrap(f"{label} ({span}): {what}", width, "    ")


def render_counterexample(tr: Trace, width: int = 80, full: bool = False, kinds: dict | None = None) -> str:
    """The counterexample as text no wider than ``width``: focused (the slice, the setup in one
    line, the paragraph) or ``full`` (every row, as the complete diagram has them)."""
    width = max(40, width)
    rows = tr.rows
    refs = set(range(len(rows)))  # the rows whose decision (event) number is shown: every one in full
    if full:
        shown, setup = list(range(len(rows))), []
    else:
        sl = slice_rows(tr)
        _, refs = explain_refs(tr)
        first_race = min((i for i in sl if i >= tr.n_setup), default=len(rows))
        if rows and rows[0].r is None and refs:  # a ring's events: the race starts at the first step cited
            first_race = min(refs)
        sl |= refs  # a row the paragraph cites is shown, with its number
        # every preemption and drain too: the marks the counts count
        sl |= {i for i, r in enumerate(rows) if r.kind != "event" and row_marks(r)}
        setup = [rows[i] for i in sorted(sl) if i < first_race and i not in refs and row_texts(rows[i], tr, kinds)]
        shown = [i for i in sorted(sl) if (i >= first_race or i in refs) and row_texts(rows[i], tr, kinds)]
    lines = []
    actors = sorted({rows[i].actor for i in shown})
    p, d, o = counts(tr)
    lines += _setup_line(tr, setup, width, kinds)
    # the decision numbers shown: the rows the paragraph cites, the marked ones, the violation's
    refs = refs | {i for i in shown if row_marks(rows[i])} | {i for i in shown if any(
        c == ev.VIOLATION for c, _, _ in rows[i].events)}
    labels = _labels(tr, shown, refs, numbered=not full)
    body = _columns(tr, shown, actors, width, kinds, labels)
    if body is None:
        body = _vertical(tr, shown, width, kinds, labels)
    lines += body
    legend = []
    if p:
        legend.append("* a preemption")
    if d:
        legend.append("~ a store-buffer drain")
    if o:
        legend.append("+ a command (sched.in...)")
    unit = "decision" if tr.unit == "decision" else "event"
    legend.append(f"#: the {unit} number" if full else f"rows numbered in order, #: the {unit} number of a row "
                  "cited or marked")
    if not full:
        legend.append(f"{len(shown) + len(setup)} of {len(rows)} {unit}s shown, --full for all")
    lines += _wrap("(" + "; ".join(legend) + ")", width, " ")
    para, _ = explain_refs(tr)
    if para:
        lines.append("")
        lines += _wrap("What happened: " + para, width)
    return "\n".join(lines)


def _labels(tr: Trace, shown: list, refs: set, numbered: bool) -> dict:
    """Row index -> its label: ``3 #14`` (the third row shown, decision 14, which the paragraph
    cites), ``4`` (not cited: its row number only); ``#14`` alone when every row is shown."""
    nums = {i: f"#{tr.rows[i].n}" if i in refs else "" for i in shown}
    dw = max((len(x) for x in nums.values()), default=0)
    if not numbered:
        return {i: f"{nums[i]:>{dw}}" for i in shown}
    kw = len(str(len(shown)))
    return {i: f"{k:>{kw}} {nums[i]:<{dw}}".rstrip() if dw else f"{k:>{kw}}" for k, i in enumerate(shown, 1)}


def _columns(tr: Trace, shown: list, actors: list, width: int, kinds, labels: dict) -> list | None:
    """One column per actor (only those with a row shown), or None when they do not fit."""
    if not actors:
        return []
    num_w = max(len(x) for x in labels.values()) if labels else 2
    avail = width - num_w - 1
    colw = avail // len(actors)
    if colw < 30:
        return None
    head = " " * num_w + " " + "".join(f"{tr.names[a]:<{colw}}" for a in actors)
    out = [head.rstrip(), (" " * num_w + " " + "".join(f"{'-' * (colw - 2):<{colw}}" for _ in actors)).rstrip()]
    for i in shown:
        r = tr.rows[i]
        col = actors.index(r.actor)
        cells = []
        for t in row_texts(r, tr, kinds):
            cells += _wrap(t, colw - 2, "  ")
        for j, c in enumerate(cells):
            lead = labels[i] if j == 0 else ""
            out.append((f"{lead:<{num_w}} " + " " * (colw * col) + c).rstrip())
    return out


def _vertical(tr: Trace, shown: list, width: int, kinds, labels: dict) -> list:
    """A vertical list, the CPU as prefix: ``1 #12 vCPU1  TLB fill slot 24 -> pfn 1``."""
    num_w = max((len(x) for x in labels.values()), default=2)
    name_w = max((len(tr.names[tr.rows[i].actor]) for i in shown), default=5)
    out = []
    for i in shown:
        r = tr.rows[i]
        pre = f"{labels[i]:<{num_w}} {tr.names[r.actor]:<{name_w}}  "
        texts = row_texts(r, tr, kinds)
        text = "; ".join(texts)
        out += _wrap(pre + text, width, " " * len(pre))
    return out


def term_width(default: int = 80) -> int:
    """The width to render at: ``COLUMNS``, else the terminal's, else ``default`` (a pipe, a log)."""
    import shutil

    return max(40, shutil.get_terminal_size((default, 24)).columns)


def line_width() -> int | None:
    """The width the other lines of a command (its header, its summary) are wrapped to: ``COLUMNS``
    or the terminal's; None in a pipe with no ``COLUMNS``: those lines stay whole there, as logs and
    scripts read them."""
    import os
    import sys

    c = os.environ.get("COLUMNS", "")
    if c.isdigit() and int(c) > 0:
        return max(40, int(c))
    try:
        if sys.stdout.isatty():
            return max(40, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError):
        pass
    return None


def fit(text: str, width: int | None) -> str:
    """``text`` with every line wrapped to ``width`` (continuations indented by two); as it is
    when ``width`` is None."""
    if width is None:
        return text
    return "\n".join(x for line in text.split("\n") for x in _wrap(line, width, "  "))


__all__ = ["render_counterexample", "term_width", "line_width", "fit"]
