r"""Parser for C litmus tests in the Linux-kernel memory model's format.

Why it exists: the runner needs a small, checked description of a test (its
shared variables and initial values, each thread's operations, the
``exists`` condition and the expected ``Result:``).  Only the subset of the
format that maps onto the memory-model layer is accepted; anything else is a
``UsageError`` naming the file and line, never a silent misreading.

Accepted::

    C name
    (* ... Result: Never|Sometimes|Always ... *)
    { int x; int y = 1; z = 2; 0:r0 = 1; }            (or {})
    P0(int *x, int *y)
    {
        int r0;  int r1 = 0;
        WRITE_ONCE(*x, 1);       r0 = READ_ONCE(*y);
        smp_store_release(y, 1); r1 = smp_load_acquire(x);
        smp_wmb(); smp_rmb(); smp_mb();
        r2 = xchg(x, 1);         r3 = cmpxchg(x, 0, 1);
    }
    exists (0:r0=0 /\ ~(1:r0=1 \/ x=2))                (also ~exists, forall)

A location is written ``x``, ``*x`` or ``&x``; a stored value is an integer
or a register of the thread.  A doc string ``"..."`` may follow the name;
``//`` and ``/* */`` comments may appear anywhere after the header (``(*``
is a comment only before the initial state: in a body it is code, as in
``WRITE_ONCE(*x, 1)``).  ``locations``, ``filter``, ``if``, locks, atomic_t
and pointers to pointers are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from smpemu.errors import UsageError

EXPECTED = ("Never", "Sometimes", "Always")
QUANTIFIERS = ("exists", "~exists", "forall")

# Operation kinds (Op.kind)
STORE, STORE_RELEASE, LOAD, LOAD_ACQUIRE = "store", "store_release", "load", "load_acquire"
WMB, RMB, MB = "wmb", "rmb", "mb"
XCHG, CMPXCHG, ASSIGN = "xchg", "cmpxchg", "assign"

_FENCES = {"smp_wmb": WMB, "smp_rmb": RMB, "smp_mb": MB}
_STORES = {"WRITE_ONCE": STORE, "smp_store_release": STORE_RELEASE}
_LOADS = {"READ_ONCE": LOAD, "smp_load_acquire": LOAD_ACQUIRE}


@dataclass(frozen=True)
class Op:
    """One thread operation.  ``args`` are ints (values) or str (var/reg)."""

    kind: str
    reg: str | None = None  # destination register (loads, xchg, assign)
    var: str | None = None  # shared variable
    args: tuple = ()  # stored value / cmpxchg (old, new) / assigned value
    line: int = 0


@dataclass
class Thread:
    index: int
    params: list[str]
    regs: dict[str, int] = field(default_factory=dict)  # name -> initial value
    ops: list[Op] = field(default_factory=list)


# Condition AST: ("reg", thread, name, value) | ("var", name, value)
#                | ("not", c) | ("and", a, b) | ("or", a, b) | ("true",) | ("false",)
@dataclass
class LitmusTest:
    name: str
    path: str
    init: dict[str, int]  # every shared variable -> initial value
    threads: list[Thread]
    quantifier: str
    condition: tuple
    condition_text: str
    expected: str | None  # from the "Result:" line, if any

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
        """Shared variables the condition mentions, in file order."""
        out: list[str] = []

        def walk(c):
            if c[0] == "var" and c[1] not in out:
                out.append(c[1])
            for sub in c[1:]:
                if isinstance(sub, tuple):
                    walk(sub)

        walk(self.condition)
        return out

    def atomic_vars(self) -> set[str]:
        """Variables used by xchg/cmpxchg: their plain stores must be locked."""
        return {op.var for t in self.threads for op in t.ops if op.kind in (XCHG, CMPXCHG)}


def evaluate(cond: tuple, regs: dict[tuple[int, str], int], mem: dict[str, int]) -> bool:
    kind = cond[0]
    if kind == "reg":
        return regs[(cond[1], cond[2])] == cond[3]
    if kind == "var":
        return mem[cond[1]] == cond[2]
    if kind == "not":
        return not evaluate(cond[1], regs, mem)
    if kind == "and":
        return evaluate(cond[1], regs, mem) and evaluate(cond[2], regs, mem)
    if kind == "or":
        return evaluate(cond[1], regs, mem) or evaluate(cond[2], regs, mem)
    return kind == "true"


# -- tokenizer -------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<nl>\n)
  | (?P<ws>[ \t\r\f\v]+)
  | (?P<ccomment>/\*.*?\*/)
  | (?P<linecomment>//[^\n]*)
  | (?P<num>\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>/\\|\\/|[(){}\[\],;*&=:~\-])
    """,
    re.VERBOSE | re.DOTALL,
)
_RESULT_RE = re.compile(r"Result:\s*(\w+)")


