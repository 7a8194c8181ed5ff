"""The wait interface (smpemu/kvm/waits.py) on its own, without posix_ipc.

What an implementation of ``kvm.waits.Waits`` may rely on, and what the
protocol code written over it does, checked with plain-Python semaphores and
a scripted implementation (what an in-process explorer would be).  The
emulator itself, on real processes and semaphores, is tested everywhere else.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smpemu import memory
from smpemu.errors import AckTimeout
from smpemu.harness.config import RunConfig
from smpemu.harness.context import ProcContext, RunParams
from smpemu.harness.coordinator import init_arena, plan
from smpemu.kvm import locks, policies
from smpemu.kvm.layout import C
from smpemu.kvm.mmu import MMU
from smpemu.kvm.oracle import Oracle
from smpemu.kvm.points import Points
from smpemu.kvm.vcpu import build_vcpu
from smpemu.kvm.waits import Lock, Waits, try_take
from smpemu.memory.arena import Arena


class Sem:
    """A semaphore object as the contract describes it (no OS object)."""

    def __init__(self, value=0):
        self.value = value

    def acquire(self, timeout=None):
        if self.value <= 0:
            raise TimeoutError("no post")
        self.value -= 1

    def release(self):
        self.value += 1


class Scripted(Waits):
    """Each block runs the next step of a script (the 'other actors'), and
    logs what the loop did; time is blocks: ``timeout`` is a number of them."""

    def __init__(self, steps=()):
        self.steps = list(steps)
        self.log = []

    def point(self, ctx, name, poll=True):
        self.log.append(("point", name))

    def _deadline(self, ctx, timeout, timer, watch, sem, bell, optional=False):
        return [timeout, 0]

    def _expired(self, ctx, deadline):
        return deadline[0] is not None and deadline[1] >= deadline[0]

    def _block(self, ctx, name, watch, sem, bell, slice_s, deadline):
        self.log.append(("block", name, tuple(watch() if callable(watch) else watch)))
        deadline[1] += 1
        if self.steps:
            self.steps.pop(0)()
        return sem is not None and try_take(sem)


def context(waits, words=16):
    mm = SimpleNamespace(drains=0)

    def drain():
        mm.drains += 1

    mm.drain = drain
    mm.release_lock = lambda sem: (drain(), sem.release())
    return SimpleNamespace(waits=waits, mm=mm, W=[0] * words, pid_index=0, ospid=4242, poll_words=(),
                           exit_poll=lambda: None,
                           params=SimpleNamespace(requests="modern", lock_timeout=3.0))


def test_ready_at_once_never_blocks():
    w = Scripted()
    ctx = context(w)
    assert w.wait_until(ctx, "halt", lambda took: True, sem=Sem())
    assert w.log == [] and ctx.mm.drains == 0


def test_drain_before_every_block_and_took_is_passed():
    sem = Sem()
    w = Scripted([lambda: None, sem.release])  # the event is posted during the second block
    ctx = context(w)
    seen = []

    def ready(took):
        seen.append(took)
        return took

    assert w.wait_until(ctx, "script.wait", ready, watch=(3,), sem=sem, timeout=10)
    assert seen == [False, False, True] and sem.value == 0  # the post was taken once, for the caller
    assert w.log == [("block", "script.wait", (3,))] * 2 and ctx.mm.drains == 2


def test_poll_runs_before_each_block_and_the_timeout_ends_the_wait():
    w = Scripted()
    ctx = context(w)
    polls = []
    assert not w.wait_until(ctx, "wait.invalidation", lambda took: False, poll=lambda: polls.append(1),
                            timeout=3)
    assert len(polls) == 3 and len([e for e in w.log if e[0] == "block"]) == 3


def test_try_take():
    s = Sem(1)
    assert try_take(s) and not try_take(s) and s.value == 0


def test_lock_written_once_over_the_interface():
    sem = Sem(0)  # taken by someone else
    ctx = context(Scripted([lambda: None, sem.release]))  # ...who releases it during the second block
    lk = Lock("mmu_lock", sem, holder=1, acq=2)
    ctx.W[1] = 99
    locks.lock(ctx, lk)
    assert ctx.W[1] == 4242 and ctx.W[2] == 1 and sem.value == 0
    assert ctx.waits.log[0] == ("point", "lock.mmu_lock")
    assert ctx.waits.log[1] == ("block", "wait.mmu_lock", (1,))  # watches the holder word
    locks.unlock(ctx, lk)
    assert ctx.W[1] == 0 and sem.value == 1


def test_lock_held_by_one_holder_past_the_timeout_is_an_error():
    sem = Sem(0)
    w = Scripted()
    ctx = context(w)
    w._deadline = lambda ctx, timeout, timer, watch, sem, bell, optional: [2, 0]  # two blocks' worth of time
    ctx.W[1] = 99
    with pytest.raises(AckTimeout, match="cpu 0 could not take pfn_lock: held by pid 99 for more than 3.0 s"):
        locks.lock(ctx, Lock("pfn_lock", sem, holder=1, acq=2))


def test_lock_changing_hands_is_only_slow():
    sem = Sem(0)
    ctx = context(None)

    def hand_over():
        ctx.W[2] += 1  # another acquisition meanwhile: the per-holder timeout starts again

    steps = [hand_over, hand_over, hand_over, sem.release]
    w = Scripted(steps)
    ctx.waits = w
    w._deadline = lambda ctx, timeout, timer, watch, sem, bell, optional: [2, 0]
    locks.lock(ctx, Lock("mmu_lock", sem, holder=1, acq=2))
    assert ctx.W[1] == 4242 and ctx.W[2] == 4


def test_the_protocol_runs_in_process_over_another_implementation():
    """A vCPU and the host in this one process, over a bytearray arena and
    plain semaphores: the host frees a page the vCPU maps; its flush waits
    for the vCPU's ack, and the scripted 'scheduler' runs the vCPU (it takes
    the interrupt) while the host is blocked.  What an explorer does."""
    cfg = RunConfig(vcpus=1, workload="script", script={}, swap_rate=0, guest_mem="4M", pin="none").validate()
    guest, layout, placement = plan(cfg)
    arena = Arena(layout, bytearray(layout.n_bytes))
    init_arena(arena, guest)
    sems = {"kick0": Sem(), "ackwake0": Sem(), "ackwake1": Sem(), "mmu_lock": Sem(1), "pfn_lock": Sem(1),
            "router": Sem(), "fence0": Sem(1), "fence1": Sem(1), **{f"atomic{k}": Sem(1) for k in range(2)}}
    spec = SimpleNamespace(cfg=cfg, guest=guest, placement=placement)

    def ctx_of(idx, waits):
        mm = memory.make_model("native", arena.words, sems[f"fence{idx}"], [sems["atomic0"], sems["atomic1"]],
                               layout.is_atomic)
        ctx = ProcContext(idx, arena, mm, sems, RunParams(), policy=policies.get("deferred-v4"), points=Points())
        ctx.oracle = Oracle(ctx)
        ctx.waits = waits
        return ctx

    vctx = ctx_of(0, Scripted())
    cpu, guest_kernel = build_vcpu(vctx, spec)
    cpu.enter_guest()
    slot = guest.user_range(0)[0]
    guest_kernel.touch(slot, True)
    gfn = int(arena.gpte.reshape(-1)[slot]) - 1
    assert cpu.access(slot, False) and gfn >= 0  # a TLB hit now

    host_waits = Scripted([cpu.take_interrupt])  # while the host waits: the vCPU takes its kick
    hctx = ctx_of(1, host_waits)
    assert MMU(hctx, guest).host_invalidate(gfn)
    blocks = [e for e in host_waits.log if e[0] == "block"]
    assert [b[1] for b in blocks] == ["wait.ack"]
    assert hctx.counters[C["ipis_sent"]] == 1 and vctx.counters[C["ipis_received"]] == 1
    assert vctx.counters[C["local_flushes"]] >= 1 and sems["kick0"].value == 0
    assert hctx.counters[C["violations"]] == 0 and vctx.counters[C["violations"]] == 0
    assert ("point", "notifier.after_unlock") in host_waits.log
