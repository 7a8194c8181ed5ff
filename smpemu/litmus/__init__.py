"""Litmus tests (C, Linux-kernel memory model format) on smpemu's memory models.

Why it exists: to show, with real processes, that each ``--memory-model``
allows exactly what it claims (see docs/memory-models.md).  ``parser`` reads
a test, ``runner`` runs it litmus7-style, ``command`` is ``smpemu litmus``.
It never imports the search, the studies or the CLI.

May import: smpemu.harness, workloads, smpemu.kvm, smpemu.memory, smpemu.errors.
"""

from smpemu.litmus.command import litmus_command
from smpemu.litmus.parser import LitmusTest, parse_file, parse_text
from smpemu.litmus.runner import LitmusResult, format_result, run_test

__all__ = [
    "LitmusResult",
    "LitmusTest",
    "format_result",
    "litmus_command",
    "parse_file",
    "parse_text",
    "run_test",
]
