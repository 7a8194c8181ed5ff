"""What a parsed litmus test is: its syntax tree, and how a condition is evaluated.

Why it exists: the parser builds these objects and everything after it (the
lowering to steps, the runner, the enumerator, the report) reads them; the
shapes of the tree's tuples are written down once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXPECTED = ("Never", "Sometimes", "Always")
QUANTIFIERS = ("exists", "~exists", "forall")


# -- the syntax tree -----------------------------------------------------------------------
#
# Expressions:  ("num", v) | ("reg", name) | ("addr", var)     (the address of a variable)
#               | ("load", e)                                   (plain read of location e)
#               | ("call", prim, [args], line) | ("bin", op, a, b) | ("un", op, a)
# A location argument is a pointer-valued expression: ``*x`` and ``x`` both
# name variable x (READ_ONCE takes the lvalue, smp_load_acquire the pointer).
# Statements:   ("assign", reg, e, line) | ("pstore", loc_e, e, line)  (plain store)
#               | ("do", call_e, line) | ("if", e, [then], [else], line)
# Conditions:   ("eq", term, term) | ("not", c) | ("and", a, b) | ("or", a, b)
#               | ("true",) | ("false",);  terms: ("reg", t, r) | ("var", v) | ("val", v)
#               | ("addr", v)


@dataclass
class Thread:
    index: int
    params: list[str]
    param_types: dict[str, str]
    regs: dict[str, object] = field(default_factory=dict)  # name -> initial (int or ("addr", v))
    body: list = field(default_factory=list)
    line: int = 0


@dataclass
class LitmusTest:
    name: str
    path: str
    init: dict[str, object]  # every shared variable -> initial value (int or ("addr", v))
    types: dict[str, str]  # variable -> "int" | "atomic_t" | "spinlock_t" | "srcu" | "ptr"
    threads: list[Thread]
    quantifier: str
    condition: tuple
    condition_text: str
    expected: str | None  # from the "Result:" line, if any
    locations: list = field(default_factory=list)  # terms ("reg", t, r) | ("var", v)
    filter: tuple | None = None
    plain: bool = False  # some plain C access (*x = 1, r = *x)
    info: dict[str, str] = field(default_factory=dict)  # "Cycle" -> "Rfe PodRR Fre PodWW", ... (diy7)

    def registers(self) -> list[tuple[int, str]]:
        """Every (thread, register), in thread then declaration order."""
        return [(t.index, r) for t in self.threads for r in t.regs]

    def condition_display(self) -> str:
        """The condition as litmus7 prints it: ``(...)``, wrapped once."""
        text = self.condition_text
        depth = 0
        for k, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and k < len(text) - 1:
                return f"({text})"  # the first "(" closes early: not wrapped
        return text if text.startswith("(") else f"({text})"

    def condition_vars(self) -> list[str]:
        """Shared variables the condition, the filter and ``locations`` mention, in file order."""
        out: list[str] = []

        def walk(c):
            if c[0] == "var" and c[1] not in out:
                out.append(c[1])
            for sub in c[1:]:
                if isinstance(sub, tuple):
                    walk(sub)

        walk(self.condition)
        if self.filter is not None:
            walk(self.filter)
        for term in self.locations:
            walk(term)
        return out

    def columns(self) -> list[str]:
        """The final-state columns: every register, then the variables above."""
        return [f"{t}:{r}" for t, r in self.registers()] + self.condition_vars()


def evaluate(cond: tuple, state: dict) -> bool:
    """Evaluate a condition over a final state ``{"0:r0": v, "x": v}``
    (addresses already encoded by the caller as ``state[("addr", v)]``)."""
    kind = cond[0]
    if kind == "eq":
        return _term(cond[1], state) == _term(cond[2], state)
    if kind == "not":
        return not evaluate(cond[1], state)
    if kind == "and":
        return evaluate(cond[1], state) and evaluate(cond[2], state)
    if kind == "or":
        return evaluate(cond[1], state) or evaluate(cond[2], state)
    return kind == "true"


def _term(t: tuple, state: dict):
    if t[0] == "reg":
        return state[f"{t[1]}:{t[2]}"]
    if t[0] == "var":
        return state[t[1]]
    if t[0] == "addr":
        return state[t]
    return t[1]


