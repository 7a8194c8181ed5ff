"""One litmus thread as a list of steps: the code both the runner and the enumerator execute.

Why it exists: the sampled verdict (real processes) and the exact verdict
(every execution, in one process) must run *the same* code over the same
memory models, or a disagreement between them would mean nothing.  This
module lowers each thread's syntax tree to a list of instructions, each
making at most one call into the memory model (a load, a store, a fence,
an atomic, a lock operation) plus local computation, and compiles each
instruction to a small Python function ``step(R, i) -> next pc``:

- ``R`` is the thread's register file (a list: its registers, then hidden
  slots for temporaries, RCU nesting and grace-period snapshots);
- ``i`` is the instance (the runner runs ``batch`` instances side by side:
  instance i of variable v is word ``base[v] + i``; the enumerator has one);
- the primitives (``load``, ``store``, ..., ``lock``, ``wait_change``) come
  from a namespace the caller supplies: the runner's block (spin, then sleep,
  with a timeout), the enumerator's raise ``Blocked`` when they cannot
  proceed, so a blocked step has no effect.

Pointers are values ``PTR_BASE + k`` (k: the variable's index); ``A`` maps
them to the variable's base word, so ``*r`` is ``A[r] + i``.

RCU is a real grace-period protocol over hidden shared words, one per thread
(and per SRCU domain): ``rcu_read_lock`` makes its word odd and then runs
``mb()``, ``rcu_read_unlock`` makes it even with a release store, and
``synchronize_rcu`` runs ``mb()``, snapshots every other thread's word and
waits until each odd one has changed (that thread passed a quiescent state),
then runs ``mb()`` again.  Spinlocks are words in shared memory: lock is a
cmpxchg 0 -> 1 (a full barrier in every model), unlock a release store of 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from smpemu.litmus import tree as T
from smpemu.litmus.primitives import ATOMIC_KINDS

PTR_BASE = 1 << 40  # pointer values: PTR_BASE + index of the variable


@dataclass
class Instr:
    lines: list[str]
    pure: bool  # no memory-model call: only registers
    jump: tuple | None = None  # ("jz", cond_src, target) or ("jmp", target)
    line: int = 0


@dataclass
class ThreadCode:
    index: int
    slots: dict[str, int]  # register / hidden slot -> index in R
    named: list[str]  # the thread's own registers, in order (R[0..len-1])
    initial: list[int]  # R's initial values
    instrs: list[Instr] = field(default_factory=list)

    @property
    def straight(self) -> bool:
        return all(ins.jump is None for ins in self.instrs)


@dataclass
class Program:
    test: T.LitmusTest
    variables: list[str]  # shared variables, then hidden words (RCU)
    atomic: set[str]  # variables every store of which takes the atomic lock
    threads: list[ThreadCode]

    def show(self, value: int) -> str:
        """A value as herd7 prints it: addresses by the variable's name."""
        k = value - PTR_BASE
        if 0 <= k < len(self.variables):
            return self.variables[k]
        return str(value)

    def holds(self, cond: tuple, columns: list[str], state: tuple) -> bool:
        env = dict(zip(columns, state))
        for k, v in enumerate(self.variables):
            env[("addr", v)] = PTR_BASE + k
        return T.evaluate(cond, env)


def _initial(value, variables: list[str]) -> int:
    if isinstance(value, tuple):  # ("addr", v)
        return PTR_BASE + variables.index(value[1])
    return int(value)


