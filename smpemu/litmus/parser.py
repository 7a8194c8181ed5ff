r"""Parser for C litmus tests in the Linux-kernel memory model's format.

Why it exists: the runner and the exhaustive enumerator need one checked
description of a test: its shared variables and initial values, each
thread's code as a small C abstract syntax tree, the ``locations`` and
``filter`` clauses, the final condition and the expected ``Result:``.
Everything herd7's ``linux-kernel.def`` defines is accepted (see
``PRIMITIVES``), plus ``spin_unlock_wait``; anything else is a
``UsageError`` naming the file, the line and the construct, never a silent
misreading.

Accepted::

    C name
    "optional doc string"
    (* comments, anywhere outside thread bodies; Result: Never|Sometimes|Always *)
    { int x; int y = 1; int *p = &x; q = y; atomic_t v = ATOMIC_INIT(2);
      spinlock_t l; 0:r0 = 1; 1:r1 = x; }
    P0(int *x, int **p, spinlock_t *l, atomic_t *v)
    {
        int r0 = READ_ONCE(*x);  int *r1;  int r2;
        r1 = rcu_dereference(*p);  r2 = READ_ONCE(*r1);     (address dependency)
        if (r0 == 1 && r2) { WRITE_ONCE(*x, r0 + 1); } else smp_mb();
        *x = 3;  r2 = *x;                                   (plain C accesses)
        spin_lock(l); ... spin_unlock(l);  r2 = atomic_fetch_add_release(2, v);
    }
    locations [0:r0; x]
    filter (0:r0=1)
    exists (0:r0=1 /\ ~(1:r1=x \/ x=2) /\ 0:r0=1:r2 /\ x!=3)  (also ~exists, forall)

``//`` and ``/* */`` comments may appear anywhere; ``(* *)`` anywhere but in a
thread body, where ``(*`` is code, as in ``WRITE_ONCE(*x, 1)``.  A parameter
``x`` is a pointer to the shared variable ``x``; ``*x`` is that variable.
In the condition a bare name on the right of ``=`` is an address
(``1:r0=x``), as in herd7; ``x=0:r1`` compares a variable with a register.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from smpemu.errors import UsageError

EXPECTED = ("Never", "Sometimes", "Always")
QUANTIFIERS = ("exists", "~exists", "forall")


# -- the primitives ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prim:
    """One primitive of linux-kernel.def: how many arguments, which is the
    location, what it does (``kind``) and whether it returns a value."""

    name: str
    kind: str
    nargs: int
    value: bool = False
    loc: int | None = 0  # index of the location argument, None: no location
    op: str | None = None  # rmw: "+" or "-"
    amount: int | None = None  # rmw: the constant (inc/dec) or None (an argument)
    result: str | None = None  # rmw: "new", "old", "zero" (== 0), "neg" (< 0), None (void)


def _primitives() -> dict[str, Prim]:
    p: dict[str, Prim] = {}

    def add(name, kind, nargs, value=False, loc=0, **kw):
        p[name] = Prim(name, kind, nargs, value, loc, **kw)

    for n in ("READ_ONCE", "rcu_dereference", "atomic_read"):
        add(n, "load", 1, True)
    for n in ("smp_load_acquire", "atomic_read_acquire"):
        add(n, "load_acquire", 1, True)
    for n in ("WRITE_ONCE", "atomic_set"):
        add(n, "store", 2)
    for n in ("smp_store_release", "atomic_set_release", "rcu_assign_pointer"):
        add(n, "store_release", 2)
    add("smp_store_mb", "store_mb", 2)
    add("smp_mb", "mb", 0, loc=None)
    add("smp_rmb", "rmb", 0, loc=None)
    add("smp_wmb", "wmb", 0, loc=None)
    add("barrier", "nop", 0, loc=None)
    for n in (
        "smp_mb__before_atomic",
        "smp_mb__after_atomic",
        "smp_mb__after_spinlock",
        "smp_mb__after_unlock_lock",
        "smp_mb__after_srcu_read_unlock",
    ):
        add(n, "mb", 0, loc=None)
    for base in ("xchg", "atomic_xchg"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(base + suffix, "xchg", 2, True)
    for base in ("cmpxchg", "atomic_cmpxchg"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(base + suffix, "cmpxchg", 3, True)
    for word, op in (("add", "+"), ("sub", "-"), ("inc", "+"), ("dec", "-")):
        const = word in ("inc", "dec")
        nargs, loc, amount = (1, 0, 1) if const else (2, 1, None)
        add(f"atomic_{word}", "rmw", nargs, False, loc, op=op, amount=amount)
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(f"atomic_{word}_return{suffix}", "rmw", nargs, True, loc, op=op, amount=amount, result="new")
            add(f"atomic_fetch_{word}{suffix}", "rmw", nargs, True, loc, op=op, amount=amount, result="old")
    add("atomic_sub_and_test", "rmw", 2, True, 1, op="-", result="zero")
    add("atomic_dec_and_test", "rmw", 1, True, 0, op="-", amount=1, result="zero")
    add("atomic_inc_and_test", "rmw", 1, True, 0, op="+", amount=1, result="zero")
    add("atomic_add_negative", "rmw", 2, True, 1, op="+", result="neg")
    add("spin_lock", "lock", 1)
    add("spin_unlock", "unlock", 1)
    add("spin_trylock", "trylock", 1, True)
    add("spin_is_locked", "islocked", 1, True)
    add("spin_unlock_wait", "unlock_wait", 1)
    add("rcu_read_lock", "rcu_lock", 0, loc=None)
    add("rcu_read_unlock", "rcu_unlock", 0, loc=None)
    add("synchronize_rcu", "rcu_sync", 0, loc=None)
    add("synchronize_rcu_expedited", "rcu_sync", 0, loc=None)
    add("srcu_read_lock", "srcu_lock", 1, True)
    add("srcu_read_unlock", "srcu_unlock", 2)
    add("synchronize_srcu", "srcu_sync", 1)
    add("synchronize_srcu_expedited", "srcu_sync", 1)
    return p


PRIMITIVES = _primitives()
ATOMIC_KINDS = ("xchg", "cmpxchg", "rmw", "lock", "unlock", "trylock", "islocked", "unlock_wait")

_TYPE_WORDS = {
    "int", "unsigned", "signed", "long", "short", "char", "bool", "const", "volatile",
    "intptr_t", "uintptr_t", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
    "atomic_t", "spinlock_t", "struct", "srcu_struct",
}  # fmt: skip
_STATEMENT_WORDS = {"while", "for", "do", "goto", "return", "switch", "break", "continue", "case"}


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


# -- tokenizer -------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<nl>\n)
  | (?P<ws>[ \t\r\f\v]+)
  | (?P<ccomment>/\*.*?\*/)
  | (?P<linecomment>//[^\n]*)
  | (?P<num>0[xX][0-9a-fA-F]+|\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op>/\\|\\/|==|!=|<=|>=|&&|\|\||<<|>>|->|[(){}\[\],;*&=:~\-+!<>|^%/?.])
    """,
    re.VERBOSE | re.DOTALL,
)
_RESULT_RE = re.compile(r"Result:\s*(\w+)")


