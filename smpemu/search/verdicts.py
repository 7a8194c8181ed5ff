"""``smpemu verdicts``: the policy table, computed by the scope search.

Why it exists: the README, docs/ and ``smpemu list`` used to say in prose
which policy survives what, each claim resting on one hand-written
scenario; three such claims were wrong (issue 18).  This command runs
``smpemu check --scope N`` (search/scope.py: every scenario of up to N
operations, each explored to <= K preemptions) for every policy under every
setting where that policy's verdict can change, and prints the table: per
configuration, the minimal breaking scenario (kind, operations,
preemptions) or "clean for every scenario up to N operations at bound K".
The prose then points here instead of making claims of its own.

Which configurations (``configurations()``; written out in every table):

- ``--notifier 2009|2012`` and ``--requests modern|2009`` for every policy:
  every policy's flushes go through the mmu notifier and
  ``ipi.flush_all_cpus`` (base.Policy), which those two options change.
- Memory models from the policy's own code (``own_memory_ops()`` reads the
  AST of every method the policy class resolves to): ``native`` always;
  ``tso`` and ``relaxed`` when the policy itself does an access whose order
  those models change (MODEL_OPS: a plain ``store``, which a store buffer
  delays past later loads (tso) and later stores (relaxed); ``mb``, which
  drains it; ``wmb``/``store_release``, which order stores under relaxed;
  tso is kept beside relaxed so that a wmb-only difference shows as
  "relaxed breaks, tso clean"; ``cmpxchg``/``xchg``, locked ops that drain
  it as mb does).  Loads and acquire loads order nothing differently
  between the models (smpemu never reorders a load:
  docs/memory-models.md), and a policy with no memory access of its own
  relies only on the shared code's barriers, which are the same for every
  policy: it is checked under native alone, and the table says so.
- ``--max-flushers``: unlimited for every configuration, and 1 (the seed's
  own setting) where unlimited breaks: the filter only removes scenarios,
  so it cannot turn a clean row into a broken one, and it matters only to
  tell "breaks only when flushes overlap" from "breaks with one flusher".

Exit codes: 0 every row complete (violations are findings: they are the
table), 4 a row INCOMPLETE (its timeout, or lost work: the row says so), 2 a
usage error, 130/143 interrupted.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import shlex
import textwrap
import time
from typing import Optional

from smpemu.errors import EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, UsageError
from smpemu.kvm import policies
from smpemu.kvm.policies.base import Policy

NOTIFIERS = ("2009", "2012")
REQUESTS = ("modern", "2009")
MODELS_ORDER = ("native", "tso", "relaxed")
# the memory-model calls of a policy's own code, and the models whose behaviour each one changes
MODEL_OPS = {
    "store": ("tso", "relaxed"),  # buffered: delayed past later loads (tso), past later stores (relaxed)
    "mb": ("tso", "relaxed"),  # drains the buffer: does something only where there is one
    "wmb": ("tso", "relaxed"),  # orders stores under relaxed; tso beside it shows the barrier's effect
    "store_release": ("tso", "relaxed"),
    "cmpxchg": ("tso", "relaxed"),  # a locked op: drains the buffer first, as mb
    "xchg": ("tso", "relaxed"),
}
SEED_MAX_FLUSHERS = 1  # the seed's own setting: one flusher outside mmu_lock
TIMES_BEGIN, TIMES_END = "<!-- times: not compared -->", "<!-- /times -->"
TABLE_BEGIN, TABLE_END = "<!-- table -->", "<!-- /table -->"  # the part the README shows


# -- which configurations ------------------------------------------------------------------------------------

def own_memory_ops(cls) -> set:
    """The memory-model calls (``mm.X(...)`` / ``ctx.mm.X(...)``) in the code of
    every method ``cls`` resolves to, from the policy modules (base.Policy included),
    and of the methods those reach through ``super().X(...)``."""
    ops, seen = set(), set()
    todo = [(name, cls.__mro__) for name in dir(cls)]
    while todo:
        name, mro = todo.pop()
        i = next((i for i, k in enumerate(mro) if name in k.__dict__), None)
        if i is None:
            continue
        owner, fn = mro[i], mro[i].__dict__[name]
        if not inspect.isfunction(fn) or not issubclass(owner, Policy) or fn in seen:
            continue
        seen.add(fn)
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            recv = node.func.value
            if (isinstance(recv, ast.Name) and recv.id == "mm") or (
                    isinstance(recv, ast.Attribute) and recv.attr == "mm"):
                ops.add(node.func.attr)
            elif isinstance(recv, ast.Call) and isinstance(recv.func, ast.Name) and recv.func.id == "super":
                todo.append((node.func.attr, mro[i + 1:]))  # the parent's code runs too
    return ops


def memory_models(cls) -> tuple:
    """native, and the models where the policy's own accesses can behave differently (MODEL_OPS)."""
    extra = {m for op in own_memory_ops(cls) for m in MODEL_OPS.get(op, ())}
    return tuple(m for m in MODELS_ORDER if m == "native" or m in extra)


