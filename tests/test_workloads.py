"""The swap-pressure, cr3-switch, invlpg-storm and trace workloads: each runs
clean under correct policies and really drives its kernel path."""

import pytest

from smpemu.harness.config import RunConfig
from smpemu.harness.coordinator import run
from smpemu.errors import UsageError
from smpemu.kvm.guest import GuestLayout
from workloads import trace


def _run(workload, policy, **kw):
    kw.setdefault("iterations", 1500)
    trace_file = kw.pop("trace_file", None)
    cfg = RunConfig(vcpus=4, workload=workload, policy=policy, seed=7, ack_timeout=10.0, **kw)
    if trace_file:
        cfg.trace_file = str(trace_file)  # until RunConfig has the field
    r = run(cfg)
    assert r.aborted is None, r.aborted
    assert r.violations == [], r.violations[:3]
    assert r.exit_code == 0
    return r


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "eager"])
def test_swap_pressure_reclaims_and_faults_back(policy):
    # small guest and a fast host: most reclaims hit the working set
    r = _run("swap-pressure", policy, guest_mem="4M", swap_rate=5000)
    assert r.host["reclaims"] > 0
    pages = 4 * GuestLayout.plan(4, 1024).pages_per_thread
    assert r.totals["faults"] > pages  # first touches, then swap-ins of reclaimed pages


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "eager"])
def test_cr3_switch_reaches_mmu_sync_children(policy):
    t = _run("cr3-switch", policy).totals
    assert t["cr3_writes"] > 0
    assert t["remote_flushes"] > 0  # the sync path flushed (write-protected unsync page tables)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "eager"])
def test_invlpg_storm_floods_invlpg(policy):
    t = _run("invlpg-storm", policy).totals
    assert t["invlpg"] > 0.4 * t["steps"]  # about every other step is an invlpg
    if policy == "eager":
        assert t["remote_flushes"] >= t["invlpg"]


TRACE = """\
# every vCPU faults two pages in and reads a neighbour's
touch 0 w
touch 1
read 1 0
cpu 0:
unmap 0        # munmap: invlpg
cr3 next
pt_write home
cr3 home
cpu *:
cpu 1-3: invlpg 1
halt 50
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["tlbs-dirty", "eager"])
def test_trace_replays_a_file(tmp_path, policy):
    f = tmp_path / "ops.trace"
    f.write_text(TRACE)
    r = _run("trace", policy, trace_file=f, iterations=600)
    t = r.totals
    assert t["invlpg"] > 0 and t["cr3_writes"] > 0
    assert r.vcpus[0]["steps"] >= 600 and r.vcpus[3]["steps"] >= 600


@pytest.mark.timeout(60)
def test_trace_of_halts_only_still_ends(tmp_path):
    f = tmp_path / "halt.trace"
    f.write_text("halt 10\n")
    r = _run("trace", "tlbs-dirty", trace_file=f, iterations=50)
    assert all(v["steps"] >= 50 for v in r.vcpus)


def test_trace_parses_sections_and_prefixes():
    ops = trace.parse(TRACE, "t")
    assert [o.kind for o in trace.ops_for(ops, 0)] == ["touch", "touch", "read", "unmap", "cr3", "pt_write", "cr3", "halt"]
    assert [o.kind for o in trace.ops_for(ops, 2)] == ["touch", "touch", "read", "invlpg", "halt"]
    assert ops[0].args == (0, True) and ops[1].args == (1, False)
    assert ops[3].line == 6 and ops[3].cpus == frozenset({0})


BAD_TRACES = [
    ("touch 0\nfly 3\n", "line 2: unknown operation 'fly'"),
    ("touch x\n", "line 1: page must be a non-negative integer"),
    ("touch 1 r\n", "line 1: expected 'w'"),
    ("\n\nunmap\n", "line 3: unmap takes 1 operand(s), got 0"),
    ("touch 0 w extra\n", "line 1: touch takes 1 or 2 operand(s), got 3"),
    ("cr3 elsewhere\n", "line 1: table must be home, next or a process number"),
    ("cpu a: touch 0\n", "line 1: bad cpu list 'a'"),
    ("cpu 3-1: touch 0\n", "line 1: bad cpu range '3-1'"),
    ("cpu 1 touch 0\n", "line 1: expected 'cpu SPEC:'"),
    ("# nothing\n\n", "no operation in the file"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text,msg", BAD_TRACES, ids=[m for _, m in BAD_TRACES])
def test_trace_parse_errors_name_the_file_and_line(tmp_path, text, msg):
    f = tmp_path / "bad.trace"
    f.write_text(text)
    with pytest.raises(UsageError) as e:
        trace.load(str(f))
    assert msg in str(e.value)
    assert str(f) in str(e.value)


@pytest.mark.timeout(10)
def test_trace_range_errors_need_the_layout(tmp_path):
    L = GuestLayout.plan(4, 1024)
    for text, msg in ((f"touch {L.pages_per_thread}\n", "line 1: page"),
                      ("\nread 9 0\n", "line 2: cpu 9 is not a vCPU"),
                      ("cpu 7: touch 0\n", "line 1: cpu 7 is not a vCPU"),
                      (f"cr3 {L.n_procs}\n", "line 1: process")):
        with pytest.raises(UsageError, match=msg):
            trace.check(trace.parse(text, "t"), L, "t")


@pytest.mark.timeout(10)
def test_trace_without_a_file_is_a_usage_error():
    cfg = RunConfig(vcpus=2, workload="trace")
    with pytest.raises(UsageError, match="needs a trace file"):
        trace.validate_config(cfg, GuestLayout.plan(2, 1024))
