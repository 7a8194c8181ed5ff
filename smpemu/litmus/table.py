"""``python -m smpemu.litmus.table DIR TSO.json RELAXED.json``: the verdict table of docs/litmus.md.

Why it exists: the table that compares herd7's verdicts (the ``Result:``
lines) with the model's exact verdicts and the sampled ones is generated,
not typed: this prints it as Markdown.  It enumerates every file of DIR under
tso and relaxed (timing each enumeration) and takes the sampled verdicts
from the ``--json`` files of two ``smpemu litmus`` runs over the same DIR.
A model verdict that differs from herd7's is marked ``≠``; docs/litmus.md
explains each one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from smpemu.litmus import exhaustive as X
from smpemu.litmus import program as G
from smpemu.litmus.parser import parse_file


def _sampled(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)["tests"]
    return {r["name"]: r for r in rows}


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row["observed"] is None:
        return row["status"]
    return f"{row['observed']} ({row['positive']:,})"


def table(directory: str, tso_json: str, relaxed_json: str) -> str:
    tso, rel = _sampled(tso_json), _sampled(relaxed_json)
    iterations = {r["positive"] + r["negative"] for r in list(tso.values()) + list(rel.values()) if r["positive"] is not None}
    lines = [
        "| Test | herd7 | model tso | model relaxed | sampled tso | sampled relaxed | exhaustive ms (tso / relaxed) | states (tso / relaxed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for path in sorted(Path(directory).glob("*.litmus")):
        test = parse_file(path)
        prog = G.build(test)
        cells = []
        times, counts = [], []
        for model in ("tso", "relaxed"):
            res = X.explore(prog, model)
            verdict = res.verdict(prog)
            cells.append(verdict if verdict == test.expected else f"{verdict} ≠")
            times.append(f"{res.elapsed * 1000:.0f}")
            counts.append(str(res.explored))
            worst = max(worst, res.elapsed)
        lines.append(
            f"| {test.name} | {test.expected} | {cells[0]} | {cells[1]} | {_cell(tso.get(test.name))} | "
            f"{_cell(rel.get(test.name))} | {' / '.join(times)} | {' / '.join(counts)} |"
        )
    n = ", ".join(f"{k:,}" for k in sorted(iterations))
    lines.append("")
    lines.append(
        f"Sampled: observed verdict (witnesses) in {n} iterations per test; "
        f"slowest enumeration {worst * 1000:.0f} ms."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m smpemu.litmus.table DIR TSO.json RELAXED.json", file=sys.stderr)
        return 2
    print(table(*argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
