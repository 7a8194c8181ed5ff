"""The scope search: every scenario of up to N operations, each explored to K preemptions.

Why it exists: ``smpemu check`` is complete only for the scenario it is
handed, and hand-written scenarios decided what the prose said a policy
survives.  ``smpemu check --scope N`` (and ``smpemu verdicts``, built on
``search_scope``) let the tool say it: every scenario of the alphabet
(search/scope_enum.py) up to N ops, canonical up to renaming, each
explored by the existing explorer (search/explore.py) to ``bound``.

Sizes are searched in order, 1, 2, ..., N: the first size with a violation
is finished, and its minimal scenario is the one with the fewest
preemptions, then the fewest steps, then the first in the enumeration's
fixed order; so the result does not depend on how the work was split
(``jobs``, a dask ``scheduler``), only on the settings.  The settings and
results are in search/scope_types.py, the running in search/scope_run.py.
"""

from __future__ import annotations

from smpemu.search.scope_run import run_sizes
from smpemu.search.scope_types import ScopeResult, ScopeSettings, ScopeViolation, zap_flushes

# the `--scope default` value: the largest scope mmu-lock --notifier 2012 --jobs 2 completes in < 15 min on
# this 2-core machine: scope 3 (30,098 scenarios) in 146 s idle; scope 4 is 796,856 scenarios, about an hour
# at the rate measured (docs/check.md, "Measured")
DEFAULT_SCOPE = 3


def search_scope(settings: ScopeSettings, progress=None) -> ScopeResult:
    """Explore every scenario of up to ``settings.scope`` ops; ``progress(done,
    total, size)`` is called as work comes back (done and total count
    scenarios, size is the number of ops of those being explored)."""
    return run_sizes(settings, progress)


__all__ = ["ScopeSettings", "ScopeViolation", "ScopeResult", "search_scope", "DEFAULT_SCOPE", "zap_flushes"]
