"""Every example a user can copy runs (issue 20): each command's ``--help``
examples and the ``smpemu`` commands of the README's code blocks, as written,
from the repository's root (a fresh clone's working directory), each in a
bounded form so the suite stays short.

The bounding rules (``bounded``) only shorten: they clamp --duration,
--timeout, --iterations, --repeat and sweep's --vcpus (its smallest count), and add them where an
example has none; a scope search (``check --scope``, ``verdicts``) runs at scope 1, and
``verdicts`` for its first policy only; nothing else of the example changes.  Files an example
needs come from an earlier example of the same page, run first in the same
directory (``smpemu check ... --replay-out r.json`` before ``smpemu replay
r.json``); a replay file named by its time stamp (stress writes a new name
every run) stands for the newest one an earlier example wrote.  An example
must exit 0 or 3 (a violation is a finding, not a failure); 1, 2 and 4 fail
the test with the example's output.  An example still running after
LIMIT_S fails with "add a bounding rule".
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import time
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 60


def help_examples() -> list[tuple[str, str]]:
    """(command, example line) of every command's --help epilog, in order."""
    import typer.main

    from smpemu.cli import app

    out = []
    for name, cmd in typer.main.get_command(app).commands.items():
        for line in (cmd.epilog or "").splitlines():
            if line.strip().startswith("smpemu "):
                out.append((name, line.strip()))
    return out


def readme_examples() -> list[str]:
    """The smpemu commands of the README's code blocks (``$ smpemu ...``,
    ``smpemu ...``, ``... && .venv/bin/smpemu ...``); a synopsis block (one
    with ``[--option]`` brackets) is a grammar, not an example."""
    out, block, inb = [], [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            if inb and not any("[--" in b for b in block):
                for b in block:
                    for part in b.split("&&"):
                        part = part.strip().removeprefix("$ ").strip()
                        part = part.removeprefix(".venv/bin/")
                        if part.startswith("smpemu "):
                            out.append(part.split("#")[0].strip())
            inb, block = not inb, []
        elif inb:
            block.append(line)
    return out


def _opt(args: list[str], name: str) -> int | None:
    return args.index(name) if name in args else None


def _clamp(args: list[str], name: str, most: float, add: bool = True) -> None:
    i = _opt(args, name)
    if i is None:
        if add:
            args += [name, f"{most:g}"]
    elif float(args[i + 1]) > most:
        args[i + 1] = f"{most:g}"


def bounded(args: list[str], cwd: Path) -> list[str]:
    """The example's arguments (after ``smpemu``), shortened (module docstring)."""
    a = list(args)
    cmd = a[0] if a else ""
    if cmd == "run":
        if _opt(a, "--iterations") is not None:
            _clamp(a, "--iterations", 2000)
        else:
            _clamp(a, "--duration", 1)
    elif cmd == "stress":
        _clamp(a, "--timeout", 2)
    elif cmd == "sweep":
        _clamp(a, "--repeat", 1)
        if _opt(a, "--iterations") is None:
            _clamp(a, "--duration", 0.2)
        i = _opt(a, "--vcpus")
        small = [min(a[i + 1].split(","), key=int)] if i is not None else ["1"]
        if i is None:
            a += ["--vcpus", ",".join(small)]
        else:
            a[i + 1] = ",".join(small)
    elif cmd == "litmus":
        _clamp(a, "--iterations", 200)
    elif cmd in ("check", "verdicts") and (cmd == "verdicts" or _opt(a, "--scope") is not None):
        # a scope search's time grows steeply with the scope: scope 1 stands for any scope here
        i = _opt(a, "--scope")
        if i is None:
            a += ["--scope", "1"]
        else:
            a[i + 1] = "1"
        if cmd == "verdicts" and _opt(a, "--list-configs") is None:
            i = _opt(a, "--policy")
            if i is None:
                a += ["--policy", "eager"]  # one policy stands for the table
            else:
                a[i + 1] = a[i + 1].split(",")[0]
    elif cmd == "bench":
        if _opt(a, "--only") is None:
            a += ["--only", "ipi"]  # every benchmark is --quick's minute; ipi stands for them here
    elif cmd == "replay" and len(a) > 1 and not (cwd / a[1]).exists() and re.match(r"smpemu-replay-.*\.json$", a[1]):
        written = sorted(glob.glob(str(cwd / "smpemu-replay-*.json")), key=os.path.getmtime)
        assert written, f"{a[1]}: no earlier example wrote a replay file"
        a[1] = written[-1]
    return a


def run_example(line: str, cwd: Path, monkeypatch) -> None:
    """In this process, through click's runner (an interpreter start-up per
    example would double the time): the same app, options and exit codes as
    the ``smpemu`` script; the vCPUs are still forked processes."""
    from typer.testing import CliRunner

    from smpemu import cli as C
    from smpemu.harness import outputs

    args = bounded(shlex.split(line)[1:], cwd)
    outputs.forget()
    monkeypatch.chdir(cwd)
    t0 = time.monotonic()
    r = CliRunner().invoke(C.app, args)
    took = time.monotonic() - t0
    what = f"{line!r} (bounded: smpemu {shlex.join(args)})"
    assert r.exit_code in (0, 3), (f"{what} exited {r.exit_code}", r.stdout[-2000:], r.stderr[-2000:],
                                   "".join(traceback.format_exception(r.exception)) if r.exception
                                   and not isinstance(r.exception, SystemExit) else "")
    assert took < LIMIT_S, f"{what} ran {took:.0f} s, over {LIMIT_S} s: add a bounding rule to tests/test_examples.py"


def _workdir(tmp_path_factory, name: str) -> Path:
    """A clone's working directory: the repository's example inputs where the
    examples name them (tests/litmus, workloads/examples)."""
    d = tmp_path_factory.mktemp(name)
    shutil.copytree(ROOT / "tests" / "litmus", d / "tests" / "litmus")
    shutil.copytree(ROOT / "workloads" / "examples", d / "workloads" / "examples")
    (d / "docs").mkdir()  # where examples write their tables (verdicts --markdown docs/verdicts.md)
    return d


@pytest.fixture(scope="module")
def help_dir(tmp_path_factory):
    return _workdir(tmp_path_factory, "help")


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory):
    return _workdir(tmp_path_factory, "readme")


