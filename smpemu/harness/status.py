"""A one-line status on stderr every few seconds when stderr is not a terminal.

Why it exists: in a terminal, rich progress bars show that a long command is
alive; in a log (CI, nohup, a pipe) they are off, and a sweep was silent for
a minute.  ``Status`` prints one plain line there at most every ``every``
seconds (``SMPEMU_STATUS_EVERY`` overrides the default 5 s), and nothing in a
terminal, where the bars are shown.
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_EVERY_S = 5.0


def _every() -> float:
    try:
        v = float(os.environ.get("SMPEMU_STATUS_EVERY", DEFAULT_EVERY_S))
    except ValueError:
        return DEFAULT_EVERY_S
    return v if v > 0 else DEFAULT_EVERY_S


class Status:
    """``status(text)`` or ``status(lambda: text)``: printed as
    ``smpemu WHAT: text (N s)`` if the interval has passed."""

    def __init__(self, what: str, stream=None, enabled: bool | None = None, every: float | None = None):
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            try:
                enabled = not self.stream.isatty()
            except (AttributeError, ValueError):
                enabled = True
        self.enabled = enabled
        self.every = every if every is not None else _every()
        self.t0 = time.monotonic()
        self.next = self.t0 + self.every

    def __call__(self, text) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.every
        if callable(text):
            text = text()
        try:
            print(f"smpemu {self.what}: {text} ({now - self.t0:.0f} s)", file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed log must not end the run
            self.enabled = False
