"""Run configuration and its validation (every user mistake -> UsageError).

Why it exists: the CLI, tests, stress and sweep all build runs; one dataclass
with one ``validate()`` keeps bad input from ever reaching the processes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import workloads
from smpemu.errors import UsageError, check_number
from smpemu.harness import pinning
from smpemu.memory.model import MODELS

STRATEGIES = ("pct", "replay")  # controlled schedules (smpemu.search.strategies)

MAX_VCPUS = 256
MAX_GUEST_PAGES = (1 << 22) - 1  # an spte holds gfn and pfn in 22 bits each (kvm/spte.py)
MAX_SECONDS = 7 * 86400.0  # a duration or timeout (finite: inf would overflow a semaphore wait)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?[bB])?\s*$")


def parse_size(text: str) -> int:
    """'64M', '1G', '65536' (bytes), '512K' -> bytes."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UsageError(f"bad size {text!r}: expected a number with an optional K, M or G suffix (e.g. 64M)")
    n = float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(n)


@dataclass
class RunConfig:
    vcpus: int = 16
    workload: str = "malloc-touch"
    policy: str = "deferred-v4"
    pin: str = "compact"
    cpus: str | None = None  # restrict to these host cores
    memory_model: str = "native"
    duration: float | None = None
    iterations: int | None = None
    guest_mem: str = "64M"
    seed: int = 1
    requests: str = "modern"
    # the mmu notifier's flush: "2009" after mmu_unlock (the seed's kernel),
    # "2012" before it (565f3be21746, 3.4); docs/timeline.md
    notifier: str = "2009"
    ack_timeout: float = 5.0
    spin_us: float = 50.0  # requesters spin this long on acks before blocking
    ipi_route: str = "direct"  # "direct" (requesters kick) or "coordinator" (it delivers kicks)
    # the old name of the host scheduler: N > 0 means --pcpus <the run's cores> when
    # oversubscribed (N itself is no longer used; kept for replay files and CSVs)
    preempt_exit: int = 0
    pcpus: int = 0  # the emulated host scheduler (harness/hostsched.py): at most this many vCPUs run (0: off)
    quantum: float = 50.0  # its time slice, ms (docs/decisions.md: why 50)
    guest_flush: str = "native"  # the guest's TLB shootdowns: native IPIs or a paravirtual flush (kvm/steal.py)
    local_flush: str = "concurrent"  # the initiator's own flush: "first" (<= 5.12) or "concurrent" (5.13+)
    swap_rate: float = 1000.0  # host reclaims per second, in total across the reclaimers
    # host processes, each running the mmu notifier's invalidate path
    # concurrently with the others (kswapd and direct reclaim); None: 2 when
    # the host reclaims, 1 when it does not, the script's host count for a
    # script (resolved by validate(), so as_dict() and replay files say it)
    reclaimers: int | None = None
    tlb_size: int = 64
    rmap_size: int = 4
    procs: int | None = None  # guest processes
    share: float = 0.05  # malloc-touch: odds a step reads a sibling thread's page
    cr3_every: int = 4  # malloc-touch: cr3 switch every N mallocs
    delays: dict = field(default_factory=dict)  # point -> (lo_us, hi_us)
    script: dict | None = None  # scripted workload (tests)
    trace_file: str | None = None  # the trace workload's input file
    json_path: str | None = None
    trace: bool = False  # record protocol events (per-process rings)
    stop_on_violation: bool = False  # end the run at the first violation (stress)
    reclaim: str = "mixed"  # host: "mixed" (freed + any page) or "freed" (just-freed pages, at once)
    # share of each reclaimer's invalidations that are range invalidations of
    # a working-set page (munmap, madvise(DONTNEED), the balloon: kvm/host.py)
    range_share: float = 0.0
    start_timeout: float = 30.0
    # controlled schedules (harness/baton.py, search/baton_loop.py, docs/schedules.md)
    schedule: str | None = None  # None: free-running; "pct" or "replay": one process at a time
    pct_depth: int = 3  # PCT's d: d - 1 priority change points per epoch
    pct_epoch: int = 4  # decisions per PCT epoch (fresh priorities and change points)
    max_decisions: int = 5000  # a scheduled run ends after this many decisions
    sched_steps: int = 8  # guest steps between two scheduling points of a vCPU
    replay: list | None = None  # schedule="replay": the recorded decisions (not in as_dict)
    controlled_drains: bool = False  # under a schedule: store buffers drain only at decisions (replay format 2)

    @property
    def guest_pages(self) -> int:
        return parse_size(self.guest_mem) // 4096

    def validate(self) -> "RunConfig":
        # imported here, not at the top: the policies pull numpy in, and the
        # CLI imports this module before it knows whether it will run anything
        from smpemu.kvm import policies

        if not isinstance(self.vcpus, int) or self.vcpus < 1:
            raise UsageError(f"--vcpus must be at least 1 (got {self.vcpus})")
        if self.vcpus > MAX_VCPUS:
            raise UsageError(f"--vcpus {self.vcpus} is too many: at most {MAX_VCPUS}")
        policies.get(self.policy)
        workloads.get(self.workload)
        if self.trace_file and self.workload != "trace":
            raise UsageError(f"--trace-file is the input of --workload trace (not {self.workload})")
        if self.memory_model not in MODELS:
            raise UsageError(f"unknown memory model {self.memory_model!r}; choose one of: {', '.join(MODELS)}")
        if self.requests not in ("modern", "2009"):
            raise UsageError(f"unknown --requests {self.requests!r}; choose modern or 2009")
        check_notifier(self.notifier)
        check_number("--range-share", self.range_share, 0.0, 1.0)
        if self.duration is not None:
            # finite: a run ends on its own (inf is refused; give a large number, or Ctrl-C)
            check_number("--duration", self.duration, 0, MAX_SECONDS, lo_open=True)
        if self.iterations is not None and self.iterations < 1:
            raise UsageError(f"--iterations must be >= 1 (got {self.iterations})")
        if self.duration is not None and self.iterations is not None:
            raise UsageError("give --duration or --iterations, not both")
        if self.duration is None and self.iterations is None:
            self.duration = 10.0
        check_number("--ack-timeout", self.ack_timeout, 0, MAX_SECONDS, lo_open=True)
        check_number("--spin-us", self.spin_us, 0, 1e6)
        if self.reclaim not in ("mixed", "freed"):
            raise UsageError(f"unknown --reclaim {self.reclaim!r}; choose mixed or freed")
        if self.ipi_route not in ("direct", "coordinator"):
            raise UsageError(f"unknown --ipi-route {self.ipi_route!r}; choose direct or coordinator")
        if not isinstance(self.preempt_exit, int) or self.preempt_exit < 0:
            raise UsageError(f"--preempt-exit must be a number of guest steps >= 0 (got {self.preempt_exit})")
        self._validate_pv()
        check_number("--swap-rate", self.swap_rate, 0, 1e7)
        self._resolve_reclaimers()
        if isinstance(self.script, dict) and self.procs is None and "procs" in self.script:
            self.procs = self.script["procs"]  # a script's guest processes (workloads/script.py validates it)
        if not 4 <= self.tlb_size <= 4096:
            raise UsageError(f"--tlb-size must be between 4 and 4096 (got {self.tlb_size})")
        if not 1 <= self.rmap_size <= 64:
            raise UsageError(f"--rmap-size must be between 1 and 64 (got {self.rmap_size})")
        pages = self.guest_pages
        if pages < 64:
            raise UsageError(f"--guest-mem {self.guest_mem} is too small: at least 256K")
        if pages > MAX_GUEST_PAGES:
            raise UsageError(f"--guest-mem {self.guest_mem} is too large: at most {MAX_GUEST_PAGES} pages of 4K "
                             f"(16G minus 4K; e.g. 16383M)")
        pinning.placement(self.vcpus, self.pin, pinning.allowed_cores(self.cpus))
        if self.json_path:
            check_writable(self.json_path, "--json")
        if self.schedule is not None:
            self._validate_schedule()
        return self

    def _validate_pv(self) -> None:
        """--pcpus, --quantum, --guest-flush, --local-flush (issue 19)."""
        from smpemu.kvm.steal import METHODS

        if not isinstance(self.pcpus, int) or isinstance(self.pcpus, bool) or not 0 <= self.pcpus <= MAX_VCPUS:
            raise UsageError(f"--pcpus must be between 0 (no host scheduler) and {MAX_VCPUS} (got {self.pcpus})")
        check_number("--quantum", self.quantum, 0.05, 10000)
        if self.guest_flush not in METHODS:
            raise UsageError(f"unknown --guest-flush {self.guest_flush!r}; choose one of: {', '.join(METHODS)}")
        if self.local_flush not in ("first", "concurrent"):
            raise UsageError(f"unknown --local-flush {self.local_flush!r}; choose first or concurrent")
        if self.pcpus and self.script is not None:
            raise UsageError("--pcpus does not mix with --workload script: a script preempts its vCPUs itself "
                             "(the preempt op)")
        if self.preempt_exit and not self.pcpus and self.schedule is None and self.script is None:
            # --preempt-exit is subsumed by the host scheduler (docs/decisions.md): as
            # before, it acts only when the vCPUs outnumber the cores they run on
            cores = {c for p in pinning.placement(self.vcpus, self.pin, pinning.allowed_cores(self.cpus))
                     for c in p}
            if self.vcpus > len(cores):
                self.pcpus = len(cores)

    @property
    def host_scheduled(self) -> bool:
        """Does the emulated host scheduler run?  (Not under a controlled
        schedule, whose clock is decisions, not time.)"""
        return self.pcpus > 0 and self.schedule is None

    @property
    def guest_shootdowns(self) -> bool:
        """Does the guest shoot TLBs down (or a script preempt vCPUs)?"""
        if self.workload == "guest-shootdown":
            return True
        if isinstance(self.script, dict):
            from workloads.script import uses_pv

            return uses_pv(self.script)
        return False

    def reclaims(self) -> bool:
        """Does the host reclaim on its own (not a script)?"""
        return self.script is None and (self.swap_rate > 0 or self.reclaim == "freed")

    def _resolve_reclaimers(self) -> None:
        need = 1
        if self.script is not None:
            from workloads.script import host_count

            need = host_count(self.script)
        if self.reclaimers is None:
            self.reclaimers = max(need, 2 if self.reclaims() else 1)
        if not isinstance(self.reclaimers, int) or isinstance(self.reclaimers, bool) or not 1 <= self.reclaimers <= 64:
            raise UsageError(f"--reclaimers must be between 1 and 64 (got {self.reclaimers})")
        if self.reclaimers < need:
            raise UsageError(f"--reclaimers {self.reclaimers}: the script has {need} host processes")

    def _validate_schedule(self) -> None:
        if self.schedule not in STRATEGIES:
            raise UsageError(f"unknown --schedule {self.schedule!r}; choose pct")
        if not isinstance(self.pct_depth, int) or not 1 <= self.pct_depth <= 64:
            raise UsageError(f"--pct-depth must be between 1 and 64 (got {self.pct_depth})")
        if not isinstance(self.pct_epoch, int) or not 1 <= self.pct_epoch <= 10**8:
            raise UsageError(f"--pct-epoch must be between 1 and 100000000 (got {self.pct_epoch})")
        if not isinstance(self.max_decisions, int) or not 1 <= self.max_decisions <= 10**8:
            raise UsageError(f"--max-decisions must be between 1 and 100000000 (got {self.max_decisions})")
        if not isinstance(self.sched_steps, int) or not 1 <= self.sched_steps <= 1 << 20:
            raise UsageError(f"--sched-steps must be between 1 and 1048576 (got {self.sched_steps})")
        if self.schedule == "replay" and not isinstance(self.replay, list):
            raise UsageError("schedule replay needs the recorded decisions (smpemu replay FILE)")

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("script", None)
        d.pop("replay", None)
        return d


NOTIFIERS = ("2009", "2012")


def check_notifier(notifier) -> None:
    if notifier not in NOTIFIERS:
        raise UsageError(f"unknown --notifier {notifier!r}; choose 2009 (flush after mmu_unlock) or 2012 "
                         f"(flush before it)")


def check_writable(path: str, opt: str) -> None:
    """Fail before the run, not after it, if an output path cannot be written
    (harness/outputs.py, the one place output files are checked and written)."""
    from smpemu.harness.outputs import check_new_file

    check_new_file(path, opt)