@dataclasses.dataclass(frozen=True)
class Config:
    policy: str
    memory_model: str
    notifier: str
    requests: str

    def label(self) -> str:
        return f"--memory-model {self.memory_model} --notifier {self.notifier} --requests {self.requests}"


def configurations(names) -> list:
    """Every (policy, memory model, notifier, requests) the table explores, max-flushers unlimited."""
    out = []
    for p in names:
        for m in memory_models(policies.POLICIES[p]):
            for n in NOTIFIERS:
                for r in REQUESTS:
                    out.append(Config(p, m, n, r))
    return out


def parse_policies(text) -> list:
    if not text:
        return list(policies.POLICIES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        policies.get(n)  # a usage error for an unknown name
    if not names:
        raise UsageError("--policy: give at least one policy name")
    return list(dict.fromkeys(names))


def parse_scope(text, default_scope: int) -> int:
    if text in (None, "default"):
        return default_scope
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"--scope must be a number of operations or 'default' (got {text!r})") from None
    if n < 1:
        raise UsageError(f"--scope must be at least 1 (got {n})")
    return n


# -- running -------------------------------------------------------------------------------------------------

def row_of(cfg: Config, max_flushers, res) -> dict:
    """One table row from a scope.ScopeResult."""
    from smpemu.search.scope_cmd import shown_preemptions

    v = res.violation
    return {
        "policy": cfg.policy, "memory_model": cfg.memory_model, "notifier": cfg.notifier,
        "requests": cfg.requests, "max_flushers": max_flushers,
        "complete": bool(res.complete), "incomplete_reason": res.incomplete_reason,
        "scenarios": res.scenarios, "total": res.total, "schedules": res.schedules,
        "elapsed_s": round(res.elapsed, 1),
        "explored_ops": getattr(res, "explored_ops", None),
        "violation": None if v is None else {
            "kind": v.kind, "ops": v.ops, "preemptions": shown_preemptions(v), "drains": v.drains,
            "steps": v.steps, "scenario": v.scenario,
            "described": getattr(v, "described", "")},
    }


def _rkey(r) -> tuple:
    return r["policy"], r["memory_model"], r["notifier"], r["requests"], r["max_flushers"]


def run_order(configs) -> list:
    """The order the configurations run in: native first (the cheapest, and what every policy has),
    then tso, then relaxed; a resumed table (``--resume``) fills in the most telling cells first.
    The table's own order (``render_markdown``) is the configurations' order, whatever ran first."""
    return sorted(configs, key=lambda c: MODELS_ORDER.index(c.memory_model))


