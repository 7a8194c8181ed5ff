"""One sampled run's outcome, and its report in litmus7's format.

Why it exists: the runner produces the histogram of final states, and the
command, the kernel-suite table and the tests read it; what a histogram
means (positive, negative, the observation, whether the condition is
validated, which states the filter keeps) and how litmus7 prints it are
one idea, apart from the processes that produced it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from smpemu.litmus import program as G
from smpemu.litmus import tree as T


@dataclass
class LitmusResult:
    test: T.LitmusTest
    program: G.Program
    model: str
    iterations: int
    columns: list[str]  # "0:r0", ..., "x", ...
    histogram: Counter  # tuple of column values -> count
    positive: int  # instances satisfying the condition
    negative: int
    elapsed: float
    seed: int

    @property
    def observation(self) -> str:
        if self.positive == 0:
            return "Never"
        if self.negative == 0:
            return "Always"
        return "Sometimes"

    @property
    def validated(self) -> bool:
        q = self.test.quantifier
        if q == "exists":
            return self.positive > 0
        if q == "~exists":
            return self.positive == 0
        return self.negative == 0  # forall

    @property
    def violation(self) -> bool:
        """A forbidden outcome was seen (the Result line says it never happens,
        or that the condition always holds)."""
        exp = self.test.expected
        return (exp == "Never" and self.positive > 0) or (exp == "Always" and self.negative > 0)

    def kept(self, state: tuple) -> bool:
        """Whether the ``filter`` keeps a final state (no filter: all)."""
        f = self.test.filter
        return f is None or self.program.holds(f, self.columns, state)

    def witnesses(self) -> list[tuple]:
        return [s for s in self.histogram if self.kept(s) and self._holds(s)]

    def _holds(self, state: tuple) -> bool:
        return self.program.holds(self.test.condition, self.columns, state)


def format_result(res: LitmusResult) -> str:
    """litmus7-style report of one test."""
    t = res.test
    kind = {"exists": "Allowed", "~exists": "Forbidden", "forall": "Required"}[t.quantifier]
    lines = [f"Test {t.name} {kind}", f"States {len(res.histogram)}"]
    for state in sorted(res.histogram):
        lines.append(f"{res.histogram[state]:<8} {state_line(res, state)}")
    lines.append("Ok" if res.validated else "No")
    lines.append("Witnesses")
    lines.append(f"Positive: {res.positive} Negative: {res.negative}")
    verdict = "is validated" if res.validated else "is NOT validated"
    lines.append(f"Condition {t.quantifier} {t.condition_display()} {verdict}")
    lines.extend(info_lines(res))
    lines.append(f"Observation {t.name} {res.observation} {res.positive} {res.negative}")
    lines.append(f"Time {t.name} {res.elapsed:.2f}")
    lines.append(f"Model {res.model} seed {res.seed} iterations {res.iterations}")
    return "\n".join(lines)


def info_lines(res: LitmusResult) -> list[str]:
    """The file's info lines as litmus7 prints them: ``key=value``, except
    ``Relax <test> Ok|No <relaxations>`` (Ok: the condition was seen) and
    no ``Prefetch`` (litmus7 shows it only when it prefetches)."""
    out = []
    for key, value in res.test.info.items():
        if key == "Relax":
            out.append(f"Relax {res.test.name} {'Ok' if res.positive else 'No'} {value}".rstrip())
        elif key != "Prefetch":
            out.append(f"{key}={value}")
    return out


def state_line(res: LitmusResult, state: tuple) -> str:
    """One final state as litmus7 prints it: ``*>`` when the condition holds,
    ``:>`` otherwise, ``#>`` when the filter drops it."""
    mark = ("*>" if res._holds(state) else ":>") if res.kept(state) else "#>"
    show = res.program.show
    return mark + " ".join(f"{c}={show(v)};" for c, v in zip(res.columns, state))
