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
    ("workloads",),
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