def run_table(names, scope: int, bound: int, jobs: int = 1, timeout=None, scheduler=None,
              on_row=None, progress=None, search=None, on_replay=None, done_rows=()) -> dict:
    """Run every configuration (and max-flushers 1 where unlimited breaks); the table's document.
    ``search`` is scope.search_scope unless given; ``on_row(row, doc, done, total)`` after each row,
    ``doc`` the table so far (a long run leaves a partial table that says so); ``progress`` is handed
    to each search; ``on_replay(row, replay_doc)`` keeps a violation's replay file, returns its path.
    ``done_rows``: complete rows of an earlier run of the same table (``--resume``: same command, same
    code, checked by the caller), kept as they are instead of running their configuration again."""
    if search is None:
        from smpemu.search.scope import search_scope as search

    configs = configurations(names)
    kept = {_rkey(r): r for r in done_rows if r.get("complete")}
    rows, t0 = [], time.monotonic()
    todo = [(c, None) for c in run_order(configs)]
    i = 0
    interrupted = None  # "SIGINT"/"SIGTERM": a search was stopped, and the table stops there
    fingerprint = code_fingerprint()  # of the code that runs now: files edited during the run do not count

    def doc():
        finished = i == len(todo) and interrupted is None
        return {
            "interrupted": interrupted,
            "scope": scope, "bound": bound, "jobs": jobs, "timeout_s": timeout, "policies": list(names),
            "configurations": [dataclasses.asdict(c) for c in configs], "rule": RULE_TEXT, "rows": list(rows),
            "finished": finished, "complete": finished and all(r["complete"] for r in rows),
            "elapsed_s": round(time.monotonic() - t0 + sum(r["elapsed_s"] for r in rows if r.get("resumed")), 1),
            "fingerprint": fingerprint,
        }

    while i < len(todo):
        try:
            row = _run_row(todo, i, kept, search, progress, on_replay, scope, bound, jobs, timeout, scheduler)
            rows.append(row)
            if row.pop("_interrupted", None):  # Ctrl-C or SIGTERM stopped this search: stop the table
                interrupted = row["interrupted"]
                break
            i += 1
            if on_row:
                on_row(row, doc(), i, len(todo))
        except (KeyboardInterrupt, SystemExit) as e:  # between two searches (a search catches its own)
            interrupted = "SIGINT" if isinstance(e, KeyboardInterrupt) else "SIGTERM"
            break
    return doc()


def _run_row(todo, i, kept, search, progress, on_replay, scope, bound, jobs, timeout, scheduler) -> dict:
    """Configuration ``todo[i]``'s row: kept from an earlier run, or searched; where unlimited breaks, its
    one-flusher configuration is queued right after it."""
    from smpemu.search.scope import ScopeSettings

    cfg, mf = todo[i]
    row = kept.get((cfg.policy, cfg.memory_model, cfg.notifier, cfg.requests, mf))
    if row is not None:
        row = dict(row, resumed=True)
    else:
        st = ScopeSettings(policy=cfg.policy, scope=scope, bound=bound, max_flushers=mf,
                           memory_model=cfg.memory_model, requests=cfg.requests, notifier=cfg.notifier,
                           jobs=jobs, timeout=timeout, scheduler=scheduler)
        res = search(st, progress=progress) if progress else search(st)
        row = row_of(cfg, mf, res)
        if getattr(res, "interrupted", None):
            row["interrupted"] = res.interrupted
            row["_interrupted"] = True
            return row
        if on_replay is not None and res.violation is not None and res.violation.replay_doc:
            row["replay_file"] = on_replay(row, res.violation.replay_doc)
    if mf is None and row["violation"] is not None:
        # where the seed's one-flusher setting can change the verdict: right after its unlimited row
        todo.insert(i + 1, (cfg, SEED_MAX_FLUSHERS))
    return row


# what a verdict does not depend on: the commands' option parsing, printing and rendering, the
# confirmation of a finished table (confirm.py), and the packages the scope search never imports;
# every other source file is in the fingerprint
_NOT_VERDICT_CODE = {"smpemu/cli.py", "smpemu/search/check_cmd.py", "smpemu/search/scope_cmd.py",
                     "smpemu/search/replay_cmd.py", "smpemu/search/stress_cmd.py", "smpemu/search/verdicts.py",
                     "smpemu/harness/clihelp.py", "smpemu/harness/outputs.py", "smpemu/harness/report.py",
                     "smpemu/harness/explain.py", "smpemu/harness/status.py", "smpemu/harness/guest_report.py",
                     "smpemu/search/confirm.py"}
_NOT_VERDICT_DIRS = ("smpemu/study/", "smpemu/litmus/")


def code_fingerprint() -> str:
    """A hash of the code a verdict depends on (smpemu/ and workloads/, without ``_NOT_VERDICT_CODE``):
    ``--resume`` keeps an earlier run's rows only when it is the same, so a table is never a mix of
    what two versions of the protocol, the explorer or the enumeration computed.  Of each file's
    syntax tree without docstrings (``code_of``): comments, docstrings and layout do not count, as
    they cannot change what runs, so a table made over several sittings survives an edit of prose."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for top in ("smpemu", "workloads"):
        for f in sorted((root / top).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel in _NOT_VERDICT_CODE or rel.startswith(_NOT_VERDICT_DIRS):
                continue
            h.update(rel.encode() + b"\0" + code_of(f.read_text()).encode() + b"\0")
    return h.hexdigest()[:16]


def code_of(source: str) -> str:
    """What of ``source`` can run: its syntax tree (no comments, no positions) without docstrings."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:]  # the docstring (a later string statement is code: it stays)
    return ast.dump(tree)


