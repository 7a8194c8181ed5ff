r"""The final clauses of a litmus test: ``locations``, ``filter`` and the condition.

Why it exists: the condition is herd's own little language, not C (``/\``,
``\/``, ``~``, ``0:r0=1``, ``[x]`` is the value of x, a bare name on the
right of ``=`` is an address), and it is checked against the registers and
variables the C part declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from smpemu.litmus.lexer import TokenStream


@dataclass
class Final:
    """What follows the threads."""

    quantifier: str  # "exists" | "~exists" | "forall"
    condition: tuple
    condition_text: str  # as written, tokens re-joined
    locations: list
    filter: tuple | None


class ConditionParser(TokenStream):
    """Parses everything after the last thread, to the end of the file."""

    def final(self, ths, shared) -> Final:
        """``locations [...]`` and ``filter (...)`` in any order, then the
        quantified condition, then nothing."""
        locations: list = []
        filt = None
        while True:
            tok = self.peek()
            if tok.kind == "id" and tok.text == "locations":
                self.next()
                locations = self.locations(ths, shared)
            elif tok.kind == "id" and tok.text == "filter":
                self.next()
                filt = self.condition(ths, shared)
            else:
                break
        tok = self.peek()
        if tok.kind == "op" and tok.text == "~" and self.at("exists", 1):
            self.next()
            self.next()
            quant = "~exists"
        elif tok.kind == "id" and tok.text in ("exists", "forall"):
            self.next()
            quant = tok.text
        elif tok.kind == "eof":
            raise self.error("missing final condition 'exists (...)'")
        else:
            raise self.error(f"unsupported item {tok.text!r} (expected 'exists', '~exists' or 'forall')")
        start = self.i
        cond = self.condition(ths, shared)
        if self.peek().kind != "eof":
            raise self.error(f"unexpected {self.peek().text!r} after the condition")
        cond_text = " ".join(t.text for t in self.toks[start : self.i])
        cond_text = cond_text.replace("( ", "(").replace(" )", ")").replace(" : ", ":").replace(" = ", "=")
        cond_text = cond_text.replace("~ ", "~").replace("[ ", "[").replace(" ]", "]")
        return Final(quant, cond, cond_text, locations, filt)

    def condition(self, ths, shared):
        return self.cond_or(ths, shared)

    def cond_or(self, ths, shared):
        return self.chain("\\/", "or", self.cond_and, ths, shared)

    def cond_and(self, ths, shared):
        return self.chain("/\\", "and", self.cond_unary, ths, shared)

    def chain(self, op: str, kind: str, operand, ths, shared):
        """``a op b op c`` as ``(kind, (kind, a, b), c)``: herd's ``\\/`` and ``/\\``
        associate to the left."""
        left = operand(ths, shared)
        while self.at(op):
            self.next()
            left = (kind, left, operand(ths, shared))
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
        if self.at("["):
            return self.bracketed(ths, shared)
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

    def bracketed(self, ths, shared):
        """``[x]``: the value of shared variable x, on either side of ``=``
        (herd7's notation, the one diy7 and mlisa2c7 write: ``[x]=2``,
        ``0:r0=[x]``).  Only a shared variable may be in brackets."""
        self.expect("[")
        tok = self.peek()
        if tok.kind == "num" and self.at(":", 1):
            reg = f"{tok.text}:{self.peek(2).text}"
            raise self.error(f"[{reg}] in the condition: brackets name a shared variable, not a register (write {reg})", tok)
        name = self.ident("a shared variable inside '[...]'")
        if name.text not in shared:
            owners = [th.index for th in ths if name.text in th.regs]
            if owners:
                reg = f"{owners[0]}:{name.text}"
                raise self.error(
                    f"[{name.text}] in the condition: {name.text!r} is a register, not a shared variable (write {reg})",
                    name,
                )
            raise self.error(f"condition names unknown location [{name.text}]", name)
        self.expect("]", f"closing '[{name.text}'")
        return ("var", name.text)

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


