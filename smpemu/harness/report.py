"""Printing and saving results: the rich table and the JSON file.

Why it exists: the table and ``--json`` must use the same counter names, so
both are produced from the one ``RunResult.as_dict()``.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from smpemu.kvm.layout import proc_name

TABLES = (
    ("steps", "invlpg", "faults", "tlb_hits", "tlb_misses", "flush_requests", "remote_flushes"),
    ("ipis_sent", "ipis_received", "ipis_avoided", "ack_latency_us", "violations", "wall_s", "steps_per_s"),
)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):  # ack_latency_us
        return f"{_fmt(v.get('p50'))} / {_fmt(v.get('p99'))}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def run_tables(result: dict) -> list[Table]:
    """Two tables (rows: each vCPU, each reclaimer if several, the host, the
    total) with the JSON's names."""
    tables = []
    for cols in TABLES:
        t = Table(header_style="bold")
        t.add_column("vcpu", justify="right")
        if cols is TABLES[0]:
            t.add_column("pid", justify="right")
            t.add_column("cpus")
        for c in cols:
            t.add_column(c + (" p50 / p99" if c == "ack_latency_us" else ""), justify="right")

        def row(name, pid, cpus, d, style=None):
            lead = [name, pid, cpus] if cols is TABLES[0] else [name]
            t.add_row(*lead, *(_fmt(d.get(c)) for c in cols), style=style)

        for v in result["vcpus"]:
            row(str(v["id"]), str(v["pid"]), ",".join(map(str, v["cpus"])), v)
        h = result.get("host") or {}
        rows = h.get("reclaimers") or []
        if len(rows) > 1:  # one row per reclaimer, then the host's sum
            for r in rows:
                row(f"host{r['id']}", str(r.get("pid", "")), "any", r, style="dim")
            row("host", "", "", h, style="dim")
        elif h:
            row("host", str(h.get("pid", "")), "any", h, style="dim")
        row("total", "", "", result["totals"], style="bold")
        tables.append(t)
    return tables


def print_result(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    cfg = result["config"]
    console.print(f"[bold]{cfg['workload']}[/bold]: {cfg['vcpus']} vCPUs, policy {cfg['policy']}, "
                  f"memory model {cfg['memory_model']}, requests {cfg['requests']}, "
                  f"pin {cfg['pin']}, seed {cfg['seed']}, {result['totals']['wall_s']} s")
    for t in run_tables(result):
        console.print(t)
    for v in result["violations"][:10]:
        seen = proc_name(v["reporter"], cfg["vcpus"], cfg.get("reclaimers") or 1)
        console.print(
            f"[red]VIOLATION[/red] {v['kind']}: vcpu {v['vcpu']} slot {v['slot']} gfn {v['gfn']} "
            f"pfn {v['pfn']} gen {v['entry_gen']}->{v['cur_gen']} at t={v['t_s']} s (seen by {seen})"
        )
    n = result["totals"]["violations"]
    if n > 10:
        console.print(f"... {n - 10} more violations (see --json)")
    if result.get("aborted"):
        console.print(f"[red]aborted:[/red] {result['aborted']}")
    if result.get("interrupted"):
        console.print(f"[yellow]interrupted by {result['interrupted']}: partial results[/yellow]")
    if result.get("points"):
        console.print(points_line(result["points"]), markup=False, highlight=False, soft_wrap=True)
    verdict = "[red]violations found[/red]" if n else "[green]no violation[/green]"
    console.print(f"{verdict}; ipis_sent={result['totals']['ipis_sent']:,}")


def points_line(points: dict) -> str:
    """'protocol points reached: a 12, b 3; never reached: c' (coverage)."""
    hit = [f"{p} {n:,}" for p, n in points.items() if n]
    miss = [p for p, n in points.items() if not n]
    return ("protocol points reached: " + (", ".join(hit) or "none")
            + ("; never reached: " + ", ".join(miss) if miss else "; every point reached"))


def write_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
