"""The layering, enforced: what each package may import, and no import cycles.

Each package's ``__init__.py`` docstring (and the docstrings of the two
top-level modules ``smpemu/errors.py`` and ``smpemu/cli.py``) has one line
``May import: a, b, c.`` (or ``May import: nothing.``).  This walks the AST of
every module of ``smpemu/`` and ``workloads/``, imports inside functions
included, and fails on (a) an import its unit's line does not allow, or a
line that allows a layer above the unit, and (b) any import cycle between
modules.  No module is imported: the check reads source only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# low -> high; a unit may import only units of lower layers (and itself)
LAYERS = (
    ("smpemu.errors",),
    ("smpemu.memory",),
    ("smpemu.kvm",),
    ("workloads", "smpemu.sched"),  # guest code; the scheduler core (neither imports the other)
    ("smpemu.harness",),
    ("smpemu.search", "smpemu.study", "smpemu.litmus"),
    ("smpemu.cli",),
)
LAYER_OF = {u: i for i, units in enumerate(LAYERS) for u in units}
# ``smpemu`` itself (smpemu/__init__.py: the version) sits below every layer
ROOT_PACKAGE = "smpemu"


def modules() -> dict[str, Path]:
    out = {}
    for top in ("smpemu", "workloads"):
        for p in sorted((ROOT / top).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


MODULES = modules()


def unit_of(mod: str) -> str | None:
    for u in LAYER_OF:
        if mod == u or mod.startswith(u + "."):
            return u
    return None


def _resolve(name: str) -> str | None:
    """The module of ours that importing ``name`` executes last (None: not ours)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> list[tuple[str, int]]:
    """(module of ours, line) for every import statement in ``mod``, at any depth."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod if is_pkg else mod.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            # ``from pkg import sub`` imports the submodule sub; ``from m import name``, m
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for n in names:
            r = _resolve(n)
            if r is None:
                continue
            out.append((r, node.lineno))
            # importing a.b.c runs the packages a.b first: those are imported too
            # (except our own enclosing packages, which are already running)
            parts = r.split(".")
            for k in range(1, len(parts)):
                anc = ".".join(parts[:k])
                if anc in MODULES and not (mod == anc or mod.startswith(anc + ".")):
                    out.append((anc, node.lineno))
    return out


def rules() -> dict[str, set[str]]:
    """Each unit's ``May import:`` line, parsed."""
    out = {}
    for u in LAYER_OF:
        path = MODULES[u]
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        lines = [ln.strip() for ln in doc.splitlines() if ln.strip().startswith("May import:")]
        assert len(lines) == 1, f"{path.relative_to(ROOT)}: its docstring needs exactly one 'May import: ...' line"
        body = lines[0][len("May import:"):].strip().rstrip(".")
        allowed = set() if body == "nothing" else {x.strip() for x in body.split(",")}
        unknown = sorted(allowed - set(LAYER_OF))
        assert not unknown, f"{path.relative_to(ROOT)}: 'May import' names {unknown}, not units of {sorted(LAYER_OF)}"
        out[u] = allowed
    return out


def test_every_module_belongs_to_a_layer():
    assert not [m for m in MODULES if m != ROOT_PACKAGE and unit_of(m) is None]


def test_declared_rules_follow_the_layering():
    bad = [f"{u} may import {v} (layer {LAYER_OF[v]} >= its layer {LAYER_OF[u]})"
           for u, allowed in rules().items() for v in sorted(allowed) if LAYER_OF[v] >= LAYER_OF[u]]
    assert not bad, "\n".join(bad)


