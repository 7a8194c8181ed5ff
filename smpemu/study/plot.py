"""The sweep's figure: six panels of scaling against vCPUs (matplotlib, optional).

Why it exists: a scaling study ends as one figure: IPIs, flushes, throughput
and ack latency against vCPUs, one line per policy (and pinning), the median
of the repeats with a min..max band, the host's core count marked.  A sweep
of guest shootdowns (issue 19) gets its own panels instead, against
oversubscription (vCPUs per emulated pCPU), one line per guest flush method.
"""

from __future__ import annotations

import os
import statistics

from smpemu.errors import UsageError


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install -e .[plot]") from None


def check_plot_format(path: str) -> None:
    """--plot's extension names a format matplotlib writes (before the first run)."""
    import os

    from matplotlib.figure import Figure

    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = Figure().canvas.get_supported_filetypes()
    if ext not in formats:
        raise UsageError(f"--plot {path}: " + (f"unknown format {ext!r}" if ext else "no extension")
                         + f"; use one of .{', .'.join(sorted(formats))} (e.g. out.png)")


PANELS = (  # column, title, log y
    ("ipis_per_s", "IPIs sent per second", True),
    ("remote_flushes_per_s", "remote flushes per second", True),
    ("steps_per_s", "guest steps per second (all vCPUs)", False),
    ("ack_latency_p50_us", "flush ack latency p50 (us)", True),
    ("ack_latency_p99_us", "flush ack latency p99 (us)", True),
    ("steps_per_vcpu_s", "guest steps per second per vCPU", False),
)


SHOOTDOWN_PANELS = (  # column, title, log y
    ("shootdown_p50_us", "shootdown latency p50 (us)", True),
    ("shootdown_p99_us", "shootdown latency p99 (us)", True),
    ("ipis_per_shootdown", "IPIs sent per shootdown", False),
    ("steps_per_s", "guest steps per second (all vCPUs)", True),
    ("targets_preempted_share", "share of targets found preempted", False),
    ("shootdowns_per_s", "shootdowns per second", True),
)


def series(rows: list[dict], metric: str, positive: bool = False, x: str = "vcpus") -> dict:
    """{(policy, pin, guest_flush): [(x, median, min, max)]} over the run rows
    (``positive``: only values > 0, for a log axis)."""
    acc: dict = {}
    for r in rows:
        v = r.get(metric)
        if r.get("kind") != "run" or not isinstance(v, (int, float)) or (positive and v <= 0):
            continue
        key = (r["policy"], r["pin"], r.get("guest_flush") or "native")
        acc.setdefault(key, {}).setdefault(float(r[x]) if x != "vcpus" else int(r[x]), []).append(v)
    return {k: [(n, statistics.median(xs), min(xs), max(xs)) for n, xs in sorted(d.items())]
            for k, d in acc.items()}


def plot(rows: list[dict], path: str, title: str) -> None:
    runs = [r for r in rows if r.get("kind") == "run"]
    if any((r.get("shootdowns") or 0) > 0 for r in runs):  # guest shootdowns: against oversubscription, a line per method
        keys = {(r["policy"], r["pin"]) for r in runs}
        _figure(runs, path, title, SHOOTDOWN_PANELS, "oversubscription", "oversubscription (vCPUs per emulated pCPU)",
                lambda policy, pin, gf: gf if len(keys) == 1 else f"{gf} ({policy}, {pin})",
                lambda x: f"{x:g}x", mark_cores=False)
        return
    pins = {r["pin"] for r in runs}
    flushes = {r.get("guest_flush") for r in runs}

    def name(policy, pin, gf):
        n = policy if len(pins) == 1 else f"{policy} ({pin})"
        return n + (f", {gf}" if len(flushes) > 1 else "")

    _figure(runs, path, title, PANELS, "vcpus", "vCPUs", name, str, mark_cores=True)


def _figure(runs, path, title, panels, x, xlabel, name, tick, mark_cores) -> None:
    """Six panels, one line per series (``name(policy, pin, guest_flush)``) against ``x``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    xs = sorted({float(r[x]) if x != "vcpus" else int(r[x]) for r in runs})
    cores = len(os.sched_getaffinity(0))
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5), constrained_layout=True)
    for ax, (metric, label, logy) in zip(axes.flat, panels):
        for (policy, pin, gf), pts in sorted(series(runs, metric, logy, x=x).items()):
            n, med, lo, hi = zip(*pts)
            line, = ax.plot(n, med, marker="o", label=name(policy, pin, gf))
            ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if mark_cores and xs and xs[-1] > cores:
            ax.axvline(cores, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f" {cores} host cores", (cores, 1), xycoords=("data", "axes fraction"),
                        va="top", fontsize=8, color="grey")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs or [1])
        ax.set_xticklabels([tick(v) for v in xs] or [tick(1)])
        if logy:
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()
            if hi < lo * 100:  # under two decades: one labelled tick, or none; label 2x and 5x too
                ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
                ax.yaxis.set_minor_formatter(plain)
            else:
                ax.yaxis.set_minor_formatter(NullFormatter())
        if metric.endswith("_share"):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylim(-0.02, 1.02)
        else:
            ax.yaxis.set_major_formatter(plain)
        ax.set_xlabel(xlabel)
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=10)
    fig.suptitle(title + "\nline: median of repeats; band: min..max", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def title_of(o, reclaimers: int) -> str:
    """The figure's title: what every point of the sweep ``o`` shares."""
    work = f"{o.iterations} steps/vCPU" if o.iterations else f"{o.duration} s"
    sched = (f", --pcpus {o.pcpus} (quantum {o.quantum:g} ms, local flush {o.local_flush})"
             if o.pcpus else "")
    return (f"smpemu sweep: {o.workload}, {work}, {o.repeat} repeat(s), memory model {o.memory_model}, "
            f"requests {o.requests}, swap {o.swap_rate:g}/s over {reclaimers} reclaimer(s), "
            f"{len(os.sched_getaffinity(0))} host cores{sched}")
