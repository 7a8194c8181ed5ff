"""Where each vCPU runs: --pin compact|spread|none|LIST and --cpus.

One ``--pin`` syntax in every command: ``,`` joins the cores of one list
(``0,1``), ``;`` separates alternatives where a command takes several
(``stress``, ``sweep``: ``"compact;spread;0,1"``).

Why it exists: scaling studies need placements that mean the same thing on a
2-core laptop and a 128-core server.  ``compact`` fills cores in order
(neighbours first; oversubscribed: vCPU i on core floor(i*n/N)); ``spread``
places vCPUs as far apart as the topology allows (across packages, then
physical cores, then SMT siblings; round-robin when oversubscribed); ``none``
lets the OS choose among the allowed cores; a list pins vCPU i to list[i % len].
"""

from __future__ import annotations

import os

from smpemu.errors import UsageError

PIN_POLICIES = ("compact", "spread", "none")
PIN_SYNTAX = ("expected compact, spread, none or a core list like 0,1,3 or 0-3 "
              "(',' joins the cores of one list; ';' separates alternatives in stress and sweep)")


def parse_pins(text: str, opt: str = "--pin") -> list[str]:
    """Alternatives for stress and sweep: 'compact;spread;0,1' -> ['compact', 'spread', '0,1'].

    One syntax everywhere: ',' inside a core list, ';' between alternatives,
    so '0,1' is always one pinning (vCPU i on core [0, 1][i % 2])."""
    parts = [p.strip() for p in str(text).split(";")]
    if not parts or any(not p for p in parts):
        raise UsageError(f"{opt} {text!r}: an empty pinning; separate alternatives with ';' "
                         f"(e.g. 'compact;spread;0,1')")
    out: list[str] = []
    for p in parts:
        if p not in PIN_POLICIES:
            try:
                parse_core_list(p)
            except UsageError:
                raise UsageError(f"{opt} {text!r}: {p!r} is not a pinning: {PIN_SYNTAX}") from None
        if p not in out:
            out.append(p)
    return out


def allowed_cores(cpus: str | None = None) -> list[int]:
    allowed = sorted(os.sched_getaffinity(0))
    if cpus is None:
        return allowed
    sub = parse_core_list(cpus, "--cpus")
    bad = [c for c in sub if c not in allowed]
    if bad:
        raise UsageError(f"--cpus: core(s) {bad} not allowed here; allowed cores: {allowed}")
    return sub


def parse_core_list(text: str, opt: str = "--pin") -> list[int]:
    """'0,1,3' or '0-3,6' -> [0, 1, 3] / [0, 1, 2, 3, 6]."""
    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        if opt != "--pin":
            raise UsageError(f"{opt} {text!r}: expected a core list like 0,1,3 or 0-3") from None
        if ";" in str(text):
            raise UsageError(f"--pin {text!r}: one pinning here; ';' separates alternatives only in "
                             f"stress and sweep (e.g. --pin 'compact;0,1')") from None
        raise UsageError(f"--pin {text!r}: {PIN_SYNTAX}") from None
    if any(c < 0 for c in out):
        raise UsageError(f"{opt} {text!r}: core numbers are >= 0")
    return out


def topology(cores: list[int]) -> dict[int, tuple[int, int]]:
    """core -> (package, physical core id), from sysfs; (0, core) if unknown."""
    topo = {}
    for c in cores:
        base = f"/sys/devices/system/cpu/cpu{c}/topology/"
        try:
            pkg = int(open(base + "physical_package_id").read())
            cid = int(open(base + "core_id").read())
        except (OSError, ValueError):
            pkg, cid = 0, c
        topo[c] = (pkg, cid)
    return topo


def spread_order(cores: list[int]) -> list[int]:
    """Cores ordered so that consecutive picks are as far apart as possible."""
    topo = topology(cores)
    by_pkg: dict[int, dict[int, list[int]]] = {}
    for c in cores:
        pkg, cid = topo[c]
        by_pkg.setdefault(pkg, {}).setdefault(cid, []).append(c)
    # round 0: first thread of every physical core, alternating packages; then siblings
    order: list[int] = []
    rounds = max(len(t) for p in by_pkg.values() for t in p.values())
    for r in range(rounds):
        per_pkg = [[t[r] for t in p.values() if len(t) > r] for _, p in sorted(by_pkg.items())]
        i = 0
        while any(per_pkg):
            lst = per_pkg[i % len(per_pkg)]
            if lst:
                order.append(lst.pop(0))
            i += 1
    return order


def placement(n_vcpus: int, pin: str, cores: list[int]) -> list[list[int]]:
    """The cores each vCPU may run on."""
    n = len(cores)
    if pin == "none":
        return [list(cores) for _ in range(n_vcpus)]
    if pin == "compact":
        if n_vcpus <= n:
            return [[cores[i]] for i in range(n_vcpus)]
        return [[cores[i * n // n_vcpus]] for i in range(n_vcpus)]
    if pin == "spread":
        order = spread_order(cores)
        return [[order[i % n]] for i in range(n_vcpus)]
    lst = parse_core_list(pin)
    bad = [c for c in lst if c not in cores]
    if bad:
        raise UsageError(f"--pin: core(s) {bad} not allowed here; allowed cores: {cores}")
    return [[lst[i % len(lst)]] for i in range(n_vcpus)]


def oversubscription(n_vcpus: int, cores: list[int]) -> float:
    return n_vcpus / max(1, len(cores))