def resumable_rows(path: str, scope: int, bound: int, names, timeout) -> list:
    """The complete rows of ``path`` (an earlier --json of this very table), for ``--resume``; [] if the
    file does not exist yet.  A file of another table or of other code is a usage error, not ignored."""
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            doc = json.load(f)
        saved = (doc["scope"], doc["bound"], doc["policies"], [Config(**c) for c in doc["configurations"]])
        rows = list(doc["rows"])
        fp = doc.get("fingerprint")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--resume: {path} is not a saved smpemu verdicts table ({e})") from None
    if saved != (scope, bound, list(names), configurations(names)):
        raise UsageError(f"--resume: {path} is another table (scope {saved[0]}, bound {saved[1]}, "
                         f"{len(saved[3])} configurations); resume it with its own command, or run without --resume")
    if doc.get("timeout_s") != timeout:
        raise UsageError(f"--resume: {path} was made with --timeout {doc.get('timeout_s')}; give the same")
    if fp != code_fingerprint():
        raise UsageError(f"--resume: {path} was computed by other code (fingerprint {fp}, now "
                         f"{code_fingerprint()}): its rows would mix two versions; run without --resume")
    return [r for r in rows if r.get("complete")]


def exit_code(doc) -> int:
    if doc.get("interrupted"):
        return {"SIGINT": 130, "SIGTERM": 143}[doc["interrupted"]]
    return EXIT_OK if doc["complete"] else EXIT_ABORTED


# -- rendering -----------------------------------------------------------------------------------------------

RULE_TEXT = ("every policy under --notifier 2009 and 2012 and --requests modern and 2009; memory model native, "
             "and tso and relaxed for a policy whose own code has a plain store, wmb, mb, store_release, cmpxchg "
             "or xchg (smpemu/search/verdicts.py: MODEL_OPS); --max-flushers unlimited, and 1 (the seed's "
             "setting) where unlimited breaks")


def cell(row) -> str:
    v = row["violation"]
    if v is not None:
        text = f"{v['kind']}: {v['ops']} ops, {v['preemptions']} preemptions"
        if v.get("drains"):  # a store-buffer drain out of order: the explorer's bound counts it too
            text += f", {v['drains']} drain{'s' if v['drains'] != 1 else ''}"
        return text if row["complete"] else text + " (INCOMPLETE: the minimal among those explored)"
    if row["complete"]:
        return "clean"
    upto = row.get("explored_ops")
    return f"INCOMPLETE ({row['scenarios']:,} of {row['total']:,} scenarios" + (
        f", every one of up to {upto} ops done" if upto else "") + (
        f"; {row['incomplete_reason']}" if row["incomplete_reason"] else "") + ")"


def _key(r):
    return r["policy"], r["memory_model"], r["notifier"], r["requests"]


