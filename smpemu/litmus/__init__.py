"""Litmus tests (C, Linux-kernel memory model format) on smpemu's memory models.

Why it exists: to show, with real processes, that each ``--memory-model``
allows exactly what it claims (see docs/memory-models.md and docs/litmus.md).

- ``parser``: a litmus file read into a ``tree`` (every primitive of herd7's
  linux-kernel.def, in ``primitives``), through ``lexer`` (the file's parts
  and tokens), ``cparser`` (initial state, threads) and ``conditions``;
- ``program``: each thread lowered to steps, the code both of the following run;
- ``runner``: the sampled verdict on real processes (``result``: its outcome,
  printed litmus7-style);
- ``exhaustive``: the model's exact verdict, every execution, in one process;
- ``command``: ``smpemu litmus``, batches, exit codes, JSON, signals.

It never imports the search, the studies or the CLI.

May import: smpemu.harness, workloads, smpemu.kvm, smpemu.memory, smpemu.errors.
"""

from smpemu.litmus.command import litmus_command
from smpemu.litmus.parser import LitmusTest, parse_file, parse_text
from smpemu.litmus.result import LitmusResult, format_result
from smpemu.litmus.runner import run_test

__all__ = [
    "LitmusResult",
    "LitmusTest",
    "format_result",
    "litmus_command",
    "parse_file",
    "parse_text",
    "run_test",
]