@dataclass
class _Tok:
    kind: str  # "num", "id", "op", "eof"
    text: str
    line: int


def _tokenize(path: str, text: str, first_line: int) -> list[_Tok]:
    toks: list[_Tok] = []
    line, pos = first_line, 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            if text.startswith("/*", pos):
                raise UsageError(f"{path}:{line}: unterminated comment")
            raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind, tok = m.lastgroup, m.group()
        if kind in ("num", "id", "op"):
            toks.append(_Tok(kind, tok, line))
        line += tok.count("\n")
        pos = m.end()
    toks.append(_Tok("eof", "", toks[-1].line if toks else line))  # report where the text ends
    return toks


def _header(path: str, text: str, line: int):
    """Split the ``(* ... *)`` comments and doc strings before the init block.

    Only there is ``(*`` a comment: in a body, ``WRITE_ONCE(*x, 1)`` is code.
    Returns (comments, rest of the text, line number where the rest starts).
    """
    comments: list[str] = []
    pos = 0
    while True:
        m = re.match(r"\s*", text[pos:])
        line += m.group().count("\n")
        pos += m.end()
        if text.startswith("(*", pos):
            end = text.find("*)", pos + 2)
            if end < 0:
                raise UsageError(f"{path}:{line}: unterminated comment '(*'")
            comments.append(text[pos : end + 2])
            line += text.count("\n", pos, end + 2)
            pos = end + 2
        elif text.startswith('"', pos):
            end = text.find('"', pos + 1)
            if end < 0:
                raise UsageError(f"{path}:{line}: unterminated string")
            line += text.count("\n", pos, end + 1)
            pos = end + 1
        else:
            return comments, text[pos:], line


# -- parser ------------------------------------------------------------------------


