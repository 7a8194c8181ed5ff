"""trace: replay a text file of guest operations, looping until the run ends.

For users' own scenarios without writing Python: each vCPU replays the
operations that apply to it, in order, then starts again.  It drives
whichever kernel paths the file names (demand paging and kmap on a first
touch, FNAME(invlpg), mmu_sync_children on a cr3 write, HLT).

Format: one operation a line; ``#`` starts a comment; blank lines are skipped.

    touch PAGE [w]      guest access to PAGE with demand paging (w: a write)
    read CPU PAGE       racy read of vCPU CPU's page PAGE, no #PF handling
                        (a sibling thread's page, or a speculative TLB fill)
    unmap PAGE          munmap one page: clear the pte, invlpg, free the frame
    invlpg PAGE         invlpg only
    pt_write TABLE      guest write to the first page-table page of TABLE
    cr3 TABLE           cr3 write: switch to TABLE (mmu_sync_children)
    halt US             HLT for at most US microseconds (a kick wakes it)

PAGE is an index into the vCPU's own malloc range (0 .. pages per thread - 1,
which depends on --vcpus and --guest-mem; a page out of range is an error,
never wrapped).  TABLE is ``home`` (the vCPU's own guest process), ``next``
(the following process, wrapping) or a process number 0 .. procs - 1.

Which vCPUs run a line: every vCPU, unless the line starts with
``cpu SPEC:`` where SPEC is ``N``, ``N,M``, ``N-M`` or ``*``.  A line that is
only ``cpu SPEC:`` starts a section: the lines after it belong to SPEC until
the next section (``cpu *:`` goes back to every vCPU).  A vCPU with nothing to
replay finishes at once.  Example, for 2 vCPUs or more (shipped as
``workloads/examples/ops.trace``: ``smpemu run --workload trace
--trace-file workloads/examples/ops.trace``)::

    # every vCPU: fault a page in, read a neighbour's
    touch 0 w
    read 1 0
    cpu 0:
    unmap 0
    cr3 next
    cr3 home
    cpu *:
    cpu 1: halt 100

The file is ``--trace-file FILE`` (``RunConfig.trace_file``).  Malformed input raises UsageError
naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from smpemu.errors import UsageError

# op -> operand kinds: p = own page, c = vCPU number, t = table, w = optional "w", u = microseconds
OPS = {
    "touch": "pw",
    "read": "cp",
    "unmap": "p",
    "invlpg": "p",
    "pt_write": "t",
    "cr3": "t",
    "halt": "u",
}


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple
    cpus: frozenset | None  # None: every vCPU
    line: int


def _err(path, line, msg) -> UsageError:
    return UsageError(f"trace {path} line {line}: {msg}")


def _cpu_spec(text: str, path, line) -> frozenset | None:
    text = text.strip()
    if text == "*":
        return None
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise _err(path, line, f"bad cpu list {text!r}: expected N, N,M, N-M or *")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise _err(path, line, f"bad cpu range {part.strip()!r}")
        cpus.update(range(a, b + 1))
    return frozenset(cpus)


def _operand(kind: str, tok: str, path, line):
    if kind in "pcu":
        if not tok.isdigit():
            what = {"p": "page", "c": "cpu", "u": "microseconds"}[kind]
            raise _err(path, line, f"{what} must be a non-negative integer, got {tok!r}")
        return int(tok)
    if kind == "t":
        if tok in ("home", "next") or tok.isdigit():
            return int(tok) if tok.isdigit() else tok
        raise _err(path, line, f"table must be home, next or a process number, got {tok!r}")
    if tok != "w":
        raise _err(path, line, f"expected 'w' (a write) or nothing, got {tok!r}")
    return True


def _parse_op(text: str, cpus, path, line) -> Op:
    toks = text.split()
    kind, rest = toks[0], toks[1:]
    if kind not in OPS:
        raise _err(path, line, f"unknown operation {kind!r}; expected one of: {', '.join(OPS)}")
    spec = OPS[kind]
    required = spec.rstrip("w")
    if not len(required) <= len(rest) <= len(spec):
        raise _err(path, line, f"{kind} takes {len(required)}"
                   + (f" or {len(spec)}" if len(spec) != len(required) else "")
                   + f" operand(s), got {len(rest)}")
    args = tuple(_operand(k, t, path, line) for k, t in zip(spec, rest))
    if kind == "touch":
        args = (args[0], len(args) > 1)
    return Op(kind, args, cpus, line)


def parse(text: str, path: str = "<trace>") -> list[Op]:
    """Parse a whole trace; every op keeps its line number for later errors."""
    ops = []
    section = None
    for n, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        cpus = section
        if body.startswith("cpu"):
            head, sep, body = body.partition(":")
            if not sep:
                raise _err(path, n, f"expected 'cpu SPEC:' before the operation, got {raw.strip()!r}")
            cpus = _cpu_spec(head[3:], path, n)
            body = body.strip()
            if not body:
                section = cpus
                continue
        ops.append(_parse_op(body, cpus, path, n))
    if not ops:
        raise UsageError(f"trace {path}: no operation in the file")
    return ops


def load(path: str | None) -> list[Op]:
    if not path:
        raise UsageError("the trace workload needs a trace file: --trace-file FILE")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"trace {path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"trace {path}: not a text file") from None
    return parse(text, path)


def ops_for(ops: list[Op], cpu: int) -> list[Op]:
    return [op for op in ops if op.cpus is None or cpu in op.cpus]


def check(ops: list[Op], layout, path: str = "<trace>") -> None:
    """Range checks that need the run's guest layout (vCPUs, pages, processes)."""
    n_pages, n_procs, n_vcpus = layout.pages_per_thread, layout.n_procs, layout.n_vcpus
    for op in ops:
        if op.cpus is not None and max(op.cpus) >= n_vcpus:
            raise _err(path, op.line, f"cpu {max(op.cpus)} is not a vCPU of this run (0..{n_vcpus - 1})")
        kinds = OPS[op.kind]
        for k, a in zip(kinds, op.args):
            if k == "p" and a >= n_pages:
                raise _err(path, op.line, f"page {a} is outside a vCPU's range (0..{n_pages - 1} "
                                          f"with these --vcpus and --guest-mem)")
            if k == "c" and a >= n_vcpus:
                raise _err(path, op.line, f"cpu {a} is not a vCPU of this run (0..{n_vcpus - 1})")
            if k == "t" and isinstance(a, int) and a >= n_procs:
                raise _err(path, op.line, f"process {a} does not exist (0..{n_procs - 1})")


