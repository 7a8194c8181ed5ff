"""Replay files: what ``smpemu replay`` needs to repeat a scheduled run.

Why it exists: a schedule that found a violation is worth keeping.  A replay
file holds the smpemu version (a schedule replays only on the version that
recorded it), the full configuration, the seed, every decision ``[cpu,
point]`` and the identity of the first violation (kind, vcpu, slot, gfn,
pfn, and the point of the last decision), so a replay can say whether it
found the same one.

Format 2 (``smpemu check --replay-out``) adds: the scenario's name and its
script, the number of host processes (``reclaimers``; each is its own actor
in the decisions, ids N..N+H-1), and store-buffer drain decisions
``[cpu, "sb.drain", word]`` (with ``controlled_drains`` in the
configuration, buffers drain only at those decisions, never from a
per-process RNG).  Format 1 files (``stress --schedule pct``) still replay.
"""

from __future__ import annotations

import json
from dataclasses import fields

from smpemu import __version__
from smpemu.errors import UsageError, read_json_object
from smpemu.sched.choices import DRAIN, Drain, parse
from smpemu.harness.config import RunConfig
from smpemu.search.strategies import who

REPLAY_FORMAT = 3  # 2: drain decisions; 3: the host scheduler's [cpu, "sched.out"] and [cpu, "sched.in"]
REPLAY_FORMATS = (1, 2, 3)


def n_hosts(cfgd: dict, script=None) -> int:
    """Host processes of a run configuration (dict): the script's hosts, or its reclaimers."""
    script = script if script is not None else cfgd.get("script")
    if isinstance(script, dict) and isinstance(script.get("hosts"), dict):
        from workloads.script import host_count

        return host_count(script)
    r = cfgd.get("reclaimers")
    return r if isinstance(r, int) and r >= 1 else 1


def replay_doc(result) -> dict:
    """What ``smpemu replay`` needs to repeat a scheduled run (a RunResult)."""
    s = result.schedule or {}
    v = result.violations[0] if result.violations else None
    return {
        "smpemu_replay": REPLAY_FORMAT,
        "smpemu_version": __version__,
        "scenario": None,  # smpemu check: the scenario's name; stress: a workload, no scenario
        "reclaimers": n_hosts(result.config),
        "seed": result.config["seed"],
        "config": result.config,
        "schedule": {k: s.get(k) for k in ("strategy", "end", "last", s.get("strategy"))},
        "violation": _identity(v, s.get("last")),
        "decisions": result.decisions or [],
    }


def _identity(v, last) -> dict | None:
    if v is None:
        return None
    d = {k: v[k] for k in ("kind", "vcpu", "slot", "gfn", "pfn", "reporter")}
    d["point"] = last["point"] if last else None
    d["cpu"] = last["cpu"] if last else None
    return d


MATCH_KEYS = ("kind", "vcpu", "slot", "pfn", "point")


def identity(result) -> dict | None:
    """The first violation of a scheduled run and the point of its last decision."""
    return _identity(result.violations[0] if result.violations else None, (result.schedule or {}).get("last"))


def write_doc(doc: dict, path: str) -> bool:
    """One line of JSON per decision would be long: the decisions go compact.
    False (said on stderr) when the file could not be written."""
    from smpemu.harness.outputs import write_output

    head = {k: v for k, v in doc.items() if k != "decisions"}

    def w(f):
        f.write(json.dumps(head, indent=1)[:-2])
        f.write(',\n "decisions": [\n')
        dec = doc["decisions"]
        for i in range(0, len(dec), 8):
            f.write("  " + ", ".join(json.dumps(d) for d in dec[i:i + 8]))
            f.write(",\n" if i + 8 < len(dec) else "\n")
        f.write(" ]\n}\n")

    return write_output(path, w)


def write_replay(result, path: str) -> dict:
    doc = replay_doc(result)
    write_doc(doc, path)
    return doc


def describe_last(doc: dict) -> str:
    """'found after N decisions, the last one vcpu 1 at invlpg.after_set_dirty'."""
    last = (doc.get("schedule") or {}).get("last") or {}
    n_vcpus = doc["config"]["vcpus"]
    n_hosts = doc["config"].get("reclaimers") or 1
    if not last:
        return "no decision made"
    return (f"seed {doc['seed']}: {last['decision'] + 1} decisions, the last one "
            f"{who(last['cpu'], n_vcpus, n_hosts)} at {last['point']}")


