"""The C parts of a litmus test: the initial state and the threads.

Why it exists: each thread's body is C, parsed here into the syntax tree of
``smpemu.litmus.tree`` (statements, expressions, calls of the primitives of
``smpemu.litmus.primitives``), with every register declared and every
location checked against the thread's parameters.  Anything outside the
accepted subset is a ``UsageError`` naming the line and the construct.
"""

from __future__ import annotations

import re

from smpemu.errors import UsageError
from smpemu.litmus.lexer import Tok, TokenStream
from smpemu.litmus.primitives import PRIMITIVES
from smpemu.litmus.tree import Thread

_TYPE_WORDS = {
    "int", "unsigned", "signed", "long", "short", "char", "bool", "const", "volatile",
    "intptr_t", "uintptr_t", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
    "atomic_t", "spinlock_t", "struct", "srcu_struct",
}  # fmt: skip
_STATEMENT_WORDS = {"while", "for", "do", "goto", "return", "switch", "break", "continue", "case"}

_BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}  # fmt: skip


class CodeParser(TokenStream):
    """Parses the initial-state block and the threads ``P0``, ``P1``, ..."""

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

    def call(self, th: Thread, name: Tok):
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

    def location(self, e, name: Tok):
        """A location argument, as a pointer-valued expression: ``*x``, ``x``
        and ``&x`` all name variable x; ``*r`` the one register r points to."""
        if e[0] == "load":  # the lvalue form: READ_ONCE(*x)
            return e[1]
        if e[0] in ("addr", "reg"):
            return e
        raise self.error(f"{name.text}: expected a location such as '*x' or 'x'", name)


    # -- the whole C part: { init } P0(...) {...} P1(...) {...} ...
    def program(self) -> tuple[dict[str, object], dict[str, str], list[Thread]]:
        """The initial state, the variables' types and the threads, checked
        against each other (registers of missing threads, unknown pointees)."""
        path = self.path
        init, types, reg_init = self.init_block()

        threads: list[Thread] = []
        while self.peek().kind == "id" and re.fullmatch(r"P\d+", self.peek().text):
            threads.append(self.thread(len(threads)))
        if not threads:
            raise self.error("expected at least one thread 'P0(...)'")

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
        return init, types, threads