class _Parser:
    def __init__(self, path: str, toks: list[_Tok]):
        self.path = path
        self.toks = toks
        self.i = 0

    # helpers
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.peek()
        self.i += 1
        return t

    def error(self, msg: str, tok: _Tok | None = None):
        tok = tok or self.peek()
        return UsageError(f"{self.path}:{tok.line}: {msg}")

    def at(self, text: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "id") and t.text == text

    def expect(self, text: str, what: str = "") -> _Tok:
        t = self.peek()
        if t.kind in ("op", "id") and t.text == text:
            return self.next()
        found = "end of file" if t.kind == "eof" else repr(t.text)
        raise self.error(f"expected {text!r}{' ' + what if what else ''}, found {found}")

    def ident(self, what: str) -> _Tok:
        t = self.peek()
        if t.kind != "id":
            found = "end of file" if t.kind == "eof" else repr(t.text)
            raise self.error(f"expected {what}, found {found}")
        return self.next()

    def integer(self, what: str = "an integer") -> int:
        neg = False
        if self.at("-"):
            self.next()
            neg = True
        t = self.peek()
        if t.kind != "num":
            found = "end of file" if t.kind == "eof" else repr(t.text)
            raise self.error(f"expected {what}, found {found}")
        self.next()
        return -int(t.text) if neg else int(t.text)

    # init block: { int x; int y = 1; z = 2; 0:r0 = 1; }
    def init_block(self):
        init: dict[str, int] = {}
        reg_init: dict[tuple[int, str], int] = {}
        self.expect("{", "opening the initial state")
        while not self.at("}"):
            tok = self.peek()
            if tok.kind == "eof":
                raise self.error("unterminated initial-state block")
            if tok.kind == "num":  # 0:r0 = 1
                thread = self.integer()
                self.expect(":")
                reg = self.ident("a register name").text
                self.expect("=")
                reg_init[(thread, reg)] = self.integer()
            else:
                if self.at("int"):
                    self.next()
                    if self.at("*"):
                        raise self.error("pointer variables in the initial state are not supported")
                name = self.ident("a variable name")
                if name.text in ("spinlock_t", "atomic_t"):
                    raise self.error(f"unsupported type {name.text!r}", name)
                value = 0
                if self.at("="):
                    self.next()
                    if self.at("&"):
                        raise self.error("pointer initial values are not supported")
                    value = self.integer()
                init[name.text] = value
            if self.at(";"):
                self.next()
            elif not self.at("}"):
                raise self.error(f"expected ';' or '}}' in the initial state, found {self.peek().text!r}")
        self.expect("}")
        return init, reg_init

    # P0(int *x, int *y) { ... }
    def thread(self, index: int) -> Thread:
        tok = self.ident("a thread 'P<n>(...)'")
        if tok.text != f"P{index}":
            raise self.error(f"expected thread P{index}, found {tok.text!r}", tok)
        self.expect("(")
        params: list[str] = []
        while not self.at(")"):
            typ = self.ident("a parameter type")
            if typ.text != "int":
                raise self.error(f"unsupported parameter type {typ.text!r} (only 'int *x')", typ)
            self.expect("*", "(parameters are 'int *x')")
            params.append(self.ident("a parameter name").text)
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        th = Thread(index, params)
        self.expect("{", f"opening the body of P{index}")
        while not self.at("}"):
            if self.peek().kind == "eof":
                raise self.error(f"unterminated body of P{index}")
            self.statement(th)
        self.expect("}")
        return th

    def location(self, th: Thread) -> str:
        if self.at("*") or self.at("&"):
            self.next()
        tok = self.ident("a shared variable")
        if tok.text not in th.params:
            raise self.error(f"P{th.index} uses {tok.text!r}, which is not one of its parameters", tok)
        return tok.text

    def value(self, th: Thread):
        tok = self.peek()
        if tok.kind == "id":
            if tok.text not in th.regs:
                raise self.error(f"P{th.index}: unknown register {tok.text!r}", tok)
            self.next()
            return tok.text
        return self.integer("an integer or a register")

    def statement(self, th: Thread) -> None:
        tok = self.peek()
        if tok.kind != "id":
            raise self.error(f"unsupported statement starting with {tok.text!r}")
        name = tok.text
        if name == "int":
            self.next()
            while True:
                reg = self.ident("a register name")
                if reg.text in th.params:
                    raise self.error(f"register {reg.text!r} shadows a parameter", reg)
                init = 0
                if self.at("="):
                    self.next()
                    init = self.integer()
                th.regs[reg.text] = init
                if not self.at(","):
                    break
                self.next()
        elif name in _FENCES:
            self.next()
            self.expect("(")
            self.expect(")")
            th.ops.append(Op(_FENCES[name], line=tok.line))
        elif name in _STORES:
            self.next()
            self.expect("(")
            var = self.location(th)
            self.expect(",")
            val = self.value(th)
            self.expect(")")
            th.ops.append(Op(_STORES[name], var=var, args=(val,), line=tok.line))
        elif self.peek(1).kind == "op" and self.peek(1).text == "=":
            self.assignment(th)
        else:
            raise self.error(f"unsupported statement {name!r}", tok)
        self.expect(";", "after a statement")

    def assignment(self, th: Thread) -> None:
        reg_tok = self.next()
        reg = reg_tok.text
        if reg in th.params:
            raise self.error(f"cannot assign to shared variable {reg!r}; use WRITE_ONCE", reg_tok)
        self.expect("=")
        rhs = self.peek()
        line = reg_tok.line
        if rhs.kind == "id" and rhs.text in _LOADS:
            self.next()
            self.expect("(")
            var = self.location(th)
            self.expect(")")
            op = Op(_LOADS[rhs.text], reg=reg, var=var, line=line)
        elif rhs.kind == "id" and rhs.text == "xchg":
            self.next()
            self.expect("(")
            var = self.location(th)
            self.expect(",")
            new = self.value(th)
            self.expect(")")
            op = Op(XCHG, reg=reg, var=var, args=(new,), line=line)
        elif rhs.kind == "id" and rhs.text == "cmpxchg":
            self.next()
            self.expect("(")
            var = self.location(th)
            self.expect(",")
            old = self.value(th)
            self.expect(",")
            new = self.value(th)
            self.expect(")")
            op = Op(CMPXCHG, reg=reg, var=var, args=(old, new), line=line)
        elif rhs.kind == "id" and self.peek(1).kind == "op" and self.peek(1).text == "(":
            raise self.error(f"unsupported operation {rhs.text!r}", rhs)
        else:
            op = Op(ASSIGN, reg=reg, args=(self.value(th),), line=line)
        th.regs.setdefault(reg, 0)
        th.ops.append(op)

    # condition: or-expression over atoms "N:reg=v" and "x=v"
    def condition(self, test_threads: list[Thread], shared: set[str]):
        return self.cond_or(test_threads, shared)

    def cond_or(self, ths, shared):
        left = self.cond_and(ths, shared)
        while self.at("\\/"):
            self.next()
            left = ("or", left, self.cond_and(ths, shared))
        return left

    def cond_and(self, ths, shared):
        left = self.cond_unary(ths, shared)
        while self.at("/\\"):
            self.next()
            left = ("and", left, self.cond_unary(ths, shared))
        return left

    def cond_unary(self, ths, shared):
        if self.at("~"):
            self.next()
            return ("not", self.cond_unary(ths, shared))
        if self.at("("):
            self.next()
            c = self.cond_or(ths, shared)
            self.expect(")", "closing the condition")
            return c
        tok = self.peek()
        if tok.kind == "id" and tok.text in ("true", "false"):
            self.next()
            return (tok.text,)
        if tok.kind == "num":
            thread = self.integer()
            self.expect(":")
            reg = self.ident("a register name")
            if thread >= len(ths) or reg.text not in ths[thread].regs:
                raise self.error(f"condition names unknown register {thread}:{reg.text}", reg)
            self.expect("=")
            return ("reg", thread, reg.text, self.integer())
        if tok.kind == "id":
            self.next()
            if tok.text not in shared:
                raise self.error(f"condition names unknown variable {tok.text!r}", tok)
            self.expect("=")
            return ("var", tok.text, self.integer())
        found = "end of file" if tok.kind == "eof" else repr(tok.text)
        raise self.error(f"expected a condition term like '0:r0=1' or 'x=1', found {found}")


