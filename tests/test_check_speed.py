"""What ``smpemu check``'s speed-ups rely on: memory, not time (no timing here).

The explorer turns the cyclic GC off while it explores (explore.Explorer.run):
that is safe only while a schedule leaves no reference cycle behind, every
world being freed by reference counting.  And the actor greenlets are pooled
per Proto (search/world.py, search/greenlets.py): the pool must not keep its Proto alive.
Both are deterministic properties of the code, checked here.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from smpemu.search.explore import Explorer
from smpemu.search.scenarios import load_scenario
from smpemu.search.world import Proto


def _cyclic_garbage(policy, scenario, model, schedules) -> int:
    """Objects only the cyclic GC could free after exploring ``schedules`` schedules."""
    proto = Proto(load_scenario(scenario), policy, model, "modern")
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        Explorer(proto.world, 1, prefix=proto.setup_prefix(), max_schedules=schedules).run()
        n = gc.collect()
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return n


@pytest.mark.parametrize("policy,scenario,model", [
    ("deferred-v4", "default", "native"),
    ("tlbs-dirty", "default", "tso"),
    ("deferred-v4-nowmb", "one-flusher", "relaxed"),
    ("sync-protected-only", "sync", "native"),
])
def test_a_schedule_leaves_no_reference_cycle(policy, scenario, model):
    # the Proto is alive here, so any cyclic garbage would come from the schedules
    assert _cyclic_garbage(policy, scenario, model, 30) == 0
    assert _cyclic_garbage(policy, scenario, model, 90) == 0


def test_a_proto_and_its_greenlet_pool_are_freed():
    refs = []
    for _ in range(2):
        proto = Proto(load_scenario("one-flusher"), "deferred-v4", "native", "modern")
        Explorer(proto.world, 1, prefix=proto.setup_prefix()).run()
        assert proto.idle  # the pool was used
        refs.append(weakref.ref(proto))
        del proto
    gc.collect()
    assert [r() for r in refs] == [None, None]
