"""Printing and saving results: the rich tables, their legend, the JSON file.

Why it exists: the tables and ``--json`` must use the same counter names, so
both are produced from the one ``RunResult.as_dict()``; and the tables must
stay readable in an 80-column terminal, so they are split to the console's
width rather than cut.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from smpemu.kvm.layout import proc_name

# the run's counters in the order the tables show them (each name is a key of --json)
COLUMNS = ("steps", "steps_per_s", "tlb_hits", "tlb_misses", "faults", "invlpg", "flush_requests",
           "remote_flushes", "violations", "ipis_sent", "ipis_received", "ipis_avoided",
           "ack_latency_us.p50", "ack_latency_us.p99")  # wall_s, the same in every row, heads the tables
# issue 19 (harness/guest_report.py): shown when the run has them
PV_COLUMNS = ("preemptions", "preempted_ms", "shootdowns", "shootdown_ipis", "shootdown_ipis_avoided",
              "targets_preempted", "shootdown_us.p50", "shootdown_us.p99")
HIST_PER_OCTAVE = 8  # the ack-latency histogram's buckets per power of two (harness/worker.hist_bucket)

LEGEND = (
    "steps: guest steps (tlb_hits + tlb_misses + exits); faults: shadow page faults; invlpg: guest "
    "invlpgs; flush_requests: flush requests made; remote_flushes: kvm_flush_remote_tlbs() calls; "
    "ipis_avoided: targets not kicked (outside guest mode, so they flush on entry, or already kicked); "
    "ack_latency_us: a requester's wait for acks, p50 and p99 as the range of the histogram bucket "
    "(9% wide) holding them.  pids and every other counter: --json."
)


def latency_range(mid_us: float) -> tuple[float, float]:
    """The bounds of the histogram bucket whose geometric middle ``mid_us`` is
    (the p50/p99 of --json): a percentile is known only to within its bucket."""
    half = 2 ** (1 / (2 * HIST_PER_OCTAVE))
    return mid_us / half, mid_us * half


def fmt_latency(mid_us) -> str:
    """'1,923-2,097' (us): the bucket, not a false precision."""
    if mid_us is None:
        return "-"
    lo, hi = latency_range(mid_us)
    if hi >= 100:
        return f"{lo:,.0f}-{hi:,.0f}"
    if hi >= 10:
        return f"{lo:.1f}-{hi:.1f}"
    return f"{lo:.2f}-{hi:.2f}"


def _fmt(v, name: str = "") -> str:
    if v is None:
        return "-"
    if name.startswith(("ack_latency_us.", "shootdown_us.")):
        return fmt_latency(v)
    if name == "wall_s":
        return f"{v:.3f}"
    if isinstance(v, float):
        return f"{v:,.0f}" if name == "steps_per_s" else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _cores(cpus: list) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _value(d: dict, name: str):
    if "." in name:
        top, sub = name.split(".", 1)
        return (d.get(top) or {}).get(sub)
    return d.get(name)


def _header(name: str) -> str:
    # two lines for the two percentiles: ack_latency_us / p50
    return name.replace(".", "\n")


def _rows(result: dict):
    """(name, pid, cpus, counters dict, style) per vCPU, the host and the total."""
    for v in result["vcpus"]:
        yield str(v["id"]), str(v["pid"]), _cores(v["cpus"]), v, None
    h = result.get("host") or {}
    rows = h.get("reclaimers") or []
    if len(rows) > 1:  # one row per reclaimer, then the host's sum
        for r in rows:
            yield f"host{r['id']}", str(r.get("pid", "")), "any", r, "dim"
        yield "host", "", "", h, "dim"
    elif h:
        yield "host", str(h.get("pid", "")), "any", h, "dim"
    yield "total", "", "", result["totals"], "bold"


def _width(header: str, cells) -> int:
    return max([len(x) for x in header.split("\n")] + [len(c) for c in cells])


def fit_tables(lead: list, cols: list, styles: list, width: int = 80, title: str | None = None) -> list[Table]:
    """Tables no wider than ``width``: every table repeats the ``lead`` columns
    (what identifies a row) and gets as many of ``cols`` as fit, in order.
    A column is ``(header, cells, justify)``; no cell or header is ever cut."""
    def w(col):  # a column's width: its widest line + 2 padding + 1 border
        return _width(col[0], col[1]) + 3

    base = 1 + sum(w(c) for c in lead)
    groups: list[list] = [[]]
    used = base
    for col in cols:
        if groups[-1] and used + w(col) > width:
            groups.append([])
            used = base
        groups[-1].append(col)
        used += w(col)
    tables = []
    for k, group in enumerate(groups):
        t = Table(header_style="bold", title=title if k == 0 else None)
        for header, _, justify in lead + group:
            t.add_column(header, justify=justify, no_wrap=True)
        for i, style in enumerate(styles):
            t.add_row(*(cells[i] for _, cells, _ in lead + group), style=style)
        tables.append(t)
    return tables


def run_tables(result: dict, width: int = 80) -> list[Table]:
    """The run's counters as tables no wider than ``width`` columns: each
    table repeats the vcpu column, and gets as many counters as fit, with the
    full --json names as headers (no cell or name is ever cut)."""
    rows = list(_rows(result))
    lead = [("vcpu", [r[0] for r in rows], "right")]
    cols = [("cpus", [r[2] for r in rows], "left")]  # pids: in --json (every table repeats vcpu instead)
    names = COLUMNS + (PV_COLUMNS if "shootdowns" in result["totals"] else ())
    cols += [(_header(c), [_fmt(_value(r[3], c), c) for r in rows], "right") for c in names]
    return fit_tables(lead, cols, [r[4] for r in rows], width)


def legend(result: dict) -> list[str]:
    """What the columns mean, how oversubscribed the run was, whose IPIs they are."""
    cfg = result["config"]
    lines = [LEGEND]
    n = cfg["vcpus"]
    cores = sorted({c for v in result["vcpus"] for c in v.get("cpus", [])})
    if result.get("pcpus"):
        p = result["pcpus"]
        t = result["totals"]
        lines.append(f"{n} vCPUs on {p} emulated pCPU{'s' if p > 1 else ''} (--pcpus {p}, --quantum "
                     f"{cfg.get('quantum'):g} ms): {result['oversubscription']:g}x oversubscribed; a preempted "
                     f"vCPU is blocked, out of guest mode, marked preempted in its steal time; preemptions "
                     f"{t.get('preemptions', 0):,}, preempted_ms: time spent waiting for a pCPU.")
    elif cores:
        k = len(cores)
        over = n / k
        if over > 1:
            lines.append(f"{n} vCPUs on {k} core{'s' if k > 1 else ''}: {over:g}x oversubscribed; most vCPUs "
                         f"wait for a core at any moment, so a flush waiting for their acks waits for the "
                         f"host scheduler.")
        else:
            lines.append(f"{n} vCPUs on {k} cores: not oversubscribed.")
    t = result["totals"]
    if t.get("shootdowns"):
        lines.append(f"guest shootdowns (--guest-flush {cfg.get('guest_flush')}): {t['shootdowns']:,}, "
                     f"{t.get('ipis_per_shootdown') or 0:g} IPIs each (shootdown_ipis; "
                     f"shootdown_ipis_avoided: preempted targets left a FLUSH instead), "
                     f"{(t.get('targets_preempted_share') or 0):.0%} of their targets found preempted; "
                     f"shootdown_us: start to last ack; shootdowns_preempted {t.get('shootdowns_preempted', 0):,} "
                     f"(the host preempted the initiator during them).")
    host = result.get("host") or {}
    total = result["totals"].get("ipis_sent") or 0
    if host and total:
        share = host.get("ipis_sent", 0) / total
        lines.append(f"host: swap pressure (--swap-rate {cfg.get('swap_rate'):g}/s); it sent {share:.0%} of "
                     f"the IPIs{' (most)' if share > 0.5 else ''}: each reclaim's mmu-notifier must flush every "
                     f"vCPU's TLB before the page is freed, so it cannot defer as a guest invlpg can.")
    return lines


def print_result(result: dict, console: Console | None = None, legend_on: bool = True) -> None:
    console = console or Console()
    cfg = result["config"]
    console.print(f"[bold]{cfg['workload']}[/bold]: {cfg['vcpus']} vCPUs, policy {cfg['policy']}, "
                  f"memory model {cfg['memory_model']}, requests {cfg['requests']}, "
                  f"notifier {cfg.get('notifier', '2009')}"
                  + (f", range share {cfg['range_share']:g}" if cfg.get("range_share") else "")
                  + f", pin {cfg['pin']}, seed {cfg['seed']}, {result['totals']['wall_s']} s")
    for t in run_tables(result, console.width):
        console.print(t)
    if legend_on:
        for line in legend(result):
            console.print(line, markup=False, highlight=False, style="dim")
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
    if result.get("skipped"):  # the script allowed these waits never to end
        console.print("skipped (an optional wait that did not end, and the ops after it): "
                      + "; ".join(result["skipped"]), markup=False, highlight=False)
    if result.get("points"):
        console.print(points_line(result["points"]), markup=False, highlight=False)  # wraps to the width
    if n:
        verdict = "[red]violations found[/red]"
    elif result.get("aborted") or result.get("interrupted"):
        verdict = "[yellow]no violation seen, but the run is incomplete[/yellow]"
    else:
        verdict = "[green]no violation[/green]"
    console.print(f"{verdict}; ipis_sent={result['totals']['ipis_sent']:,}")


def points_line(points: dict) -> str:
    """'protocol points reached: a 12, b 3; never reached: c' (coverage)."""
    hit = [f"{p} {n:,}" for p, n in points.items() if n]
    miss = [p for p, n in points.items() if not n]
    return ("protocol points reached: " + (", ".join(hit) or "none")
            + ("; never reached: " + ", ".join(miss) if miss else "; every point reached"))


def write_json(result: dict, path: str) -> bool:
    """False (said on stderr) when the file could not be written (harness/outputs.py)."""
    from smpemu.harness.outputs import write_json_file

    return write_json_file(result, path)