@dataclass
class _Tok:
    kind: str  # "num", "id", "op", "eof"
    text: str
    line: int


def _tokenize(path: str, text: str, first_line: int):
    """Tokens, and the text of every ``(* *)`` comment.

    ``(* ... *)`` is a comment outside the thread bodies (the top-level
    braces after the first, the initial state); in a body ``(*`` is code.
    ``"..."`` at the top level is a doc string.
    """
    toks: list[_Tok] = []
    comments: list[str] = []
    line, pos, depth, blocks = first_line, 0, 0, 0
    n = len(text)
    while pos < n:
        in_body = depth > 0 and blocks > 1
        if not in_body and text.startswith("(*", pos):
            end = _comment_end(text, pos)
            if end < 0:
                raise UsageError(f"{path}:{line}: unterminated comment '(*'")
            comments.append(text[pos : end + 2])
            line += text.count("\n", pos, end + 2)
            pos = end + 2
            continue
        if depth == 0 and text[pos] == '"':
            end = text.find('"', pos + 1)
            if end < 0:
                raise UsageError(f"{path}:{line}: unterminated string")
            line += text.count("\n", pos, end + 1)
            pos = end + 1
            continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            if text.startswith("/*", pos):
                raise UsageError(f"{path}:{line}: unterminated comment")
            raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind, tok = m.lastgroup, m.group()
        if kind in ("num", "id", "op"):
            toks.append(_Tok(kind, tok, line))
            if tok == "{":
                if depth == 0:
                    blocks += 1
                depth += 1
            elif tok == "}":
                depth = max(0, depth - 1)
        line += tok.count("\n")
        pos = m.end()
    toks.append(_Tok("eof", "", toks[-1].line if toks else line))  # report where the text ends
    return toks, comments