def validate_config(cfg, layout) -> None:
    """Everything that can be checked before the vCPUs start."""
    path = getattr(cfg, "trace_file", None)
    check(load(path), layout, path)


def _table(L, me: int, t) -> int:
    home = L.home_table(me)
    if t == "home":
        return home
    if t == "next":
        return 1 + home % L.n_procs
    return 1 + t


def _step(cpu, guest, L, op: Op) -> None:
    k, a = op.kind, op.args
    me = cpu.me
    if k == "touch":
        guest.touch(L.user_range(me)[a[0]], a[1])
    elif k == "read":
        guest.try_read(L.user_range(a[0])[a[1]])
    elif k == "unmap":
        guest.unmap(L.user_range(me)[a[0]])
    elif k == "invlpg":
        cpu.invlpg(L.user_range(me)[a[0]])
    elif k == "pt_write":
        guest.touch(L.pt_slot(L.pt_gfns_of_table(_table(L, me, a[0]))[0]), True)
    elif k == "cr3":
        t = _table(L, me, a[0])
        cpu.write_cr3(t, L.pt_gfns_of_table(t))
    elif k == "halt":
        cpu.steps += 1  # HLT is a guest instruction: it counts toward --iterations
        cpu.halt(a[0] * 1e-6)


def run(cpu, guest, rng, cfg) -> None:
    path = getattr(cfg, "trace_file", None)
    L = guest.L
    ops = load(path)
    check(ops, L, path)
    mine = ops_for(ops, cpu.me)
    if not mine:
        return
    while True:
        for op in mine:
            _step(cpu, guest, L, op)
        if cpu.steps >= cpu.next_check:  # invlpg/cr3/halt-only traces never reach access()
            cpu.periodic(pending=0)