def build(test: T.LitmusTest) -> Program:
    """Lower every thread of ``test`` (the parser has checked it)."""
    variables = list(test.init)
    uses_rcu = False
    srcu_domains: list[str] = []

    def scan(node):
        nonlocal uses_rcu
        if isinstance(node, tuple) and node and node[0] == "call":
            kind = node[1].kind
            if kind.startswith("rcu_"):
                uses_rcu = True
            elif kind.startswith("srcu_") and node[2][0][1] not in srcu_domains:
                srcu_domains.append(node[2][0][1])
        if isinstance(node, (tuple, list)):
            for sub in node:
                scan(sub)

    for th in test.threads:
        scan(th.body)
    n = len(test.threads)
    if uses_rcu:
        variables += [f"__rcu_P{t}" for t in range(n)]
    for dom in srcu_domains:
        variables += [f"__srcu_{dom}_P{t}" for t in range(n)]

    atomic = {v for v, typ in test.types.items() if typ in ("atomic_t", "spinlock_t")}
    dynamic = False

    def mark(node):
        nonlocal dynamic
        if isinstance(node, tuple) and node and node[0] == "call":
            prim, args = node[1], node[2]
            if prim.kind in ATOMIC_KINDS:
                loc = args[prim.loc]
                if loc[0] == "addr":
                    atomic.add(loc[1])
                else:
                    dynamic = True  # an RMW through a pointer register
        if isinstance(node, (tuple, list)):
            for sub in node:
                mark(sub)

    for th in test.threads:
        mark(th.body)
    if dynamic:
        atomic.update(v for v in test.init)
    threads = [_Lowering(test, th, variables, n).run() for th in test.threads]
    return Program(test, variables, atomic, threads)


