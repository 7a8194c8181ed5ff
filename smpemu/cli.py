"""The ``smpemu`` command line (typer).

Why it exists: one place that turns user input into a validated RunConfig,
shows progress, prints results, and maps every outcome onto the documented
exit codes (0 ok, 3 violation, 4 aborted, 2 bad usage, 1 internal, 130/143
interrupted).  User mistakes print one line, never a traceback.

May import: smpemu.search, smpemu.study, smpemu.litmus, smpemu.harness, workloads, smpemu.kvm, smpemu.memory, smpemu.errors.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smpemu import __version__
from smpemu.errors import EXIT_ABORTED, EXIT_INTERNAL, SmpemuError, UsageError
from smpemu.harness.clihelp import NOTIFIER_HELP, RANGE_SHARE_HELP, examples, trace_out_option
from smpemu.harness.status import Status

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Emulate SMP TLB-flush IPIs with real processes, shared memory and semaphores.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
if not out.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
    # logs and pipes: wide enough for the run tables, unless COLUMNS says
    # otherwise (rich's Console reads COLUMNS itself)
    out = Console(width=160)
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"smpemu {__version__}", markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
):
    """Emulate SMP TLB-flush IPIs with real processes, shared memory and semaphores."""


def _guard(fn):
    """Map smpemu errors onto exit codes with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            fn(*a, **kw)
        except SmpemuError as e:
            err.print(f"smpemu: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            raise typer.Exit(130)
        except typer.Exit as e:
            raise typer.Exit(_output_lost(e.exit_code))
        raise typer.Exit(_output_lost(0))

    return wrapper


def _output_lost(code: int) -> int:
    """A clean verdict whose output file could not be written is incomplete
    (exit 4); any other verdict keeps its code (harness/outputs.py)."""
    from smpemu.harness.outputs import lost

    files = lost()
    if files and code == 0:
        err.print(f"smpemu: incomplete: the result is clean but {', '.join(files)} was not written (exit 4)",
                  markup=False, highlight=False, soft_wrap=True)
        return EXIT_ABORTED
    return code


def _progress_run(cfg):
    from smpemu.harness.coordinator import run

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[steps]:,} steps"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    ) as prog:
        task = prog.add_task(f"{cfg.vcpus} vCPU{'s' if cfg.vcpus != 1 else ''}, {cfg.policy}", total=1.0, steps=0)
        status = Status("run", enabled=not err.is_terminal)

        def progress(f, steps):
            prog.update(task, completed=f, steps=steps)
            status(lambda: f"{f:.0%} done, {steps:,} guest steps, {cfg.vcpus} vCPU{'s' if cfg.vcpus != 1 else ''}, {cfg.policy}")

        return run(cfg, progress=progress)


