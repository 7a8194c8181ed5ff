"""``smpemu litmus FILE...``: run litmus tests, judge them, and finish the batch.

Why it exists: the CLI needs one function that takes the user's arguments,
runs every test (the model's exact verdict from ``exhaustive``, the sampled
one from ``runner``), prints litmus7-style reports with the model's verdict
beside the histogram, a summary when there are several tests, optionally a
JSON file, and returns one exit code.  A file that cannot be run is its own
row; the others still run.  Exit codes, the first that applies in this
order wins (``EXIT_PRIORITY``):

- 1: an implementation bug, a sampled final state the model does not allow;
- 4: an aborted run (a thread died or stopped, a search that did not finish);
- 2: an unusable file (it cannot be read, parsed or lowered);
- 3: a forbidden outcome seen (``Result: Never`` and the condition showed,
  or ``Always`` and it failed);
- 0 otherwise.

SIGINT and SIGTERM end the batch with 130 / 143 after printing the tests
that finished (the runner's ``finally`` kills the thread processes and
unlinks every POSIX object first).  When stderr is not a terminal, a
one-line status goes to stderr every few seconds.
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from smpemu.errors import (
    EXIT_ABORTED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    EXIT_VIOLATION,
    AbortError,
    UsageError,
)
from smpemu.litmus import exhaustive as X
from smpemu.litmus import program as G
from smpemu.litmus.parser import parse_file
from smpemu.litmus import runner as R
from smpemu.litmus.result import LitmusResult, format_result, state_line
from smpemu.litmus.runner import run_test
from smpemu.memory.model import MODELS

EXIT_PRIORITY = (EXIT_INTERNAL, EXIT_ABORTED, EXIT_USAGE, EXIT_VIOLATION, EXIT_OK)
JSON_KEYS = ("name", "file", "expected", "model", "observed", "positive", "negative", "status", "error", "info")
STATUS_EVERY = 5.0  # s between status lines on a non-terminal stderr

# status column
OK, FAILED, BUG, ERROR, ABORTED = "OK", "FAILED", "BUG", "error", "aborted"
RUN_MORE = "not seen: allowed, run more"
FORBIDDEN = "not seen: forbidden by the model"
WEAKER = "OK so far: the model allows what Result forbids"
PLAIN_NOTE = (
    "Note: plain C accesses (*x = v, r = *x) run as single accesses here; "
    "LKMM treats them as possibly torn or racy (data races)."
)


def collect(paths: list[str]) -> list[Path]:
    """Files as given; directories expand to their ``*.litmus``, sorted.
    A file that does not exist stays in the list: it becomes its own error
    row, as an unreadable one does, and the others still run."""
    if not paths:
        raise UsageError("no litmus file given")
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("*.litmus"))
            if not found:
                raise UsageError(f"no *.litmus file in directory {raw!r}")
            files.extend(found)
        else:
            files.append(p)
    return files


@dataclass
class Row:
    """One test's outcome: what the summary, the JSON file and the exit code need."""

    name: str
    file: str
    expected: str | None = None
    model: str | None = None  # the exact verdict
    observed: str | None = None  # the sampled verdict
    positive: int | None = None
    negative: int | None = None
    status: str = ERROR
    error: str | None = None
    exit_code: int = EXIT_OK
    info: dict[str, str] = field(default_factory=dict)  # the file's key=value lines (diy7: Cycle, Relax, ...)

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in JSON_KEYS}


def judge(res: LitmusResult, mres: X.ModelResult | None) -> tuple[str, int, list[tuple]]:
    """Status, exit code and the sampled states the model does not allow."""
    prog = res.program
    outside = [s for s in res.histogram if mres is not None and s not in mres.states]
    if outside:
        return BUG, EXIT_INTERNAL, outside
    if res.violation:
        return FAILED, EXIT_VIOLATION, []
    exp = res.test.expected
    verdict = mres.verdict(prog) if mres is not None else None
    if exp == "Sometimes" and res.positive == 0:  # which kind of "not seen"?
        return (FORBIDDEN if verdict == "Never" else RUN_MORE), EXIT_OK, []
    if exp is None:
        return "-", EXIT_OK, []
    if verdict is not None and verdict != exp and exp in ("Never", "Always"):
        return WEAKER, EXIT_OK, []  # not seen yet, but the model has the forbidden outcome
    return OK, EXIT_OK, []


def model_lines(res: LitmusResult, mres: X.ModelResult) -> list[str]:
    """The model's verdict and the final states it allows that were not seen."""
    prog = res.program
    verdict = mres.verdict(prog)
    lines = [
        f"Model {mres.model}: {verdict} ({len(mres.states)} final states, exhaustive: "
        f"{mres.explored} states in {mres.elapsed:.3f} s)"
    ]
    if mres.stuck:
        lines.append(f"Model {mres.model}: {mres.stuck} stuck states (no thread can move: a deadlock)")
    for s in sorted(mres.states - set(res.histogram)):
        lines.append(f"{'unseen':<8} {state_line(res, s)}")
    return lines


def report(res: LitmusResult, mres: X.ModelResult, outside: list[tuple]) -> str:
    """litmus7's report, with the model's verdict beside the histogram."""
    text = format_result(res).split("\n")
    k = 2 + len(res.histogram)  # after "Test", "States" and the histogram
    extra = model_lines(res, mres)
    for s in outside:
        extra.append(f"IMPLEMENTATION BUG: sampled state {state_line(res, s)} is not allowed by the model {mres.model}")
    if res.test.plain:
        extra.append(PLAIN_NOTE)
    return "\n".join(text[:k] + extra + text[k:])