def render_markdown(doc, command: str) -> str:
    order = {(c["policy"], c["memory_model"], c["notifier"], c["requests"]): i
             for i, c in enumerate(doc["configurations"])}
    # the configurations' order, however the run was ordered (run_order) or resumed
    rows = sorted(doc["rows"], key=lambda r: (order.get(_key(r), len(order)), r["max_flushers"] is not None))
    scope, bound = doc["scope"], doc["bound"]
    unl = {_key(r): r for r in rows if r["max_flushers"] is None}
    one = {_key(r): r for r in rows if r["max_flushers"] == SEED_MAX_FLUSHERS}
    cols = [(n, q) for n in NOTIFIERS for q in REQUESTS]
    out = [f"# Policy verdicts: scope {scope}, bound {bound}", "",
           "Generated by `smpemu verdicts` (smpemu/search/verdicts.py); do not edit by hand.", "",
           TABLE_BEGIN, f"Made by `{command}` (scope {scope})."
           + ("" if doc.get("finished", True) else
              f"  PARTIAL: {len(rows)} rows so far; a configuration not run yet says `not run`."), "",
           f"Scope {scope} (every scenario of up to {scope} operations), bound {bound} (each explored to <= "
           f"{bound} preemptions).  A cell is the minimal breaking scenario with --max-flushers unlimited (kind: "
           f"operations, preemptions), and after `/ 1 flusher:` the same with --max-flushers 1, or `clean`: "
           f"clean for every scenario up to {scope} operations at bound {bound} under that filter (and the "
           f"scope search's own reductions, docs/check.md).  notifier/requests: `--notifier`/`--requests`.  "
           f"A setting not in the table was not explored: the table says nothing about it.", "",
           f"Configurations: {doc['rule']}.", "",
           "| policy | memory model | " + " | ".join(f"notifier {n}, requests {q}" for n, q in cols) + " |",
           "|---|---|" + "---|" * len(cols)]
    seen_models = {}
    for c in doc["configurations"]:
        seen_models.setdefault(c["policy"], [])
        if c["memory_model"] not in seen_models[c["policy"]]:
            seen_models[c["policy"]].append(c["memory_model"])
    for p, models in seen_models.items():
        for m in models:
            cells = []
            for n, q in cols:
                r = unl.get((p, m, n, q))
                if r is None:
                    cells.append("not run")
                    continue
                text = cell(r)
                if (p, m, n, q) in one:
                    text += " / 1 flusher: " + cell(one[p, m, n, q])
                cells.append(text)
            out.append(f"| `{p}` | {m} | " + " | ".join(cells) + " |")
        if models == ["native"]:
            out.append(f"| `{p}` | tso, relaxed | not explored: no memory access of its own (the rule above) |"
                       + " |" * (len(cols) - 1))
    out.append(TABLE_END)
    out += ["", "Minimal scenarios (the actors' programs; `smpemu check --scope` prints each in the script "
            "format with its counterexample, `--json` has the script), each with the configurations where "
            "it is the minimal one:", ""]
    groups = {}
    for r in rows:
        v = r["violation"]
        if v is not None:
            key = (cell(r), v["steps"], v.get("described") or
                   json.dumps(v["scenario"], sort_keys=True, separators=(",", ":")))
            mf = "unlimited" if r["max_flushers"] is None else r["max_flushers"]
            groups.setdefault(key, []).append(f"`{r['policy']}` {r['memory_model']} {r['notifier']}/"
                                              f"{r['requests']} max-flushers {mf}")
    for (text, steps, sc), where in groups.items():
        out.append(f"- {text}, {steps} steps: `{sc}`; in: {'; '.join(where)}")
    if not groups:
        out.append("- none")
    out += ["", "Each configuration's search: scenarios explored of those in the scope (after the reductions and "
            "the --max-flushers filter), and schedules explored (the same for any --jobs):", "",
            "| policy | memory model | notifier | requests | max-flushers | scenarios | schedules |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(_row_head(r) + f"{r['scenarios']:,} of {r['total']:,} | {r['schedules']:,} |")
    resumed = sum(1 for r in rows if r.get("resumed"))
    out += ["", TIMES_BEGIN, "", f"Time: {doc['elapsed_s']:,.1f} s in all, --jobs {doc['jobs']} (wall clock, "
            f"a loaded 2-core machine: noisy)"
            + (f"; {resumed} rows were computed by earlier runs of the same command and code (--resume), "
               f"their times are theirs" if resumed else "") + ".", "",
            "| policy | memory model | notifier | requests | max-flushers | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(_row_head(r) + f"{r['elapsed_s']:,.1f} |")
    out += ["", TIMES_END, ""]
    return "\n".join(out)


def _row_head(r) -> str:
    mf = "unlimited" if r["max_flushers"] is None else r["max_flushers"]
    return f"| `{r['policy']}` | {r['memory_model']} | {r['notifier']} | {r['requests']} | {mf} | "


def verdict_content(markdown: str) -> str:
    """A rendered table without its times (what a regenerated table must reproduce)."""
    keep, skipping = [], False
    for line in markdown.splitlines():
        if line.strip() == TIMES_BEGIN:
            skipping = True
        elif line.strip() == TIMES_END:
            skipping = False
        elif not skipping:
            keep.append(line.rstrip())
    return "\n".join(keep).strip() + "\n"


def table_block(markdown: str) -> str:
    """The part of a rendered table the README shows: the command, the rule, the table."""
    i, j = markdown.index(TABLE_BEGIN), markdown.index(TABLE_END)
    return markdown[i + len(TABLE_BEGIN):j].strip() + "\n"


def command_line(scope_arg, bound, names, timeout) -> str:
    parts = ["smpemu", "verdicts", "--scope", str(scope_arg), "--bound", str(bound)]
    if names != list(policies.POLICIES):
        parts += ["--policy", ",".join(names)]
    if timeout is not None:
        parts += ["--timeout", f"{timeout:g}"]
    return shlex.join(parts)


def rerender(path: str) -> dict:
    """A saved --json table, for rendering again: its configurations must be what the rule gives now."""
    try:
        with open(path) as f:
            doc = json.load(f)
        names = doc["policies"]
        saved = [Config(**c) for c in doc["configurations"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--render {path}: not a saved smpemu verdicts table ({e})") from None
    if saved != configurations(names):
        raise UsageError(f"--render {path}: its configurations are not those the rule gives now; run the table again")
    doc["rule"] = RULE_TEXT
    return doc


def _write(doc, command, markdown, json_out) -> str:
    doc["command"] = command
    md = render_markdown(doc, command)
    # written whole or not at all (a temporary file renamed over it): a run killed while it writes
    # leaves the previous table, which --resume reads
    if markdown:
        _replace(markdown, md)
    if json_out:
        _replace(json_out, json.dumps(doc, indent=1))
    return md


def _replace(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- the command ---------------------------------------------------------------------------------------------

def register(app, out, err, guard) -> None:
    import typer

    @app.command("verdicts", epilog="Examples:\n\n# the table of docs/verdicts.md (scope 2; at the default scope, 3, "
                 "each configuration takes minutes: docs/check.md)\nsmpemu verdicts --scope 2 --jobs 2 --markdown "
                 "docs/verdicts.md\n\n# two policies, a small scope, as JSON\n"
                 "smpemu verdicts --scope 1 --policy eager,mmu-lock --json v.json\n\n# the default-scope table over "
                 "several sittings: the same command again continues it (the rows done are kept)\n"
                 "smpemu verdicts --scope default --jobs 2 --json docs/verdicts-default.json --markdown "
                 "docs/verdicts-default.md --resume\n\n# every minimal breaking scenario of a saved table, "
                 "re-derived and replayed on real processes\nsmpemu verdicts --confirm docs/verdicts-default.json"
                 "\n\n# only the list of "
                 "configurations\nsmpemu verdicts --list-configs")
    @guard
    def verdicts(
        scope: str = typer.Option("default", help="Largest number of operations of a scenario, or 'default' "
                                  "(smpemu check's default scope)."),
        bound: int = typer.Option(1, help="Explore each scenario to this many preemptions."),
        policy: Optional[str] = typer.Option(None, "--policy", help="Comma-separated subset of the policies "
                                             "(default: all, smpemu list)."),
        jobs: int = typer.Option(1, "--jobs", "-j", help="Processes sharing each search (the result is the same)."),
        scheduler: Optional[str] = typer.Option(None, help="A dask scheduler ADDRESS to spread each search on."),
        timeout: Optional[float] = typer.Option(None, help="Seconds per configuration before it is INCOMPLETE "
                                                "(exit 4)."),
        markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the table here (markdown)."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write every row here."),
        replay_dir: Optional[str] = typer.Option(None, "--replay-dir", help="Write each minimal scenario's "
                                                 "replay file into this directory (smpemu replay runs it)."),
        list_configs: bool = typer.Option(False, "--list-configs", help="Print the configurations and exit."),
        render: Optional[str] = typer.Option(None, "--render", help="Only render the table of a saved --json "
                                             "file again (with --markdown), running nothing."),
        confirm: Optional[str] = typer.Option(None, "--confirm", help="Run no search: take a saved --json "
                                              "table and, for each row with a violation, re-derive its minimal "
                                              "scenario (check --scenario) and replay it on real processes "
                                              "(smpemu replay); exit 0 when every one reproduces, 4 if one does "
                                              "not.  With --json F, the results go to F; --policy keeps some."),
        resume: bool = typer.Option(False, "--resume", help="Keep the complete rows of the --json file (an "
                                    "earlier run of this very command, interrupted or partial, by the same "
                                    "code) and run only the others."),
    ):
        """The policy table, computed: every policy under every setting where its verdict can change,
        each a scope search (smpemu check --scope); docs/verdicts-default.md (the default scope, 3) and
        docs/verdicts.md (scope 2)."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from smpemu.harness.config import check_writable
        from smpemu.harness.status import Status

        names = parse_policies(policy)
        if list_configs:
            for c in configurations(names):
                out.print(f"{c.policy}: {c.label()}", markup=False, highlight=False)
            out.print(f"rule: {RULE_TEXT}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_OK)
        if confirm:
            if render or resume or markdown or replay_dir:
                raise UsageError("--confirm runs no search: it takes only --policy and --json")
            raise typer.Exit(_confirm(out, err, confirm, names if policy else None, json_out))
        if render:
            doc = rerender(render)
            md = _write(doc, doc.get("command", "smpemu verdicts"), markdown, None)
            out.print(verdict_content(md), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(doc))
        from smpemu.search.scope import DEFAULT_SCOPE

        n = parse_scope(scope, DEFAULT_SCOPE)
        if not 0 <= bound <= 20:
            raise UsageError(f"--bound must be between 0 and 20 (got {bound})")
        if not 1 <= jobs <= 256:
            raise UsageError(f"--jobs must be between 1 and 256 (got {jobs})")
        if timeout is not None and not timeout > 0:
            raise UsageError(f"--timeout must be > 0 seconds (got {timeout})")
        for path, opt in ((markdown, "--markdown"), (json_out, "--json")):
            if path:
                check_writable(path, opt)
        if replay_dir and not os.path.isdir(replay_dir):
            raise UsageError(f"--replay-dir {replay_dir}: not a directory")
        if resume and not json_out:
            raise UsageError("--resume continues the table of the --json file: give --json FILE")
        done_rows = resumable_rows(json_out, n, bound, names, timeout) if resume else []

        def on_replay(row, replay_doc):
            from smpemu.search.replay_file import write_doc

            mf = "" if row["max_flushers"] is None else f"-mf{row['max_flushers']}"
            path = os.path.join(replay_dir, f"verdict-{row['policy']}-{row['memory_model']}-n{row['notifier']}-"
                                            f"r{row['requests']}{mf}.json")
            write_doc(replay_doc, path)
            return path

        configs = configurations(names)
        command = command_line(scope, bound, names, timeout)
        out.print(f"verdicts: {len(names)} policies, {len(configs)} configurations (+ max-flushers 1 where one "
                  f"breaks), scope {n}, bound {bound}, --jobs {jobs}"
                  + (f"; {len(done_rows)} complete rows kept from {json_out} (--resume)" if resume else ""),
                  markup=False)
        status = Status("verdicts", enabled=not err.is_terminal)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                      "{task.total} configurations"), TextColumn("{task.fields[inner]}"), TimeElapsedColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as prog:
            task = prog.add_task("verdicts", total=len(configs), inner="")

            def on_row(row, so_far, done, total):
                prog.update(task, completed=done, total=total, inner="")
                if not so_far["finished"]:
                    _write(so_far, command, markdown, json_out)  # a long run leaves a partial table
                mf = "" if row["max_flushers"] is None else f", max-flushers {row['max_flushers']}"
                if row.get("resumed"):
                    mf += " (kept: --resume)"
                out.print(f"  {row['policy']} {row['memory_model']} notifier {row['notifier']} requests "
                          f"{row['requests']}{mf}: {cell(row)} ({row['scenarios']:,} scenarios, "
                          f"{row['schedules']:,} schedules, {row['elapsed_s']:,.1f} s)", markup=False,
                          highlight=False)

            def progress(*a, **kw):
                nums = [x for x in a if isinstance(x, int)]
                text = f"{nums[0]:,}/{nums[1]:,} scenarios" if len(nums) >= 2 else ""
                prog.update(task, inner=text)
                status(lambda: f"{prog.tasks[0].completed}/{prog.tasks[0].total} configurations; {text}")

            doc = run_table(names, n, bound, jobs=jobs, timeout=timeout, scheduler=scheduler, on_row=on_row,
                            progress=progress, on_replay=on_replay if replay_dir else None, done_rows=done_rows)
        md = _write(doc, command, markdown, json_out)
        out.print(verdict_content(md), markup=False, highlight=False, soft_wrap=True)
        if doc.get("interrupted"):
            where = f" (--resume with --json {json_out} continues it)" if json_out else ""
            err.print(f"smpemu verdicts: INCOMPLETE: interrupted ({doc['interrupted']}) after {len(doc['rows'])} "
                      f"rows; the table so far is written{where}", markup=False)
        elif not doc["complete"]:
            err.print("smpemu verdicts: INCOMPLETE: a row did not finish (the table says which)", markup=False)
        raise typer.Exit(exit_code(doc))


def _confirm(out, err, path: str, names, json_out) -> int:
    """``--confirm``: every violation row of the table at ``path``, re-derived and replayed (search/confirm.py)."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from smpemu.errors import read_json_object
    from smpemu.harness.config import check_writable
    from smpemu.harness.report import write_json
    from smpemu.harness.status import Status
    from smpemu.search.confirm import confirm_row, violation_rows

    if json_out:
        check_writable(json_out, "--json")
    doc = read_json_object(path, "verdicts table")
    if not isinstance(doc.get("rows"), list) or not isinstance(doc.get("bound"), int):
        raise UsageError(f"--confirm {path}: not a saved smpemu verdicts table (smpemu verdicts --json)")
    try:
        rows = violation_rows(doc, names)
        bad = [r for r in rows if not isinstance(r["violation"].get("scenario"), dict)]
    except (KeyError, TypeError, AttributeError) as e:
        bad, rows = [e], []
    if bad:
        raise UsageError(f"--confirm {path}: a row without its minimal scenario ({bad[0]!r:.80})")
    fp = code_fingerprint()
    out.print(f"confirm {path}: {len(rows)} rows with a minimal breaking scenario (of {len(doc['rows'])}), "
              f"bound {doc['bound']}", markup=False)
    if doc.get("fingerprint") != fp:
        out.print(f"note: the table was computed by other code (fingerprint {doc.get('fingerprint')}, now {fp}); "
                  "a row the code no longer finds is reported, not hidden", markup=False)
    results, stopped = [], None
    status = Status("confirm", enabled=not err.is_terminal)
    t0 = time.monotonic()
    with Progress(TextColumn("[bold]confirm"), BarColumn(), TextColumn("{task.completed}/{task.total} rows"),
                  TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as prog:
        task = prog.add_task("confirm", total=len(rows))
        for i, row in enumerate(rows):
            status(lambda: f"{i}/{len(rows)} rows")
            res = confirm_row(row, doc["bound"])
            if res["interrupted"]:
                stopped = res["interrupted"]
                break
            results.append(res)
            prog.update(task, completed=i + 1)
            said = ("re-derived; reproduced on real processes" if res["reproduced"] else
                    f"[red]NOT CONFIRMED[/red]: {escape(res['why'])}")
            out.print(f"  {res['row']}: {res['kind']}: {said}", highlight=False)
    ok = sum(1 for r in results if r["reproduced"])
    summary = {"table": path, "table_fingerprint": doc.get("fingerprint"), "fingerprint": fp,
               "bound": doc["bound"], "rows": results, "confirmed": ok, "total": len(rows),
               "interrupted": stopped, "elapsed_s": round(time.monotonic() - t0, 1)}
    if json_out:
        write_json(summary, json_out)
    if stopped:
        err.print(f"smpemu verdicts: INCOMPLETE: interrupted ({stopped}) after {len(results)} of {len(rows)} rows",
                  markup=False)
        return {"SIGINT": EXIT_SIGINT, "SIGTERM": EXIT_SIGTERM}[stopped]
    out.print(f"confirmed {ok} of {len(rows)} minimal breaking scenarios: each re-derived by check --scenario and "
              f"reproduced on real processes ({summary['elapsed_s']:,.1f} s)", markup=False)
    return EXIT_OK if ok == len(rows) else EXIT_ABORTED


__all__ = ["configurations", "memory_models", "own_memory_ops", "run_table", "run_order", "code_fingerprint",
           "resumable_rows", "render_markdown",
           "verdict_content", "table_block", "register"]
