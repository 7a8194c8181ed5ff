"""The store-buffer state hooks the litmus enumerator memoises on.

``snapshot()`` must capture everything that decides a buffer's future
(entries, their order, barrier segments), and ``restore()`` must bring it
back exactly, forwarding included: the enumerator restores a state once per
branch, so a hook that loses anything would make it explore executions the
model cannot have (or miss some).
"""

from __future__ import annotations

import pytest

from smpemu.memory import make_model


class _Sem:
    def acquire(self, timeout=None):
        pass

    def release(self):
        pass


def _model(name: str, words: list):
    return make_model(name, words, _Sem(), [_Sem()] * 4, lambda a: False, seed=0).controlled()


@pytest.mark.parametrize("name", ["tso", "relaxed"])
def test_restore_brings_back_entries_order_and_forwarding(name):
    words = [0] * 4
    m = _model(name, words)
    m.store(0, 1)
    m.store(1, 2)
    m.wmb()
    m.store(0, 3)
    snap = m.snapshot()
    choices = m.drain_choices()
    while m.buffered():  # drain everything one entry at a time
        m.drain_entry(m.drain_choices()[0])
    assert words[:2] == [3, 2] and m.snapshot() != snap
    words[:] = [0] * 4
    m.restore(snap)
    assert m.snapshot() == snap and m.buffered() == 3 and m.drain_choices() == choices
    assert m.load(0) == 3 and m.load(1) == 2 and words[:2] == [0, 0]  # forwarded, not in memory
    assert hash(snap) == hash(m.snapshot())


def test_relaxed_snapshot_keeps_a_trailing_barrier():
    """A wmb() after the last store changes what later stores may do: two
    buffers with the same entries, one with a closed segment, differ."""
    a, b = _model("relaxed", [0] * 4), _model("relaxed", [0] * 4)
    for m in (a, b):
        m.store(0, 1)
    a.wmb()
    assert a.snapshot() != b.snapshot()
    for m in (a, b):
        m.store(1, 1)
    assert a.drain_choices() == [0] and b.drain_choices() == [0, 1]