def _comment_end(text: str, pos: int) -> int:
    """Index of the ``*)`` closing the ``(*`` at ``pos``; they nest, as in
    OCaml (herd7's language).  -1 if unterminated."""
    depth, k = 0, pos
    while True:
        o, c = text.find("(*", k), text.find("*)", k)
        if c < 0:
            return -1
        if 0 <= o < c:
            depth += 1
            k = o + 2
        else:
            depth -= 1
            if depth == 0:
                return c
            k = c + 2


# -- parser ----------------------------------------------------------------------------------

_BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}  # fmt: skip


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

    def unsupported(self, what: str, tok: _Tok | None = None):
        return self.error(f"unsupported construct {what!r}", tok)

    def at(self, text: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind in ("op", "id") and t.text == text

    def found(self) -> str:
        t = self.peek()
        return "end of file" if t.kind == "eof" else repr(t.text)

    def expect(self, text: str, what: str = "") -> _Tok:
        if self.at(text):
            return self.next()
        raise self.error(f"expected {text!r}{' ' + what if what else ''}, found {self.found()}")

    def ident(self, what: str) -> _Tok:
        if self.peek().kind != "id":
            raise self.error(f"expected {what}, found {self.found()}")
        return self.next()

    def integer(self, what: str = "an integer") -> int:
        neg = False
        if self.at("-"):
            self.next()
            neg = True
        t = self.peek()
        if t.kind != "num":
            raise self.error(f"expected {what}, found {self.found()}")
        self.next()
        v = int(t.text, 0)
        return -v if neg else v

    def type_words(self) -> tuple[list[str], int]:
        """Consume a C type (words and stars); returns (words, stars)."""
        words = []
        while self.peek().kind == "id" and self.peek().text in _TYPE_WORDS:
            words.append(self.next().text)
        stars = 0
        while self.at("*"):
            self.next()
            stars += 1
        return words, stars

    @staticmethod
    def var_type(words: list[str], stars: int) -> str:
        if "spinlock_t" in words:
            return "spinlock_t"
        if "atomic_t" in words:
            return "atomic_t"
        if "srcu_struct" in words:
            return "srcu"
        return "ptr" if stars else "int"

    # -- the initial state: { int x; int *p = &y; q = y; atomic_t v = ATOMIC_INIT(1); 0:r0 = 1; }
    def init_block(self):
        init: dict[str, object] = {}
        types: dict[str, str] = {}
        reg_init: dict[tuple[int, str], object] = {}
        self.expect("{", "opening the initial state")
        while not self.at("}"):
            tok = self.peek()
            if tok.kind == "eof":
                raise self.error("unterminated initial-state block")
            if self.at(";"):
                self.next()
                continue
            if tok.kind == "num":  # 0:r0 = 1
                thread = self.integer()
                self.expect(":")
                reg = self.ident("a register name").text
                value = 0
                if self.at("="):
                    self.next()
                    value = self.init_value()
                reg_init[(thread, reg)] = value
            else:
                words, stars = self.type_words()
                name = self.ident("a variable name")
                if name.text in _TYPE_WORDS:
                    raise self.unsupported(name.text, name)
                value = 0
                if self.at("="):
                    self.next()
                    value = self.init_value()
                init[name.text] = value
                typ = self.var_type(words, stars)
                if typ == "int" and isinstance(value, tuple):
                    typ = "ptr"
                types[name.text] = typ
            if self.at(";"):
                self.next()
            elif not self.at("}"):
                raise self.error(f"expected ';' or '}}' in the initial state, found {self.found()}")
        self.expect("}")
        return init, types, reg_init

    def init_value(self):
        if self.at("&"):
            self.next()
            return ("addr", self.ident("a variable name").text)
        if self.peek().kind == "id":
            tok = self.next()
            if tok.text == "ATOMIC_INIT":
                self.expect("(")
                v = self.init_value()
                self.expect(")")
                return v
            if tok.text == "NULL":
                return 0
            return ("addr", tok.text)  # herd: "p = x" makes p point to x
        return self.integer("an initial value")

    # -- P0(int *x, int **p) { ... }
    def thread(self, index: int) -> Thread:
        tok = self.ident("a thread 'P<n>(...)'")
        if tok.text != f"P{index}":
            raise self.error(f"expected thread P{index}, found {tok.text!r}", tok)
        self.expect("(")
        params: list[str] = []
        types: dict[str, str] = {}
        while not self.at(")"):
            start = self.peek()
            words, stars = self.type_words()
            if not words:
                if start.kind == "id":
                    raise self.error(f"unsupported parameter type {start.text!r}", start)
                raise self.error(f"expected a parameter type, found {self.found()}")
            if stars == 0:
                raise self.error("parameters are pointers to shared variables ('int *x')", start)
            name = self.ident("a parameter name").text
            params.append(name)
            types[name] = self.var_type(words, stars - 1)
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        th = Thread(index, params, types, line=tok.line)
        self.expect("{", f"opening the body of P{index}")
        while not self.at("}"):
            if self.peek().kind == "eof":
                raise self.error(f"unterminated body of P{index}")
            th.body.extend(self.statement(th))
        self.expect("}")
        return th

    # -- statements
    def statement(self, th: Thread) -> list:
        tok = self.peek()
        if self.at(";"):
            self.next()
            return []
        if self.at("{"):
            self.next()
            out = []
            while not self.at("}"):
                if self.peek().kind == "eof":
                    raise self.error(f"unterminated block in P{th.index}")
                out.extend(self.statement(th))
            self.next()
            return out
        if tok.kind == "id" and tok.text == "if":
            self.next()
            self.expect("(", "after 'if'")
            cond = self.expr(th)
            self.expect(")", "closing the 'if' condition")
            then = self.statement(th)
            other = []
            if self.at("else"):
                self.next()
                other = self.statement(th)
            return [("if", cond, then, other, tok.line)]
        if tok.kind == "id" and tok.text in _STATEMENT_WORDS:
            raise self.unsupported(tok.text, tok)
        if tok.kind == "id" and tok.text in _TYPE_WORDS:
            return self.declaration(th)
        if self.at("*"):  # *E = v: a plain store
            self.next()
            loc = self.unary(th)
            self.expect("=", "(a plain store '*x = v')")
            val = self.expr(th)
            self.expect(";", "after a statement")
            return [("pstore", loc, val, tok.line)]
        if tok.kind == "id" and self.at("=", 1) and not self.at("==", 1):
            if tok.text in th.params:
                raise self.error(f"cannot assign to shared variable {tok.text!r}; use WRITE_ONCE or '*{tok.text} = ...'", tok)
            self.next()
            self.next()
            th.regs.setdefault(tok.text, 0)
            val = self.expr(th)
            self.expect(";", "after a statement")
            return [("assign", tok.text, val, tok.line)]
        if tok.kind == "id" and self.at("(", 1):
            e = self.expr(th)
            self.expect(";", "after a statement")
            if e[0] != "call":
                raise self.error("expected a statement", tok)
            return [("do", e, tok.line)]
        if tok.kind == "id":
            raise self.unsupported(tok.text, tok)
        raise self.error(f"unsupported statement starting with {tok.text!r}")

    def declaration(self, th: Thread) -> list:
        words, stars = self.type_words()
        if "spinlock_t" in words or "atomic_t" in words:
            raise self.unsupported(" ".join(words) + " register", self.peek())
        out = []
        while True:
            while self.at("*"):
                self.next()
            reg = self.ident("a register name")
            if reg.text in th.params:
                raise self.error(f"register {reg.text!r} shadows a parameter", reg)
            th.regs.setdefault(reg.text, 0)
            if self.at("="):
                self.next()
                out.append(("assign", reg.text, self.expr(th), reg.line))
            if not self.at(","):
                break
            self.next()
        self.expect(";", "after a declaration")
        return out

    # -- expressions
    def expr(self, th: Thread, min_prec: int = 1):
        left = self.unary(th)
        while True:
            t = self.peek()
            prec = _BINARY.get(t.text) if t.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.next()
            right = self.expr(th, prec + 1)
            left = ("bin", t.text, left, right)

    def unary(self, th: Thread):
        t = self.peek()
        if t.kind == "op" and t.text in ("!", "~", "-", "+"):
            self.next()
            e = self.unary(th)
            return e if t.text == "+" else ("un", t.text, e)
        if self.at("*"):
            self.next()
            return ("load", self.unary(th))
        if self.at("&"):
            self.next()
            name = self.ident("a shared variable after '&'")
            if name.text not in th.params:
                raise self.error(f"P{th.index} uses {name.text!r}, which is not one of its parameters", name)
            return ("addr", name.text)
        return self.primary(th)

    def primary(self, th: Thread):
        t = self.peek()
        if t.kind == "num":
            return ("num", self.integer())
        if self.at("("):
            self.next()
            e = self.expr(th)
            self.expect(")", "closing a parenthesis")
            return e
        if t.kind != "id":
            raise self.error(f"expected an expression, found {self.found()}")
        self.next()
        if self.at("("):
            return self.call(th, t)
        if t.text in th.regs:
            return ("reg", t.text)
        if t.text in th.params:
            return ("addr", t.text)  # a parameter is a pointer to its variable
        if t.text == "NULL":
            return ("num", 0)
        if t.text in ("true", "false"):
            return ("num", int(t.text == "true"))
        raise self.error(f"P{th.index}: unknown register or variable {t.text!r}", t)

    def call(self, th: Thread, name: _Tok):
        prim = PRIMITIVES.get(name.text)
        if prim is None:
            raise self.unsupported(name.text, name)
        self.expect("(")
        args = []
        while not self.at(")"):
            if self.peek().kind == "eof":
                raise self.error(f"unterminated call of {name.text}")
            args.append(self.expr(th))
            if not self.at(")"):
                self.expect(",", f"between the arguments of {name.text}")
        self.expect(")")
        if len(args) != prim.nargs:
            raise self.error(f"{name.text} takes {prim.nargs} argument(s), got {len(args)}", name)
        if prim.loc is not None:
            args[prim.loc] = self.location(args[prim.loc], name)
        if prim.kind in ("srcu_lock", "srcu_unlock", "srcu_sync") and args[0][0] != "addr":
            raise self.error(f"{name.text}: the srcu_struct must be a parameter", name)
        return ("call", prim, args, name.line)

    def location(self, e, name: _Tok):
        """A location argument, as a pointer-valued expression: ``*x``, ``x``
        and ``&x`` all name variable x; ``*r`` the one register r points to."""
        if e[0] == "load":  # the lvalue form: READ_ONCE(*x)
            return e[1]
        if e[0] in ("addr", "reg"):
            return e
        raise self.error(f"{name.text}: expected a location such as '*x' or 'x'", name)

    # -- final clauses
    def condition(self, ths, shared):
        return self.cond_or(ths, shared)

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
        if self.at("~") or self.at("not"):
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
        left = self.cond_term(ths, shared, left_side=True)
        if self.at("!="):
            self.next()
            return ("not", ("eq", left, self.cond_term(ths, shared, left_side=False)))
        if self.at("=="):
            self.next()
        else:
            self.expect("=", "in the condition")
        right = self.cond_term(ths, shared, left_side=False)
        return ("eq", left, right)

    def cond_term(self, ths, shared, left_side: bool):
        tok = self.peek()
        if tok.kind == "num" and self.at(":", 1):
            thread = self.integer()
            self.expect(":")
            reg = self.ident("a register name")
            if thread >= len(ths) or reg.text not in ths[thread].regs:
                raise self.error(f"condition names unknown register {thread}:{reg.text}", reg)
            return ("reg", thread, reg.text)
        if tok.kind == "num" or self.at("-"):
            if left_side:
                raise self.error(f"expected a condition term like '0:r0=1' or 'x=1', found {self.found()}")
            return ("val", self.integer())
        if self.at("*"):
            self.next()
            tok = self.peek()
        if tok.kind == "id":
            self.next()
            if tok.text not in shared:
                raise self.error(f"condition names unknown variable {tok.text!r}", tok)
            return ("var", tok.text) if left_side else ("addr", tok.text)
        raise self.error(f"expected a condition term like '0:r0=1' or 'x=1', found {self.found()}")

    def locations(self, ths, shared) -> list:
        self.expect("[", "after 'locations'")
        out = []
        while not self.at("]"):
            if self.peek().kind == "eof":
                raise self.error("unterminated 'locations [...]'")
            term = self.cond_term(ths, shared, left_side=True)
            out.append(term)
            if self.at(";") or self.at(","):
                self.next()
        self.expect("]")
        return out


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
    toks, comments = _tokenize(path, rest, first + 2)

    expected = None
    for c in comments:
        r = _RESULT_RE.search(c)
        if r:
            if r.group(1) not in EXPECTED:
                raise UsageError(f"{path}: unknown Result {r.group(1)!r} (expected one of {', '.join(EXPECTED)})")
            expected = r.group(1)
            break

    p = _Parser(path, toks)
    init, types, reg_init = p.init_block()

    threads: list[Thread] = []
    while p.peek().kind == "id" and re.fullmatch(r"P\d+", p.peek().text):
        threads.append(p.thread(len(threads)))
    if not threads:
        raise p.error("expected at least one thread 'P0(...)'")

    for (t, reg), v in reg_init.items():
        if t >= len(threads):
            raise UsageError(f"{path}: initial state names register {t}:{reg} of a missing thread")
        threads[t].regs[reg] = v  # the body's "int r = v" assigns it again

    for th in threads:
        for param in th.params:
            init.setdefault(param, 0)
            typ = th.param_types[param]
            if types.get(param, "int") in ("int", "ptr") and typ != "int":
                types[param] = typ
            types.setdefault(param, typ)
    shared = set(init)
    for v in list(init.values()) + [v for th in threads for v in th.regs.values()]:
        if isinstance(v, tuple) and v[1] not in shared:
            raise UsageError(f"{path}: initial value points to unknown variable {v[1]!r}")

    locations: list = []
    filt = None
    while True:
        tok = p.peek()
        if tok.kind == "id" and tok.text == "locations":
            p.next()
            locations = p.locations(threads, shared)
        elif tok.kind == "id" and tok.text == "filter":
            p.next()
            filt = p.condition(threads, shared)
        else:
            break
    tok = p.peek()
    if tok.kind == "op" and tok.text == "~" and p.at("exists", 1):
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
    return LitmusTest(
        name,
        path,
        dict(sorted(init.items())),
        types,
        threads,
        quant,
        cond,
        cond_text,
        expected,
        locations,
        filt,
        any(_has_plain(s) for th in threads for s in th.body),
    )


def _has_plain(node) -> bool:
    """Whether a statement or expression contains a plain access."""
    if isinstance(node, tuple) and node and node[0] in ("load", "pstore"):
        return True
    if isinstance(node, (tuple, list)):
        return any(_has_plain(sub) for sub in node)
    return False


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
