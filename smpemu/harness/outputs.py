"""Every output file a command writes (--json, --replay-out, --csv, --plot,
--trace-out) goes through here.

Why it exists: a verdict is worth more than the file that records it.  An
output path is checked before any work starts (``check_new_file``: a
directory, a missing parent, an existing file without --force are one
UsageError line), and the file is written at the end through
``write_output``: when the write fails (a full disk, /dev/full, a removed
directory) the command says ``smpemu: cannot write FILE: <reason>`` on
stderr, still prints its verdict and keeps the verdict's exit code; a clean
result whose output was lost exits 4 (incomplete) instead of 0.  The lost
paths are remembered here (``lost()``) so that the CLI's guard can apply
that rule to every command in one place.

May import: smpemu.errors (as the rest of smpemu.harness).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, TextIO

from smpemu.errors import UsageError

_LOST: list[str] = []


def check_new_file(path: str, opt: str, force: bool = True) -> None:
    """Fail before the work, not after it, if ``path`` cannot be an output
    file.  ``force=False``: an existing file is refused (pass --force)."""
    if os.path.isdir(path):
        raise UsageError(f"{opt} {path}: is a directory")
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise UsageError(f"{opt} {path}: directory {d} does not exist")
    if os.path.exists(path) and not force:
        raise UsageError(f"{opt} {path}: the file exists; pass --force to overwrite it")
    if not os.access(d, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{opt} {path}: not writable")


def write_output(path: str, writer: Callable[[TextIO], None], mode: str = "w") -> bool:
    """Open ``path``, let ``writer`` fill it, close it.  An OSError (full disk,
    /dev/full, the directory removed meanwhile) is one line on stderr and
    False; the caller goes on to print its verdict."""
    try:
        with open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
            writer(f)
        return True
    except OSError as e:
        report_lost(path, e)
        return False


def report_lost(path: str, e: OSError) -> None:
    """Say that ``path`` was not written, and remember it (``lost()``)."""
    print(f"smpemu: cannot write {path}: {e.strerror or e}", file=sys.stderr, flush=True)
    _LOST.append(path)


def write_json_file(obj, path: str, indent: int = 2) -> bool:
    def w(f):
        json.dump(obj, f, indent=indent)
        f.write("\n")

    return write_output(path, w)


def lost() -> list[str]:
    """The output files this process failed to write."""
    return list(_LOST)


def forget() -> None:
    """Reset (tests that run several commands in one process)."""
    _LOST.clear()