def load_replay(path: str):
    """Read and check a replay file: (RunConfig to run, the document)."""
    doc = read_json_object(path, "replay file")
    if doc.get("smpemu_replay") not in REPLAY_FORMATS:
        raise UsageError(f"replay file {path}: not an smpemu replay file (format "
                         f"{' or '.join(map(str, REPLAY_FORMATS))})")
    ver = doc.get("smpemu_version")
    if ver != __version__:
        raise UsageError(f"replay file {path} was written by smpemu {ver!r}, this is smpemu {__version__}: "
                         f"a schedule replays only on the version that recorded it")
    cfgd = doc.get("config")
    if not isinstance(cfgd, dict):
        raise UsageError(f"replay file {path}: no configuration")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(cfgd) - known)
    if unknown:
        raise UsageError(f"replay file {path}: unknown configuration field(s) {', '.join(unknown)}")
    n_vcpus = cfgd.get("vcpus")
    if not isinstance(n_vcpus, int) or isinstance(n_vcpus, bool):
        raise UsageError(f"replay file {path}: config.vcpus is {n_vcpus!r}, expected a number of vCPUs")
    cfgd = dict(cfgd)
    # files written before --reclaimers had one host process (requester N)
    cfgd.setdefault("reclaimers", 1)
    r = cfgd["reclaimers"]
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise UsageError(f"replay file {path}: reclaimers is {r!r}, expected a number >= 1")
    dec = doc.get("decisions")
    if not isinstance(dec, list) or not dec:
        raise UsageError(f"replay file {path}: 'decisions' must be a non-empty list of [cpu, point]")
    script = doc.get("script")
    if script is not None and not isinstance(script, dict):
        raise UsageError(f"replay file {path}: 'script' must be a script object")
    hosts = n_hosts(cfgd, script)
    n_proc = (n_vcpus + hosts - 1) if isinstance(n_vcpus, int) else None
    fmt = doc["smpemu_replay"]
    v2 = fmt >= 2
    for i, d in enumerate(dec):
        try:
            choice = parse(d)[0]
        except UsageError:
            choice = None
        ok = choice is not None and (choice.is_step or (v2 and isinstance(choice, Drain)) or fmt >= 3)
        if not ok or n_proc is None or not 0 <= choice.actor <= n_proc:
            raise UsageError(f"replay file {path}: decision {i} is {d!r}, expected [cpu 0..{n_proc}, point name]"
                             + (f" or [cpu, {DRAIN!r}, word]" if v2 else "")
                             + (' or [cpu, "sched.out"] or [cpu, "sched.in"]' if fmt >= 3 else ""))
    want = doc.get("reclaimers", 1)
    if want != hosts:
        raise UsageError(f"replay file {path}: it needs {want} host processes (reclaimers), "
                         f"its configuration gives {hosts}")
    cfgd = dict(cfgd)
    cfgd["delays"] = {k: tuple(v) for k, v in (cfgd.get("delays") or {}).items()}
    try:
        cfg = RunConfig(**cfgd)
    except TypeError as e:
        raise UsageError(f"replay file {path}: bad configuration ({e})") from None
    cfg.schedule = "replay"
    cfg.replay = dec
    if script is not None:
        cfg.script = script
    cfg.reclaimers = hosts
    cfg.json_path = None
    try:
        cfg.validate()
    except UsageError as e:  # blame the file and its key, not an option the user never passed
        raise UsageError(f"replay file {path}: {_as_key(str(e), cfgd)}") from None
    return cfg, doc


def _as_key(msg: str, cfgd: dict) -> str:
    """A RunConfig message about ``--vcpus`` as one about ``config.vcpus``; a
    message naming no option gets the key whose value it quotes."""
    import re

    named = re.sub(r"--([a-z][a-z0-9-]*)", lambda m: "config." + m.group(1).replace("-", "_"), msg)
    if named != msg:
        return named
    for k, v in cfgd.items():
        if isinstance(v, str) and repr(v) in msg:
            return f"config.{k}: {msg}"
    return f"config: {msg}"


__all__ = ["REPLAY_FORMAT", "replay_doc", "write_doc", "write_replay", "describe_last", "load_replay",
           "identity", "MATCH_KEYS"]
