"""A sweep's CSV log: one row per finished run, flushed at once, medians, resume.

Why it exists: a sweep's results must survive a Ctrl-C and be resumable, so
each finished run is a CSV row written and flushed as it comes; when all
repeats of a point are in, a ``kind=median`` row follows; ``--resume`` reads
the rows back and skips the runs already there.
"""

from __future__ import annotations

import csv
import os
import statistics

from smpemu.errors import UsageError

# the columns that say which run a row is; ``repeat`` and ``run_seed`` vary within a point
CONFIG_COLS = ("kind", "workload", "policy", "pin", "vcpus", "repeat", "seed", "run_seed",
               "memory_model", "requests", "notifier", "range_share", "swap_rate", "reclaimers", "guest_mem",
               "duration", "iterations", "preempt_exit", "ipi_route", "guest_flush", "pcpus", "quantum", "local_flush")
POINT_COLS = ("workload", "policy", "pin", "vcpus", "seed", "memory_model", "requests", "notifier", "range_share",
              "swap_rate", "reclaimers", "guest_mem", "duration", "iterations", "preempt_exit", "ipi_route",
              "guest_flush", "pcpus", "quantum", "local_flush")
# a CSV written before these columns existed can still be resumed
NEW_COLS = ("reclaimers", "notifier", "range_share", "guest_flush", "pcpus", "quantum", "local_flush")
# what a column a CSV lacks meant when it was written (its runs had that setting)
OLD_DEFAULTS = {"notifier": 2009, "range_share": 0.0}
RUN_KEY_COLS = POINT_COLS + ("repeat",)
MAX_COLS = ("violations", "exit_code")  # a median row shows the worst repeat for these


# -- options and points ------------------------------------------------------------
def _cell(v) -> str:
    return "" if v is None else str(v)


def _typed(v):
    """A CSV cell back to a number where it is one ('' -> None)."""
    if v is None or v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except (TypeError, ValueError):
            pass
    return v


def _col(row: dict, c: str):
    v = row.get(c)
    return OLD_DEFAULTS.get(c) if v is None and c in OLD_DEFAULTS else v


def run_key(row: dict) -> tuple:
    return tuple(_cell(_col(row, c)) for c in RUN_KEY_COLS)


def point_key(row: dict) -> tuple:
    return tuple(_cell(_col(row, c)) for c in POINT_COLS)


def median_row(runs: list[dict]) -> dict:
    """The median of a point's repeats (aborted repeats left out if others finished)."""
    ok = [r for r in runs if not r.get("aborted")] or runs
    row = {c: runs[0].get(c) for c in CONFIG_COLS}
    row.update(kind="median", repeat=None, run_seed=None)
    for c in runs[0]:
        if c in CONFIG_COLS or c == "aborted":
            continue
        vals = [r.get(c) for r in (runs if c in MAX_COLS else ok)]
        nums = [v for v in vals if isinstance(v, (int, float))]
        if not nums:
            row[c] = None
        elif c in MAX_COLS:
            row[c] = max(nums)
        else:
            row[c] = statistics.median(nums)
    row["aborted"] = sum(1 for r in runs if r.get("aborted"))
    return row


class RowLog:
    """The rows of a sweep: kept in memory, appended to the CSV one by one."""

    def __init__(self, path: str | None, resume: bool):
        self.path = path
        self.rows: list[dict] = []
        self.header: list[str] | None = None
        self.f = None
        self.w = None
        self.written = 0  # rows written to the file by this process
        if path and resume and os.path.exists(path) and os.path.getsize(path) > 0:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, newline="") as f:
                r = csv.DictReader(f)
                self.header = list(r.fieldnames or [])
                rows = [{k: _typed(v) for k, v in row.items()} for row in r]
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise UsageError(f"--resume: cannot read {path}: {e}") from None
        if not {"kind", *RUN_KEY_COLS} - set(NEW_COLS) <= set(self.header):
            raise UsageError(f"--resume: {path} is not a sweep CSV (no {', '.join(RUN_KEY_COLS)} columns)")
        self.rows = rows

    def done(self) -> set:
        return {run_key(r) for r in self.rows if r.get("kind") == "run"}

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if not self.path:
            return
        try:
            if self.w is None:
                self._open(row)
            self.w.writerow({k: _cell(v) for k, v in row.items()})
            self.f.flush()
            self.written += 1
        except OSError as e:  # a full disk: say so once, keep the rows in memory, go on
            from smpemu.harness.outputs import report_lost

            report_lost(self.path, e)
            self.path = None
            self._close_quietly()

    def _open(self, first: dict) -> None:
        appending = self.header is not None
        if not appending:
            self.header = list(first)
        self.f = open(self.path, "a" if appending else "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.header, extrasaction="ignore", restval="")
        if not appending:
            self.w.writeheader()

    def add_medians(self, repeat: int) -> None:
        """A median row for each point whose repeats are all in and that has none yet."""
        have = {point_key(r) for r in self.rows if r.get("kind") == "median"}
        groups: dict[tuple, list] = {}
        for r in self.rows:
            if r.get("kind") == "run":
                groups.setdefault(point_key(r), []).append(r)
        for k, runs in groups.items():
            if k not in have and len({r.get("repeat") for r in runs}) >= repeat:
                self.add(median_row(runs))

    def close(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except OSError as e:
                from smpemu.harness.outputs import report_lost

                report_lost(self.path, e)
            self.f = None

    def _close_quietly(self) -> None:
        f, self.f, self.w = self.f, None, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
            self.f = None