HELP = help_examples()
README = readme_examples()


def test_every_command_has_examples():
    import typer.main

    from smpemu.cli import app

    names = {n for n, _ in HELP}
    assert set(typer.main.get_command(app).commands) <= names


@pytest.mark.timeout(LIMIT_S + 30)
@pytest.mark.parametrize("line", [line for _, line in HELP], ids=[line for _, line in HELP])
def test_help_example_runs(line, help_dir, monkeypatch):
    run_example(line, help_dir, monkeypatch)


@pytest.mark.timeout(LIMIT_S + 30)
@pytest.mark.parametrize("line", README, ids=README)
def test_readme_example_runs(line, readme_dir, monkeypatch):
    run_example(line, readme_dir, monkeypatch)


def test_shipped_example_files_are_the_documented_ones():
    """The trace example of workloads/trace.py's header, and the README's
    overlap.json, are the files shipped in workloads/examples/."""
    import json

    import workloads.trace as T

    doc = T.__doc__
    block = doc[doc.index("Example, for 2 vCPUs"):]
    block = block[block.index("::\n\n") + 4:].split("\n\n")[0]
    shipped = (ROOT / "workloads" / "examples" / "ops.trace").read_text()
    assert [ln.strip() for ln in block.splitlines()] == shipped.strip().splitlines()
    text = (ROOT / "README.md").read_text()
    i = text.index("`workloads/examples/overlap.json` is this script")
    j = text.index("```json", i)
    readme_json = json.loads(text[j + 7:text.index("```", j + 7)])
    assert readme_json == json.loads((ROOT / "workloads" / "examples" / "overlap.json").read_text())
