"""The explorer decides exactly what it decided when the fingerprint was taken.

``tests/fingerprint.py`` records, per configuration, every count and
counterexample of ``smpemu check`` under a cap on schedules (not seconds:
the numbers are a function of the code).  The whole table
(tests/data/fingerprint-before.json, 168 configurations) takes minutes;
this recomputes the CI subset (a handful of configurations, a few seconds)
and compares it with the committed one.  A change of the protocol code or of
the search that changes what is explored fails here: regenerate the file
(``python -m tests.fingerprint --ci --out tests/data/fingerprint-ci.json``)
only when that change is meant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fingerprint as F

DATA = Path(__file__).parent / "data"


@pytest.mark.timeout(120)
def test_ci_subset_decides_as_recorded():
    ref = json.loads((DATA / "fingerprint-ci.json").read_text())
    assert ref["cap"] == F.CI_CAP and set(ref["configs"]) == {F.key(*c) for c in F.CI_CONFIGS}
    got = F.table(ci=True)
    assert F.diff(ref, got) == []


def test_diff_can_fail():
    a = {"cap": 1, "configs": {"x": {"schedules": 3, "pruned": 1}}}
    b = {"cap": 1, "configs": {"x": {"schedules": 3, "pruned": 2}}}
    assert F.diff(a, a) == [] and F.diff(a, b) and F.diff(a, {"cap": 1, "configs": {}})
