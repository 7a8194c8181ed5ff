"""The structure of a litmus file, and its tokens.

Why it exists: before any C is parsed a file has to be cut into its parts:
the ``C <name>`` line, the ``(* *)`` comments (one may hold ``Result:``),
the doc string, the ``key=value`` info lines that diy7 and mlisa2c7 write
before the initial state (``Cycle=``, ``Relax=``, ...), and the tokens of
the rest.  Whether ``(*`` opens a comment
depends on where it is (it is code inside a thread body), so the cutting
and the tokenizing are one pass.  ``TokenStream`` is the cursor both
parsers (``cparser`` and ``conditions``) move over the tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smpemu.errors import UsageError
from smpemu.litmus.tree import EXPECTED

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
# herd7's splitter: a key, "=", the rest of the line (the value may hold spaces, "=", ":", ",")
_INFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9_./-]*)[ \t]*=[ \t]*([^\n\r]*)")


@dataclass
class Tok:
    kind: str  # "num", "id", "op", "eof"
    text: str
    line: int


def tokenize(path: str, text: str, first_line: int):
    """Tokens, the text of every ``(* *)`` comment, and the info lines.

    ``(* ... *)`` is a comment outside the thread bodies (the top-level
    braces after the first, the initial state); in a body ``(*`` is code.
    ``"..."`` at the top level is a doc string.  Before the initial state a
    line ``key=value`` is an info line (``Cycle=Rfe PodRR Fre PodWW``); a
    key given twice keeps its first value, as herd7's look-up does.
    """
    toks: list[Tok] = []
    comments: list[str] = []
    info: dict[str, str] = {}
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
        if blocks == 0:  # nothing but comments, the doc string and info lines precede the '{'
            m = _INFO_RE.match(text, pos)
            if m:
                info.setdefault(m.group(1), m.group(2).rstrip())
                pos = m.end()
                continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            if text.startswith("/*", pos):
                raise UsageError(f"{path}:{line}: unterminated comment")
            raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind, tok = m.lastgroup, m.group()
        if kind in ("num", "id", "op"):
            toks.append(Tok(kind, tok, line))
            if tok == "{":
                if depth == 0:
                    blocks += 1
                depth += 1
            elif tok == "}":
                depth = max(0, depth - 1)
        line += tok.count("\n")
        pos = m.end()
    toks.append(Tok("eof", "", toks[-1].line if toks else line))  # report where the text ends
    return toks, comments, info


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


@dataclass
class Source:
    """A litmus file cut into its parts (see ``read_source``)."""

    name: str
    expected: str | None  # from the "Result:" line, if any
    toks: list[Tok]
    info: dict[str, str]  # the key=value lines before the initial state, in file order


def read_source(text: str, path: str) -> Source:
    """The name line, the ``Result:`` of the comments, the info lines and the
    tokens of the rest."""
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
    toks, comments, info = tokenize(path, rest, first + 2)

    expected = None
    for c in comments:
        r = _RESULT_RE.search(c)
        if r:
            if r.group(1) not in EXPECTED:
                raise UsageError(f"{path}: unknown Result {r.group(1)!r} (expected one of {', '.join(EXPECTED)})")
            expected = r.group(1)
            break
    return Source(name, expected, toks, info)


class TokenStream:
    """A cursor over the tokens, with the checks every parser needs; errors
    name the file and the line."""

    def __init__(self, path: str, toks: list[Tok], start: int = 0):
        self.path = path
        self.toks = toks
        self.i = start

    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        t = self.peek()
        self.i += 1
        return t

    def error(self, msg: str, tok: Tok | None = None):
        tok = tok or self.peek()
        return UsageError(f"{self.path}:{tok.line}: {msg}")

    def unsupported(self, what: str, tok: Tok | None = None):
        return self.error(f"unsupported construct {what!r}", tok)

    def at(self, text: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind in ("op", "id") and t.text == text

    def found(self) -> str:
        t = self.peek()
        return "end of file" if t.kind == "eof" else repr(t.text)

    def expect(self, text: str, what: str = "") -> Tok:
        if self.at(text):
            return self.next()
        raise self.error(f"expected {text!r}{' ' + what if what else ''}, found {self.found()}")

    def ident(self, what: str) -> Tok:
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