def test_no_module_imports_what_its_package_forbids():
    allowed = rules()
    bad = []
    for mod in MODULES:
        u = unit_of(mod)
        if u is None:
            continue
        for target, line in imports(mod):
            tu = unit_of(target)
            if target == ROOT_PACKAGE or tu == u or tu in allowed[u]:
                continue
            bad.append(f"{MODULES[mod].relative_to(ROOT)}:{line}: {mod} imports {target}, "
                       f"but {u} may import only {', '.join(sorted(allowed[u])) or 'nothing'}")
    assert not bad, "\n".join(bad)


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:  # a shortest way back to the start, inside the component
        start = min(comp)
        prev, seen, todo, found = {}, {start}, [start], None
        while found is None:
            nxt = []
            for v in todo:
                for w in sorted(graph[v]):
                    if w == start:
                        found = v
                        break
                    if w in comp and w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            todo = nxt
        path, v = [], found
        while v != start:
            path.insert(0, v)
            v = prev[v]
        out.append([start] + path + [start])
    return out


def import_graph() -> dict[str, dict[str, int]]:
    g = {m: {} for m in MODULES}
    for m in MODULES:
        for target, line in imports(m):
            if target != m:
                g[m].setdefault(target, line)
    return g


def test_no_import_cycles():
    g = import_graph()
    found = cycles(g)
    msgs = [" -> ".join(f"{a} (line {g[a][b]})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}" for c in found]
    assert not found, "import cycle(s), function-level imports included:\n" + "\n".join(msgs)


def test_the_checks_can_fail():
    """The walk sees function-level imports and the cycle finder finds cycles."""
    src = ast.parse("def f():\n    from smpemu.cli import app\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "smpemu.cli" for n in ast.walk(src))
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


@pytest.mark.parametrize("unit", sorted(LAYER_OF))
def test_unit_exists(unit):
    assert unit in MODULES


# -- time: the protocol state's clock comes from the context ----------------------------
# Every read of a clock in kvm/, by module: kvm.clock is the one clock of the
# protocol state (ctx.clock: fills, syncs, oracle records); the others are not
# state (an ack latency, a stress delay, the free-running host's pacing).
TIME_ALLOWED = {
    "smpemu.kvm.clock": {"monotonic_ns"},  # WallClock: the clock of real processes
    "smpemu.kvm.ipi": {"perf_counter_ns"},  # ack latency, reported, never compared
    "smpemu.kvm.points": {"sleep", "perf_counter"},  # stress delays at protocol points
    "smpemu.kvm.host": {"monotonic"},  # free-running reclaim pacing (time is decisions under a schedule)
}


def _time_uses(mod: str) -> list[tuple[str, int]]:
    """(what, line) for every use of the time module in ``mod``."""
    tree = ast.parse(MODULES[mod].read_text())
    names = set()  # local names of the time module
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "time"}
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            out += [(f"from time import {a.name}", node.lineno) for a in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            out.append((node.attr, node.lineno))
    return out


def test_kvm_reads_no_clock_but_the_contexts():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line}: time.{what}" for m in MODULES if m.startswith("smpemu.kvm")
           for what, line in _time_uses(m) if what not in TIME_ALLOWED.get(m, set())]
    assert not bad, "kvm/ reads a clock outside ctx.clock (kvm/clock.py):\n" + "\n".join(bad)


def test_no_module_patches_time():
    """Nothing assigns a module's ``time`` (the explorer once swapped kvm's)."""
    bad = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
                args = node.args
                if len(args) > 1 and isinstance(args[1], ast.Constant) and args[1].value == "time":
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: setattr(..., 'time', ...)")
            for t in targets:
                if isinstance(t, ast.Attribute) and t.attr == "time":
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: ... .time = ...")
    assert not bad, "\n".join(bad)


def test_the_time_checks_can_fail(tmp_path):
    src = "import time as t\nfrom time import monotonic_ns\nx = t.monotonic_ns()\n"
    p = tmp_path / "m.py"
    p.write_text(src)
    MODULES["smpemu.kvm._probe"] = p
    try:
        assert [w for w, _ in _time_uses("smpemu.kvm._probe")] == ["from time import monotonic_ns", "monotonic_ns"]
    finally:
        del MODULES["smpemu.kvm._probe"]
