r"""Parser for C litmus tests in the Linux-kernel memory model's format.

Why it exists: the runner and the exhaustive enumerator need one checked
description of a test: its shared variables and initial values, each
thread's code as a small C abstract syntax tree, the ``locations`` and
``filter`` clauses, the final condition and the expected ``Result:``.
Everything herd7's ``linux-kernel.def`` defines is accepted (see
``smpemu.litmus.primitives``), plus ``spin_unlock_wait``; anything else is a
``UsageError`` naming the file, the line and the construct, never a silent
misreading.  This module puts the parts together: ``lexer`` (the file's
structure and tokens), ``cparser`` (initial state and threads),
``conditions`` (the final clauses), into a ``tree.LitmusTest``.

Accepted::

    C name
    "optional doc string"
    Cycle=Fre PodWW Wse PodWR                        (info lines, as diy7 writes them)
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
    locations [0:r0; x;]
    filter (0:r0=1 /\ [y]=1)
    exists (0:r0=1 /\ ~(1:r1=x \/ x=2) /\ 0:r0=1:r2 /\ x!=3)  (also ~exists, forall)

``//`` and ``/* */`` comments may appear anywhere; ``(* *)`` anywhere but in a
thread body, where ``(*`` is code, as in ``WRITE_ONCE(*x, 1)``.  A parameter
``x`` is a pointer to the shared variable ``x``; ``*x`` is that variable.
In the condition a bare name on the right of ``=`` is an address
(``1:r0=x``), as in herd7; ``x=0:r1`` compares a variable with a register;
``[x]`` is x's value on either side (``0:r0=[x]``).  Any ``key=value`` line
between the name and the initial state is kept in ``LitmusTest.info``.
"""

from __future__ import annotations

from smpemu.errors import UsageError
from smpemu.litmus.conditions import ConditionParser
from smpemu.litmus.cparser import CodeParser
from smpemu.litmus.lexer import read_source
from smpemu.litmus.primitives import ATOMIC_KINDS, PRIMITIVES, Prim
from smpemu.litmus.tree import EXPECTED, QUANTIFIERS, LitmusTest, Thread, evaluate

__all__ = [
    "ATOMIC_KINDS",
    "EXPECTED",
    "PRIMITIVES",
    "QUANTIFIERS",
    "LitmusTest",
    "Prim",
    "Thread",
    "evaluate",
    "parse_file",
    "parse_text",
]


def parse_text(text: str, path: str = "<string>") -> LitmusTest:
    """Parse the text of a litmus test; errors name ``path`` and a line."""
    src = read_source(text, path)
    code = CodeParser(path, src.toks)
    init, types, threads = code.program()
    final = ConditionParser(path, src.toks, code.i).final(threads, set(init))
    return LitmusTest(
        src.name,
        path,
        dict(sorted(init.items())),
        types,
        threads,
        final.quantifier,
        final.condition,
        final.condition_text,
        src.expected,
        final.locations,
        final.filter,
        any(_has_plain(s) for th in threads for s in th.body),
        src.info,
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