class _Lowering:
    def __init__(self, test: T.LitmusTest, th: T.Thread, variables: list[str], n_threads: int):
        self.test = test
        self.th = th
        self.variables = variables
        self.n = n_threads
        self.slots: dict[str, int] = {}
        self.initial: list[int] = []
        for r, v in th.regs.items():
            self.slot(r, _initial(v, variables))
        self.named = list(th.regs)
        self.instrs: list[Instr] = []
        self.line = th.line
        self.temps = 0

    def run(self) -> ThreadCode:
        for stmt in self.th.body:
            self.stmt(stmt)
        return ThreadCode(self.th.index, self.slots, self.named, self.initial, self.instrs)

    # -- slots and emission
    def slot(self, name: str, initial: int = 0) -> int:
        if name not in self.slots:
            self.slots[name] = len(self.slots)
            self.initial.append(initial)
        return self.slots[name]

    def temp(self) -> str:
        self.temps += 1
        return f"R[{self.slot(f'__t{self.temps}')}]"

    def emit(self, lines, pure=False, jump=None) -> int:
        self.instrs.append(Instr(list(lines), pure, jump, self.line))
        return len(self.instrs) - 1

    def var_addr(self, var: str) -> str:
        return f"B[{self.variables.index(var)}] + i"

    # -- statements
    def stmt(self, s) -> None:
        kind = s[0]
        self.line = s[-1]
        if kind == "assign":
            reg = f"R[{self.slot(s[1])}]"
            src = self.expr(s[2], dest=reg)
            if src != reg:
                self.emit([f"{reg} = {src}"], pure=True)
        elif kind == "pstore":
            addr = self.addr(s[1])
            val = self.expr(s[2])
            self.emit([f"store({addr}, {val})"])
        elif kind == "do":
            self.expr(s[1], dest=None)
        elif kind == "if":
            cond = self.expr(s[1])
            jz = self.emit([], pure=True, jump=("jz", cond, None))
            for sub in s[2]:
                self.stmt(sub)
            if s[3]:
                jmp = self.emit([], pure=True, jump=("jmp", None))
                self.instrs[jz].jump = ("jz", cond, len(self.instrs))
                for sub in s[3]:
                    self.stmt(sub)
                self.instrs[jmp].jump = ("jmp", len(self.instrs))
            else:
                self.instrs[jz].jump = ("jz", cond, len(self.instrs))
        else:  # pragma: no cover - the parser makes only the kinds above
            raise AssertionError(kind)

    # -- expressions: Python source over R, emitting one instruction per model call
    def addr(self, e) -> str:
        if e[0] == "addr":
            return self.var_addr(e[1])
        return f"A[{self.expr(e)}] + i"

    def expr(self, e, dest: str | None = "") -> str:
        """Source of ``e``'s value; model calls become instructions whose
        result lands in ``dest`` (a register) or a fresh temporary."""
        kind = e[0]
        if kind == "num":
            return repr(e[1])
        if kind == "reg":
            return f"R[{self.slots[e[1]]}]"
        if kind == "addr":
            return str(PTR_BASE + self.variables.index(e[1]))
        if kind == "load":
            out = dest or self.temp()
            self.emit([f"{out} = load({self.addr(e[1])})"])
            return out
        if kind == "call":
            return self.call(e, dest)
        if kind == "un":
            a = self.expr(e[2])
            return {"!": f"int(not {a})", "~": f"(~{a})", "-": f"(-{a})"}[e[1]]
        if kind == "bin":
            op = e[1]
            a = self.expr(e[2])
            b = self.expr(e[3])
            if op == "&&":
                return f"int(bool({a}) and bool({b}))"
            if op == "||":
                return f"int(bool({a}) or bool({b}))"
            if op in ("==", "!=", "<", "<=", ">", ">="):
                return f"int({a} {op} {b})"
            if op == "/":
                return f"cdiv({a}, {b})"
            if op == "%":
                return f"cmod({a}, {b})"
            return f"({a} {op} {b})"
        raise AssertionError(kind)  # pragma: no cover

    def call(self, e, dest) -> str:
        prim, args = e[1], e[2]
        self.line = e[3]
        k = prim.kind

        def out():
            return dest or self.temp()

        if prim.loc is not None:
            a = self.addr(args[prim.loc])
        vals = [self.expr(x) for j, x in enumerate(args) if j != prim.loc]
        if k in ("load", "load_acquire"):
            r = out()
            self.emit([f"{r} = {k}({a})"])
            return r
        if k in ("store", "store_release"):
            self.emit([f"{k}({a}, {vals[0]})"])
            return "0"
        if k == "store_mb":
            self.emit([f"store({a}, {vals[0]})"])
            self.emit(["mb()"])
            return "0"
        if k in ("mb", "rmb", "wmb"):
            self.emit([f"{k}()"])
            return "0"
        if k == "nop":
            return "0"
        if k == "xchg":
            r = out()
            self.emit([f"{r} = xchg({a}, {vals[0]})"])
            return r
        if k == "cmpxchg":
            r = out()
            self.emit([f"{r} = cmpxchg({a}, {vals[0]}, {vals[1]})"])
            return r
        if k == "rmw":
            amount = repr(prim.amount) if prim.amount is not None else vals[0]
            delta = amount if prim.op == "+" else f"-({amount})"
            old = self.temp() if prim.result not in (None, "old") else (out() if prim.result == "old" else self.temp())
            self.emit([f"{old} = rmw({a}, {delta})"])
            if prim.result is None:
                return "0"
            if prim.result == "old":
                return old
            new = f"({old} + {delta})"
            r = out()
            src = {"new": new, "zero": f"int({new} == 0)", "neg": f"int({new} < 0)"}[prim.result]
            self.emit([f"{r} = {src}"], pure=True)
            return r
        if k == "lock":
            self.emit([f"lock({a})"])
            return "0"
        if k == "unlock":
            self.emit([f"store_release({a}, 0)"])
            return "0"
        if k == "trylock":
            r = out()
            self.emit([f"{r} = int(cmpxchg({a}, 0, 1) == 0)"])
            return r
        if k == "islocked":
            r = out()
            self.emit([f"{r} = int(load({a}) != 0)"])
            return r
        if k == "unlock_wait":
            self.emit([f"unlock_wait({a})"])
            return "0"
        if k in ("rcu_lock", "rcu_unlock", "rcu_sync"):
            self.rcu(k[4:], "__rcu_P{}", "rcu")
            return "0"
        if k in ("srcu_lock", "srcu_unlock", "srcu_sync"):
            dom = args[0][1]
            self.rcu(k[5:], f"__srcu_{dom}_P{{}}", f"srcu_{dom}")
            return "0" if k != "srcu_lock" else self.zero(dest)
        raise AssertionError(k)  # pragma: no cover

    def zero(self, dest) -> str:
        if dest:
            self.emit([f"{dest} = 0"], pure=True)
            return dest
        return "0"

    def rcu(self, what: str, word: str, tag: str) -> None:
        """The grace-period protocol (see the module docstring)."""
        t = self.th.index
        nest = f"R[{self.slot(f'__{tag}_nest')}]"
        ctr = f"R[{self.slot(f'__{tag}_ctr')}]"
        mine = self.var_addr(word.format(t))
        if what == "lock":
            # pairs with the snapshot loads in synchronize_rcu (SB-shaped, mb on both sides)
            self.emit([f"{nest} += 1", f"if {nest} == 1:", f"    {ctr} += 1", f"    store({mine}, {ctr})"])
            self.emit([f"if {nest} == 1:", "    mb()"])
        elif what == "unlock":
            # release: the critical section's accesses are visible before the word says "out"
            self.emit([f"{nest} -= 1", f"if {nest} == 0:", f"    {ctr} += 1", f"    store_release({mine}, {ctr})"])
        else:  # sync
            others = [u for u in range(self.n) if u != t]
            snaps = {u: f"R[{self.slot(f'__{tag}_snap{u}')}]" for u in others}
            self.emit(["mb()"] + [f"{snaps[u]} = load({self.var_addr(word.format(u))})" for u in others])
            for u in others:
                # pairs with the release store of rcu_read_unlock in P<u>
                self.emit([f"if {snaps[u]} & 1:", f"    wait_change({self.var_addr(word.format(u))}, {snaps[u]})"])
            self.emit(["mb()"])