def parse_text(text: str, path: str = "<string>") -> LitmusTest:
    """Parse the text of a litmus test; errors name ``path`` and a line."""
    lines = text.split("\n")
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first == len(lines):
        raise UsageError(f"{path}:1: empty litmus file")
    m = re.fullmatch(r"\s*C\s+(\S+)\s*", lines[first])
    if not m:
        raise UsageError(
            f"{path}:{first + 1}: expected 'C <name>' (only C litmus tests are supported), "
            f"found {lines[first].strip()!r}"
        )
    name = m.group(1)
    rest = "\n".join(lines[first + 1 :])
    comments, rest, line = _header(path, rest, first + 2)
    toks = _tokenize(path, rest, line)

    expected = None
    for c in comments:
        r = _RESULT_RE.search(c)
        if r:
            if r.group(1) not in EXPECTED:
                raise UsageError(f"{path}: unknown Result {r.group(1)!r} (expected one of {', '.join(EXPECTED)})")
            expected = r.group(1)
            break

    p = _Parser(path, toks)
    init, reg_init = p.init_block()

    threads: list[Thread] = []
    while p.peek().kind == "id" and re.fullmatch(r"P\d+", p.peek().text):
        threads.append(p.thread(len(threads)))
    if not threads:
        raise p.error("expected at least one thread 'P0(...)'")

    for (t, reg), v in reg_init.items():
        if t >= len(threads):
            raise UsageError(f"{path}: initial state names register {t}:{reg} of a missing thread")
        threads[t].regs[reg] = v  # the body's "int r = v" may override it

    shared = set(init)
    for th in threads:
        shared.update(th.params)
    for var in sorted(shared - set(init)):
        init[var] = 0

    tok = p.peek()
    if tok.kind == "op" and tok.text == "~" and p.peek(1).text == "exists":
        p.next()
        p.next()
        quant = "~exists"
    elif tok.kind == "id" and tok.text in ("exists", "forall"):
        p.next()
        quant = tok.text
    elif tok.kind == "eof":
        raise p.error("missing final condition 'exists (...)'")
    else:
        raise p.error(f"unsupported item {tok.text!r} (expected 'exists', '~exists' or 'forall')")
    start = p.i
    cond = p.condition(threads, shared)
    if p.peek().kind != "eof":
        raise p.error(f"unexpected {p.peek().text!r} after the condition")
    cond_text = " ".join(t.text for t in toks[start : p.i])
    cond_text = cond_text.replace("( ", "(").replace(" )", ")").replace(" : ", ":").replace(" = ", "=")
    cond_text = cond_text.replace("~ ", "~")
    return LitmusTest(name, path, dict(sorted(init.items())), threads, quant, cond, cond_text, expected)


def parse_file(path) -> LitmusTest:
    """Read and parse one file; a missing or unreadable file is a UsageError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"cannot read litmus file {str(path)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"cannot read litmus file {str(path)!r}: not UTF-8 text ({e.reason})") from None
    return parse_text(text, str(path))
