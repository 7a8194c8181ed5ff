"""Help text and option plumbing every command shares.

Why it exists: the commands live in several modules (cli.py, and those that
register themselves from search/ and study/: check, replay, stress, sweep,
verdicts); what their --help and options have in common is written once
here, below all of them.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from smpemu.errors import UsageError

NOTIFIER_HELP = ("2009 (the mmu notifier flushes after mmu_unlock, the seed's kernel) | 2012 (before it: "
                 "565f3be21746, 3.4).")
RANGE_SHARE_HELP = ("Share (0-1) of each reclaimer's invalidations that are range invalidations (munmap, "
                    "madvise(DONTNEED), balloon) of a working-set page, able to overlap another invalidation of it.")


def parse_list(text: str, opt: str, conv=str) -> list:
    """'1,2,4' -> [1, 2, 4]; empty items, bad items -> UsageError; duplicates dropped."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise UsageError(f"{opt} {text!r}: expected a comma-separated list such as "
                         f"{'1,2,4' if conv is int else 'a,b'}")
    out = []
    for t in items:
        try:
            v = conv(t)
        except ValueError:
            raise UsageError(f"{opt} {text!r}: {t!r} is not a number") from None
        if v not in out:
            out.append(v)
    return out


def examples(*lines: str) -> str:
    """A command's --help epilog: one example per paragraph (rich reflows lines)."""
    return "Examples:\n\n" + "\n\n".join(lines)


def trace_out_option(trace_out: Optional[str], alias: Optional[str]) -> Optional[str]:
    """--trace-out FILE, or the old spelling --trace FILE (kept, hidden, for scripts)."""
    if trace_out and alias and trace_out != alias:
        raise UsageError("give --trace-out once (--trace is its old name)")
    return trace_out or alias


def default_replay_name(policy: str, seed: int, now: float | None = None) -> str:
    """smpemu-replay-POLICY-sSEED-YYYYmmdd-HHMMSS.json, never an existing file's name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"smpemu-replay-{policy}-s{seed}-{stamp}"
    path, k = f"{base}.json", 2
    while os.path.exists(path):
        path, k = f"{base}-{k}.json", k + 1
    return path