# -- compilation ------------------------------------------------------------------------------


def model_ops(model, **ops) -> dict:
    """The names the compiled steps call: the model's own accesses and
    barriers, plus ``ops``: how this engine loads, cmpxchgs, locks and waits
    (the sampled runner blocks; the enumerator raises Blocked)."""
    return {"load_acquire": model.load_acquire, "store": model.store, "store_release": model.store_release,
            "mb": model.mb, "rmb": model.rmb, "wmb": model.wmb, "xchg": model.xchg, **ops}


def step_sources(code: ThreadCode) -> list[str]:
    """Python source of each instruction as ``def s<k>(R, i): ...; return next``."""
    out = []
    for k, ins in enumerate(code.instrs):
        body = ["    " + line for line in ins.lines] or ["    pass"]
        if ins.jump is None:
            body.append(f"    return {k + 1}")
        elif ins.jump[0] == "jz":
            body.append(f"    return {ins.jump[2]} if not ({ins.jump[1]}) else {k + 1}")
        else:
            body.append(f"    return {ins.jump[1]}")
        out.append(f"def s{k}(R, i):\n" + "\n".join(body))
    return out


def _inline_bases(src: str, ns: dict) -> str:
    """Replace ``B[k]`` by the constant base word of variable k."""
    base = ns["B"]
    return re.sub(r"B\[(\d+)\]", lambda m: str(base[int(m.group(1))]), src)


def compile_steps(code: ThreadCode, ns: dict) -> list:
    """The instructions as functions over the primitives in ``ns``
    (which must also hold ``B``, the variables' base words, and ``A``)."""
    ns = dict(ns, cdiv=_cdiv, cmod=_cmod)
    src = _inline_bases("\n\n".join(step_sources(code)), ns)
    exec(compile(src or "pass", f"<litmus P{code.index}>", "exec"), ns)
    return [ns[f"s{k}"] for k in range(len(code.instrs))]


def compile_body(code: ThreadCode, ns: dict, epilogue: list[str]):
    """``body(i)``: the whole thread for instance i, then ``epilogue``
    (source lines over R and i).  Straight-line threads are one function,
    as litmus7 compiles a test to C; threads with branches loop over their
    steps."""
    init = repr(list(code.initial))
    if code.straight:
        # registers as Python locals (R[k] -> r_k): the hot path of a sampled run
        src = ["def body(i):"] + [f"    r_{k} = {v!r}" for k, v in enumerate(code.initial)]
        for ins in code.instrs:
            src += ["    " + line for line in ins.lines]
        src += ["    " + line for line in epilogue]
        text = re.sub(r"\bR\[(\d+)\]", r"r_\1", "\n".join(src))
        ns = dict(ns, cdiv=_cdiv, cmod=_cmod)
        exec(compile(_inline_bases(text, ns), f"<litmus P{code.index}>", "exec"), ns)
        return ns["body"]
    steps = compile_steps(code, ns)
    n = len(steps)
    ns2 = dict(ns, STEPS=steps)
    src = ["def body(i):", f"    R = {init}", "    pc = 0", f"    while pc < {n}:", "        pc = STEPS[pc](R, i)"]
    src += ["    " + line for line in epilogue]
    exec(compile("\n".join(src), f"<litmus P{code.index} loop>", "exec"), ns2)
    return ns2["body"]


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)  # C truncates towards zero
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a: int, b: int) -> int:
    return a - b * _cdiv(a, b)
