"""``smpemu litmus FILE...``: run litmus tests and judge them.

Why it exists: the CLI needs one function that takes the user's arguments,
checks them, runs every test, prints litmus7-style reports (and a summary
when there are several tests) and returns the exit code: 3 when a test
whose ``Result:`` is Never showed its condition (or an Always test failed
it), 0 otherwise.  Bad input raises ``UsageError``; a dead or stuck thread
process raises ``AbortError`` (from the runner).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from smpemu.errors import EXIT_OK, EXIT_VIOLATION, UsageError
from smpemu.litmus.parser import LitmusTest, parse_file
from smpemu.litmus.runner import LitmusResult, format_result, run_test
from smpemu.memory.model import MODELS


def collect(paths: list[str]) -> list[Path]:
    """Files as given; directories expand to their ``*.litmus``, sorted."""
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
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"litmus file {raw!r} does not exist")
    return files


def status(res: LitmusResult) -> str:
    """OK, FAILED (a forbidden outcome was seen), NOT SEEN (an allowed
    outcome did not show: a stronger model, or too few iterations) or -."""
    exp = res.test.expected
    if exp is None:
        return "-"
    if res.violation:
        return "FAILED"
    if exp == "Sometimes" and res.positive == 0:
        return "NOT SEEN"
    return "OK"


def summary(results: list[LitmusResult]) -> str:
    head = ("Test", "Expected", "Observed", "Positive", "Negative", "Status")
    rows = [
        (r.test.name, r.test.expected or "?", r.observation, str(r.positive), str(r.negative), status(r))
        for r in results
    ]
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(len(head))]

    def fmt(row):
        return "  ".join(c.ljust(w) if k in (0, 1, 2, 5) else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(head), fmt(tuple("-" * w for w in widths))]
    lines += [fmt(row) for row in rows]
    return "\n".join(lines)


def litmus_command(
    paths: list[str],
    iterations: int = 100000,
    memory_model: str = "relaxed",
    seed: int | None = None,
) -> int:
    """Run every test in ``paths`` and return the exit code (0 or 3)."""
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r} (choose one of {', '.join(MODELS)})")
    if iterations <= 0:
        raise UsageError(f"--iterations must be positive, got {iterations}")
    if seed is None:
        seed = secrets.randbelow(2**31)
    tests: list[LitmusTest] = [parse_file(f) for f in collect(paths)]  # all checked first

    results = []
    for k, test in enumerate(tests):
        res = run_test(test, iterations=iterations, model=memory_model, seed=seed + k)
        results.append(res)
        print(format_result(res), flush=True)
        print(flush=True)
    if len(results) > 1:
        print(summary(results), flush=True)
    return EXIT_VIOLATION if any(r.violation for r in results) else EXIT_OK