@app.command(epilog=examples(
    "# the seed's test: 16 vCPU processes, 10 s\nsmpemu run --vcpus 16 --workload malloc-touch",
    "# pre-patch eager flushing, a fixed amount of work, counters as JSON\n"
    "smpemu run --vcpus 4 --policy eager --iterations 5000 --json out.json",
    "# vCPU 0 on core 0, vCPU 1 on core 1, stores drained in any order\n"
    "smpemu run --vcpus 2 --pin 0,1 --memory-model relaxed --duration 3",
    "# your own guest operations (format and this example, for 2 vCPUs or more: workloads/trace.py)\n"
    "smpemu run --workload trace --trace-file workloads/examples/ops.trace",
    "# 16 vCPUs on 2 emulated pCPUs: guest shootdowns with the paravirtual flush\n"
    "smpemu run --vcpus 16 --pcpus 2 --workload guest-shootdown --guest-flush pv",
))
@_guard
def run(
    vcpus: int = typer.Option(16, help="Number of vCPU processes."),
    workload: str = typer.Option("malloc-touch", help="Guest workload (see `smpemu list`)."),
    policy: str = typer.Option("deferred-v4", help="Flush policy (see `smpemu list`)."),
    pin: str = typer.Option("compact", help="compact | spread | none | a core list such as 0,1,3 (vCPU i on "
                            "the list's core i mod its length)."),
    cpus: Optional[str] = typer.Option(None, help="Restrict to these host cores (e.g. 0-3)."),
    memory_model: str = typer.Option("native", help="native | tso | relaxed."),
    duration: Optional[float] = typer.Option(None, help="Seconds to run (default 10 unless --iterations)."),
    iterations: Optional[int] = typer.Option(None, help="Guest steps per vCPU, instead of --duration."),
    guest_mem: str = typer.Option("64M", help="Guest memory (e.g. 64M, 1G)."),
    seed: int = typer.Option(1, help="Seed of the workload's and the host's random choices (which pages, which "
                             "reclaims). It does not fix the interleaving: the OS schedules the processes, so "
                             "counts differ between runs of one seed (a replayable interleaving: smpemu stress "
                             "--schedule pct, smpemu check)."),
    requests: str = typer.Option("modern", help="modern (mode-based waits) | 2009 (wait for every loaded vCPU)."),
    notifier: str = typer.Option("2009", help=NOTIFIER_HELP),
    ack_timeout: float = typer.Option(5.0, help="Seconds a flush waits for an ack before the run aborts."),
    spin_us: float = typer.Option(50.0, help="Microseconds a requester spins on acks before it blocks."),
    ipi_route: str = typer.Option("direct", help="direct (requesters kick, as KVM) | coordinator (it routes every kick)."),
    preempt_exit: int = typer.Option(0, help="Old name of --pcpus: N > 0 means --pcpus <the run's cores> when "
                                     "oversubscribed (N is no longer used)."),
    pcpus: int = typer.Option(0, help="The emulated host scheduler: at most P vCPUs run at once, time-sliced; a "
                              "preempted vCPU is blocked, out of guest mode, marked preempted (0: off)."),
    quantum: float = typer.Option(50.0, help="With --pcpus: the host scheduler's time slice, ms (scaled to "
                                  "smpemu's speed: docs/decisions.md)."),
    guest_flush: str = typer.Option("native", help="Guest TLB shootdowns (--workload guest-shootdown): native "
                                    "| pv | pv-writeback | pv-overwrite | pv-no-sync (see `smpemu list`)."),
    local_flush: str = typer.Option("concurrent", help="The shootdown initiator's own flush: first (<= 5.12) | "
                                    "concurrent (5.13+, 4ce94eabac16: beside the remote ones)."),
    swap_rate: float = typer.Option(1000.0, help="Host reclaims (mmu-notifier invalidations) per second, in total."),
    reclaimers: Optional[int] = typer.Option(None, help="Host reclaimer processes, each running the mmu notifier "
                                             "concurrently, as kswapd and direct reclaim (default 2, 1 with --swap-rate 0)."),
    range_share: float = typer.Option(0.0, help=RANGE_SHARE_HELP),
    tlb_size: int = typer.Option(64, help="TLB entries per vCPU."),
    rmap_size: int = typer.Option(4, help="rmap entries per guest frame (a full rmap evicts)."),
    share: float = typer.Option(0.05, help="malloc-touch: odds a step reads a sibling thread's page."),
    delay: List[str] = typer.Option([], help="Widen a race: POINT=US or POINT=LO-HI (repeatable)."),
    trace_file: Optional[str] = typer.Option(None, help="Input: the operations file of --workload trace "
                                             "(see workloads/trace.py)."),
    trace_out: Optional[str] = typer.Option(None, "--trace-out", help="Output: record protocol events and write "
                                            "the window before the first violation (or the last events) here "
                                            "as JSON."),
    trace_alias: Optional[str] = typer.Option(None, "--trace", hidden=True),
    script: Optional[str] = typer.Option(None, help="A scenario for --workload script: a JSON file of "
                                         "per-CPU operations (format in the README)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write results as JSON here."),
):
    """Run the emulator and print per-vCPU and total counters."""
    from smpemu.harness.config import RunConfig
    from smpemu.kvm.points import parse_delay
    from smpemu.harness.report import print_result, write_json
    from workloads.script import load as load_script

    trace_out = trace_out_option(trace_out, trace_alias)
    delays = dict(parse_delay(d) for d in delay)
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"--share must be between 0 and 1 (got {share})")
    cfg = RunConfig(
        vcpus=vcpus, workload=workload, policy=policy, pin=pin, cpus=cpus,
        memory_model=memory_model, duration=duration, iterations=iterations,
        guest_mem=guest_mem, seed=seed, requests=requests, notifier=notifier, ack_timeout=ack_timeout,
        spin_us=spin_us, ipi_route=ipi_route, preempt_exit=preempt_exit, pcpus=pcpus, quantum=quantum,
        guest_flush=guest_flush, local_flush=local_flush,
        swap_rate=swap_rate, reclaimers=reclaimers, range_share=range_share, tlb_size=tlb_size, rmap_size=rmap_size,
        share=share,
        delays=delays, json_path=json_out, trace_file=trace_file, trace=bool(trace_out),
    )
    if trace_out:
        from smpemu.harness.config import check_writable

        check_writable(trace_out, "--trace-out")
    if preempt_exit:
        err.print(f"smpemu: note: --preempt-exit {preempt_exit} is the emulated host scheduler now: --pcpus "
                  f"<the run's cores> when oversubscribed (docs/decisions.md)", highlight=False)
    if script is not None and workload not in ("script", "malloc-touch"):
        raise UsageError(f"--script is for --workload script (not {workload})")
    if script is not None:
        cfg.workload = "script"
        cfg.script = load_script(script)
    elif workload == "script":
        raise UsageError("--workload script needs --script FILE (the scenario; format in the README)")
    result = _progress_run(cfg).as_dict()
    print_result(result, out)
    if json_out:
        write_json(result, json_out)
    if trace_out and result.get("trace"):
        write_json({"config": result["config"], **result["trace"]}, trace_out)
        if result["violations"]:
            out.print(result["trace"]["rendered"], markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(result["exit_code"])


@app.command("list", epilog=examples("# every name the other commands accept\nsmpemu list"))
@_guard
def list_cmd():
    """List flush policies, workloads, memory models, guest flush methods and protocol points."""
    import workloads
    from smpemu.kvm import policies
    from smpemu.memory.model import MODELS
    from smpemu.kvm.points import POINT_NAMES

    t = Table(title="policies (their kernels: docs/timeline.md; what each survives, under which settings: "
                    "smpemu verdicts, docs/verdicts-default.md)", header_style="bold")
    t.add_column("policy")
    t.add_column("what it does")
    t.add_column("kernels")
    t.add_column("from")
    t.add_column("later")
    for name, cls in policies.POLICIES.items():
        t.add_row(name + (" (default)" if name == policies.DEFAULT else ""), cls.summary, cls.kernels, cls.commits,
                  cls.later)
    out.print(t)
    t = Table(title="workloads", header_style="bold")
    t.add_column("workload")
    t.add_column("what it models")
    for name, doc in workloads.describe().items():
        t.add_row(name, doc)
    out.print(t)
    out.print("memory models: " + ", ".join(MODELS))
    from smpemu.kvm.steal import DESCRIBE

    t = Table(title="guest flush methods (--guest-flush)", header_style="bold")
    t.add_column("method")
    t.add_column("what it is")
    for name, doc in DESCRIBE.items():
        t.add_row(name + (" (default)" if name == "native" else ""), doc)
    out.print(t)
    out.print("protocol points: " + ", ".join(POINT_NAMES))


@app.command(epilog=examples("# cores, topology, and the default placement of 16 vCPUs\nsmpemu info",
                             "# where spread pinning puts 16 vCPUs\nsmpemu info --vcpus 16 --pin spread",
                             "# a core list: vCPU i on core [0, 1][i % 2]\nsmpemu info --vcpus 4 --pin 0,1"))
@_guard
def info(
    vcpus: int = typer.Option(16, help="vCPUs to place."),
    pin: str = typer.Option("compact", help="compact | spread | none | core list."),
    cpus: Optional[str] = typer.Option(None, help="Restrict to these host cores."),
):
    """Show the host's cores and where each vCPU would run."""
    import os
    import platform

    import psutil

    from smpemu.harness import pinning

    from smpemu.harness.config import MAX_VCPUS

    if vcpus < 1:
        raise UsageError(f"--vcpus must be at least 1 (got {vcpus})")
    if vcpus > MAX_VCPUS:
        raise UsageError(f"--vcpus {vcpus} is too many: at most {MAX_VCPUS} (as for run)")
    cores = pinning.allowed_cores(cpus)
    place = pinning.placement(vcpus, pin, cores)  # a bad --pin before any output
    out.print(f"smpemu {__version__}, Python {platform.python_version()}, {platform.machine()}")
    out.print(f"logical cpus: {psutil.cpu_count()}, physical cores: {psutil.cpu_count(logical=False)}, "
              f"allowed for this process: {sorted(os.sched_getaffinity(0))}")
    topo = pinning.topology(cores)
    out.print("topology (core: package/core id): " + ", ".join(f"{c}: {p}/{i}" for c, (p, i) in topo.items()))
    t = Table(title=f"--vcpus {vcpus} --pin {pin}: oversubscription "
                    f"{pinning.oversubscription(vcpus, cores):.1f}x", header_style="bold")
    t.add_column("vcpu", justify="right")
    t.add_column("cores")
    for i, p in enumerate(place):
        t.add_row(str(i), ",".join(map(str, p)))
    out.print(t)


@app.command(epilog=examples("# list what would be removed\nsmpemu clean --dry-run",
                             "# remove objects of runs whose coordinator died\nsmpemu clean"))
@_guard
def clean(dry_run: bool = typer.Option(False, help="Only list what would be removed.")):
    """Remove shared objects left by runs whose coordinator is dead."""
    from smpemu.harness import resources

    removed, kept = resources.clean(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for n in removed:
        out.print(f"{verb} /dev/shm/{n}")
    out.print(f"{verb} {len(removed)} object(s); {len(kept)} belong to live runs and were kept")


@app.command(epilog=examples("# every .litmus file of the shipped corpus\nsmpemu litmus tests/litmus/",
                             "# one test, under TSO, 20000 instances\n"
                             "smpemu litmus tests/litmus/MP.litmus --iterations 20000 --memory-model tso"))
@_guard
def litmus(
    files: List[str] = typer.Argument(..., help="Litmus files or directories."),
    iterations: int = typer.Option(100000, help="Test instances per file."),
    memory_model: str = typer.Option("relaxed", help="native | tso | relaxed."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: random, printed)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write one row per test to this JSON file."),
):
    """Run Linux-kernel-memory-model litmus tests through the memory-model layer,
    with the model's exact verdict (every execution it allows) beside the sampled one."""
    try:
        from smpemu.litmus.command import litmus_command
    except ImportError as e:
        raise UsageError(f"litmus runner unavailable: {e}") from None
    raise typer.Exit(
        litmus_command(files, iterations=iterations, memory_model=memory_model, seed=seed, json_path=json_out)
    )


@app.command(epilog=examples(
    "# every benchmark, short version (10 s to a minute on 2 cores, as busy as the host is)\nsmpemu bench --quick",
    "# only the IPI round trips, results as JSON\nsmpemu bench --quick --only ipi --json bench.json",
))
@_guard
def bench(
    quick: bool = typer.Option(False, "--quick", help="Short version (10 s on an idle 2-core host; 48-53 s measured at load average 12)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write {name: {value, unit, baseline, "
                                           "baseline_value, ratio, ...}} here."),
    only: str = typer.Option("ipi,guest_steps,deferral,scaling,pvflush", help="Comma-separated subset of "
                             "ipi, guest_steps, deferral, scaling, pvflush."),
    iterations: Optional[int] = typer.Option(None, help="deferral: guest steps per vCPU (both policies)."),
):
    """Run the benchmarks, each against a baseline measured in the same run (as `python -m bench`)."""
    from smpemu.study.bench.main import check_options, run_all

    if iterations is not None and iterations < 1:
        raise UsageError(f"--iterations must be >= 1 (got {iterations})")
    run_all(check_options(only, json_out), quick, json_out, iterations)


EXTENSIONS = (  # commands that live in their own modules: (name, module with register(app, ...)); stress
    # before replay: a help example of replay runs the file one of stress writes (tests/test_examples.py)
    ("sweep", "smpemu.study.sweep"),
    ("stress", "smpemu.search.stress_cmd"),
    ("replay", "smpemu.search.replay_cmd"),
    ("check", "smpemu.search.check_cmd"),
    ("verdicts", "smpemu.search.verdicts"),
)


def _register_extensions() -> None:
    """Each extension registers its command; one that fails to import does not
    take the others with it, and its command stays, saying why it cannot run."""
    import importlib

    for name, module in EXTENSIONS:
        try:
            register = importlib.import_module(module).register
        except ImportError as e:
            _unavailable(name, module, e)
            continue
        register(app, out=out, err=err, guard=_guard)


def _unavailable(name: str, module: str, e: ImportError) -> None:
    why = f"{module} failed to import ({type(e).__name__}: {e})"

    @app.command(name, help=f"Unavailable: {why}.",
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def unavailable():
        err.print(f"smpemu {name}: unavailable: {why}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERNAL)


_register_extensions()


@app.command(epilog=examples("smpemu version\nsmpemu --version"))
def version():
    """Print the version."""
    out.print(__version__)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C does: every finally (object unlinking) runs
    raise SystemExit(143)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # an internal failure: say so, exit 1
        err.print(f"smpemu: internal error: {type(e).__name__}: {e}", markup=False)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
