"""Coverage: which protocol points a run reached, and how often.

A point never reached is a window the run never tried; run --json and
stress report each point's count (every process's row summed) and list the
unreached ones.  The counts are checked against counters that are kept
independently (flush requests, invlpgs), on real processes.
"""

import json
import subprocess
import sys

import pytest

from smpemu.harness.config import RunConfig
from smpemu.harness.coordinator import run
from smpemu.kvm.points import POINT_NAMES, points_in_play
from smpemu.search.stress import stress
from tests.test_oracle_scenarios import OVERLAP_RACE
from tests.helpers import run_script


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["deferred-v4", "eager"])
def test_run_counts_every_point_against_independent_counters(policy):
    r = run(RunConfig(vcpus=4, policy=policy, iterations=800, seed=2))
    assert r.aborted is None, r.aborted
    d = r.as_dict()
    p = d["points"]
    # a host-side run lists the host-side points, not steal time's or the guest shootdown's
    assert list(p) == list(points_in_play(pv=False)) and "pvflush.cmpxchg" not in p
    assert p["ipi.after_kick"] == d["totals"]["flush_requests"] > 0  # one per make_request
    # every zap through the policy: invlpg's, the rmap's evictions, sync_page's drops (a fault replacing an
    # spte zaps too, and is not counted: hence <=)
    t = d["totals"]
    assert 0 < p["invlpg.after_zap"] <= t["invlpg"] + t["rmap_evictions"] + t["sync_drops"]
    assert p["tlb.fill"] > 0
    if policy == "eager":  # eager never defers: it never sets dirty
        assert p["invlpg.after_set_dirty"] == 0 and "invlpg.after_set_dirty" in d["points_unreached"]
    else:
        assert p["invlpg.after_set_dirty"] == p["invlpg.after_zap"]
    assert d["points_unreached"] == [k for k, n in p.items() if n == 0]


@pytest.mark.timeout(60)
def test_a_script_reaches_exactly_the_points_it_goes_through():
    r = run_script(OVERLAP_RACE, vcpus=2, policy="deferred-v4")
    p = r.as_dict()["points"]
    assert p["flush.after_clear_dirty"] == 1  # host0's flush only (host1 skips its flush)
    assert p["notifier.after_unlock"] == 2  # both reclaimers' notifiers
    assert p["fault.retry"] == 0 and "fault.retry" in r.as_dict()["points_unreached"]


@pytest.mark.timeout(120)
def test_stress_sums_points_over_rounds_and_prints_them(tmp_path):
    base = RunConfig(policy="tlbs-dirty", workload="share-unmap", vcpus=2, reclaim="freed", seed=1,
                     duration=1.0, reclaimers=1)
    r = stress(base, timeout=3, round_s=1, until_violation=False)
    assert len(r.rounds) >= 2
    assert set(r.points) == set(points_in_play(pv=False)) and r.points["invlpg.after_zap"] > 0
    assert r.as_dict()["points_unreached"] == [k for k, n in r.points.items() if n == 0]
    js = tmp_path / "s.json"
    p = subprocess.run([sys.executable, "-m", "smpemu.cli", "stress", "--policy", "tlbs-dirty", "--vcpus", "2",
                        "--timeout", "3", "--round", "1", "--reclaimers", "1", "--json", str(js)],
                       capture_output=True, text=True, timeout=100)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    assert "protocol points reached:" in p.stdout
    assert json.loads(js.read_text())["points"]["invlpg.after_zap"] > 0


def test_points_in_play_keep_each_features_points():
    assert set(points_in_play(pv=False)) < set(POINT_NAMES)
    pv = points_in_play(pv=True, guest_flush="pv", shootdowns=True)
    assert "pvflush.cmpxchg" in pv and "steal.record" in pv and "steal.record.writeback" not in pv
    assert "steal.record.writeback" in points_in_play(pv=True, guest_flush="pv-writeback", shootdowns=True)
    native = points_in_play(pv=True, guest_flush="native", shootdowns=True)
    assert "shootdown.ipis_sent" in native and "pvflush.cmpxchg" not in native