def summary(rows: list[Row]) -> str:
    head = ("Test", "Expected", "Model", "Observed", "Positive", "Negative", "Status")
    table = [
        (
            r.name,
            r.expected or "?",
            r.model or "-",
            r.observed or "-",
            "-" if r.positive is None else str(r.positive),
            "-" if r.negative is None else str(r.negative),
            r.status if r.error is None else f"{r.status}: {r.error}",
        )
        for r in rows
    ]
    widths = [max(len(row[k]) for row in [head, *table]) for k in range(len(head) - 1)]

    def fmt(row):
        cells = [c.rjust(w) if k in (4, 5) else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells + [row[-1]]).rstrip()

    lines = [fmt(head), fmt(tuple("-" * w for w in widths) + ("------",))]
    lines += [fmt(row) for row in table]
    return "\n".join(lines)


def exit_code(rows: list[Row]) -> int:
    codes = {r.exit_code for r in rows}
    return next(c for c in EXIT_PRIORITY if c in codes or c == EXIT_OK)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Status:
    """A one-line status on stderr every ``every`` s, when stderr is not a terminal."""

    def __init__(self, total: int, every: float, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = not _isatty(self.stream)
        self.total = total
        self.every = every
        self.last = time.monotonic()
        self.index = 0
        self.name = ""
        self.iterations = 0

    def test(self, index: int, name: str, iterations: int) -> None:
        self.index, self.name, self.iterations = index, name, iterations
        self.tick(0)

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= self.every:
            self.last = now
            print(
                f"smpemu litmus: test {self.index + 1}/{self.total} {self.name}: "
                f"{done:,}/{self.iterations:,} iterations",
                file=self.stream,
                flush=True,
            )


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_one(path: Path, iterations: int, memory_model: str, seed: int, status: _Status, timeout: float) -> tuple[Row, str]:
    """Parse, enumerate and sample one file; every failure becomes the row's
    status.  Returns the row and the text to print."""
    row = Row(name=path.stem, file=str(path))
    try:
        test = parse_file(path)
        row.name, row.expected, row.info = test.name, test.expected, test.info
        prog = G.build(test)
        mres = X.explore(prog, memory_model)
    except UsageError as e:
        row.status, row.error, row.exit_code = ERROR, str(e), EXIT_USAGE
        return row, f"smpemu litmus: {e}\n"
    if not mres.complete:
        row.status, row.exit_code = ABORTED, EXIT_ABORTED
        row.error = f"the model's enumeration stopped after {mres.explored} states (incomplete)"
        return row, f"smpemu litmus: {test.name}: {row.error}\n"
    row.model = mres.verdict(prog)
    status.test(status.index, test.name, iterations)
    try:
        res = run_test(test, iterations, memory_model, seed, timeout=timeout, program=prog, progress=status.tick)
    except AbortError as e:
        row.status, row.error, row.exit_code = ABORTED, str(e), EXIT_ABORTED
        return row, f"smpemu litmus: {test.name}: aborted: {e}\n"
    row.observed, row.positive, row.negative = res.observation, res.positive, res.negative
    row.status, row.exit_code, outside = judge(res, mres)
    if outside:
        row.error = f"{len(outside)} sampled state(s) outside the model's set"
    return row, report(res, mres, outside) + "\n"


def litmus_command(
    paths: list[str],
    iterations: int = 100000,
    memory_model: str = "relaxed",
    seed: int | None = None,
    json_path: str | None = None,
    timeout: float = 10.0,
    status_every: float = STATUS_EVERY,
) -> int:
    """Run every test in ``paths`` and return the exit code (see the module docstring)."""
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r} (choose one of {', '.join(MODELS)})")
    if iterations <= 0:
        raise UsageError(f"--iterations must be positive, got {iterations}")
    if json_path is not None:
        from smpemu.harness.outputs import check_new_file

        check_new_file(json_path, "--json")
    files = collect(paths)
    if seed is None:
        seed = secrets.randbelow(2**31)
    print(f"smpemu litmus: {len(files)} file(s), model {memory_model}, {iterations:,} iterations, seed {seed}", flush=True)
    rows: list[Row] = []
    status = _Status(len(files), status_every)

    R._interrupts.clear()
    old = {s: signal.signal(s, R.on_signal) for s in _SIGNALS}
    interrupted = None
    try:
        for k, path in enumerate(files):
            status.index = k
            row, text = run_one(path, iterations, memory_model, seed + k, status, timeout)
            # a finished test is both in the summary and printed, even if a signal comes now
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
            try:
                rows.append(row)
                print(text, flush=True)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # a pending signal is handled here
    except R.Interrupted as e:
        interrupted = EXIT_SIGINT if e.signum == signal.SIGINT else EXIT_SIGTERM
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if len(rows) > 1 or interrupted is not None:
        print(summary(rows), flush=True)
    if json_path is not None:
        from smpemu.harness.outputs import write_json_file

        write_json_file({"tests": [r.as_json() for r in rows]}, json_path, indent=1)
    if interrupted is not None:
        name = "SIGINT" if interrupted == EXIT_SIGINT else "SIGTERM"
        print(f"smpemu litmus: interrupted by {name}: {len(rows)} of {len(files)} tests finished", file=sys.stderr, flush=True)
        return interrupted
    code = exit_code(rows)
    bugs = [r.name for r in rows if r.status == BUG]
    if bugs:
        print(
            f"smpemu litmus: IMPLEMENTATION BUG: sampled states outside the model's set in {', '.join(bugs)}",
            file=sys.stderr,
            flush=True,
        )
    return code
