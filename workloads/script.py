"""script: each vCPU (and each host process) runs a fixed list of operations.

For deterministic interleavings in tests and for users' own scenarios: the
processes are still real and run in parallel, but they meet at named events
(POSIX semaphores) and can pause at named protocol points.  A script is a
dict ``{"events": [...], "cpus": {"0": [op, ...], ...}, "host": [op, ...],
"timeout": seconds}``.  ``"host"`` is what reclaimer 0 runs; a scenario with
several reclaimers gives ``"hosts": {"0": [op, ...], "1": [op, ...]}``
instead (or besides ``"host"``, then without a "0").  Page operands are
``["u", v, i]``: page i of vCPU v's malloc range.  Ops:

    ["touch", PAGE, write]     guest access with demand paging
    ["map", PAGE]              guest maps a fresh page-cache frame at PAGE (no zeroing)
    ["access", PAGE, write]    raw access through TLB / shadow table (no #PF handling)
    ["unmap", PAGE]            guest munmap of one page (pte clear, invlpg, free)
    ["invlpg", PAGE]           invlpg only
    ["pt_write", table]        guest write to the first page-table page of a process
    ["invlpg_pt", table]       invlpg of the kernel mapping of that page-table page
    ["cr3", table]             cr3 write (mmu_sync_children of that process)
    ["arm", POINT, paused, resume]  pause at POINT next time: post paused, wait resume
    ["signal", EVT]            post an event
    ["wait", EVT]              halt (outside guest mode) until the event
    ["spin", EVT]              stay in guest mode, taking interrupts, until the event
    ["busy", EVT]              stay in guest mode *not* taking interrupts until the event
                               (a vCPU preempted in guest mode, or with interrupts off)
    ["wait_halted", V]         until vCPU V is halted (outside guest mode, blocked): a signal
                               posted before a halt cannot say that the halt has happened
    ["flush"]                  kvm_flush_remote_tlbs() under the run's policy
    ["shootdown", PAGE]        guest munmap of PAGE with a TLB shootdown across the vCPUs of its
                               process (--guest-flush: IPIs or the PV flush; kvm/shootdown.py),
                               then the frame is freed (guest-level oracle)
    ["preempt", OUT, IN]       the host preempts this vCPU: it leaves guest mode, is scheduled
                               out (steal time: preempted), posts OUT, stays off its pCPU until
                               IN is posted, is scheduled in (KVM_REQ_STEAL_UPDATE); it enters
                               guest mode again (record_steal_time) at its next op, unless that
                               is another preempt (preempted again before it entered)
    ["write_pte", PAGE, TARGET]  the guest writes PAGE's pte and does not invlpg: in an
                               unsync page table this traps nothing, KVM sees it at the next
                               sync (FNAME(sync_page)).  TARGET: null (pte cleared), a page
                               (now maps the frame that page maps), ["pt", P] (now maps guest
                               process P's first page-table frame: a frame reused as a page table)
    host only: ["reclaim_freed", v]  host frees the last frame vCPU v freed
               ["reclaim", PAGE]     invalidate_page (kswapd) and free of the frame PAGE maps now
               ["invalidate_range", PAGE]  invalidate_range_start/end over that frame's hva and
                                     its free (munmap, madvise(DONTNEED), the balloon): no
                                     host pte lock, so it may overlap a "reclaim" of the page
               ["optional", OP]      OP (a reclaim_freed or a wait) may wait for ever: see below

Keys besides the ops: ``"dirty": N`` starts the policy's dirty flag or
counter at N (a state an earlier, unscripted bump left); ``"procs": P``
runs the guest with P processes (``smpemu check``'s scenarios run 1 by
default; ``["u", v, i]`` pages are in vCPU v's process, v % P).

``reclaim_freed`` with nothing freed yet waits (under a schedule or in
``smpemu check``: parks) until vCPU v frees a page.  Any wait that does not
end fails the run: after the script's timeout when free-running, as a
deadlock under a schedule or in ``smpemu check`` (nobody can run and this
host has not finished: a run of a script ends when every vCPU *and* every
host has run its list, ``HOSTS_FINISH``).  A host's wait that may
legitimately never end (a reclaim of a page the scenario may never free)
says so: ``["optional", ["reclaim_freed", 1]]``.  When it does not end (at
the timeout; under a schedule, when nobody else can run any more) the host
skips it and every op after it, and the run reports what was skipped
(``skipped`` in the result: ``run``, the baton, ``smpemu check``).
"""

from __future__ import annotations

import json

from smpemu.errors import AckTimeout, UsageError, check_number, read_json_object
from smpemu.kvm.layout import C, proc_name
from smpemu.kvm.points import POINT_NAMES
from smpemu.kvm.waits import try_take

CPU_OPS = {"touch", "map", "access", "unmap", "invlpg", "pt_write", "invlpg_pt", "cr3", "arm", "signal", "wait",
           "spin", "busy", "flush", "wait_halted", "write_pte", "shootdown", "preempt"}
PV_OPS = {"shootdown", "preempt"}  # they need steal time and the guest's shootdowns (issue 19)
HOST_OPS = {"signal", "wait", "flush", "reclaim_freed", "reclaim", "invalidate_range", "arm", "optional"}
OPTIONAL_OPS = {"reclaim_freed", "wait"}  # the host waits ["optional", OP] may wrap


HOSTS_FINISH = True  # the run ends when every vCPU and every host has run its list (workloads.hosts_finish)

KEYS = {"events", "cpus", "host", "hosts", "timeout", "comment", "setup", "bound",  # setup, bound: smpemu check's
        "dirty", "procs"}
MAX_DIRTY = 1 << 30
MAX_PROCS = 8


def load(path: str) -> dict:
    """Read a script file (JSON); every problem is one UsageError line (its
    numbers here, naming the file and the key)."""
    doc = read_json_object(path, "--script")
    check_timeout(doc, f"--script {path}: ")
    return doc


MAX_TIMEOUT = 7 * 86400.0  # seconds (as harness/config.py's MAX_SECONDS)


def check_timeout(script: dict, where: str) -> None:
    """"timeout": seconds > 0 and finite (it bounds every wait of the script)."""
    check_number('"timeout"', script.get("timeout", 20), 0, MAX_TIMEOUT, lo_open=True, where=where)


def host_scripts(script: dict) -> dict:
    """{reclaimer index: ops} of a script (``"host"`` is reclaimer 0)."""
    hosts = script.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise UsageError('script: "hosts" must be an object {"0": [op, ...], "1": [...]}')
    out = {}
    for k, ops in hosts.items():
        if not (isinstance(k, str) and k.isdigit() and int(k) < 64):
            raise UsageError(f"script: hosts key {k!r} is not a reclaimer number (0..63)")
        out[int(k)] = ops
    if "host" in script:
        if 0 in out:
            raise UsageError('script: give reclaimer 0\'s ops as "host" or as "hosts": {"0": ...}, not both')
        out[0] = script["host"]
    return out


def host_count(script) -> int:
    """How many host processes a script needs (at least 1)."""
    if not isinstance(script, dict):
        return 1
    return max(host_scripts(script), default=0) + 1


def uses_pv(script: dict) -> bool:
    """Does any vCPU of the script shoot TLBs down or get preempted?"""
    cpus = script.get("cpus") if isinstance(script, dict) else None
    if not isinstance(cpus, dict):
        return False
    return any(isinstance(op, list) and op and op[0] in PV_OPS
               for ops in cpus.values() if isinstance(ops, list) for op in ops)


def validate(script: dict, n_vcpus: int, guest=None) -> list[str]:
    """Check a script's shape (page and table operands against ``guest``,
    a GuestLayout, when given); returns its event names."""
    if not isinstance(script, dict):
        raise UsageError("script: expected a JSON object")
    unknown = sorted(set(script) - KEYS)
    if unknown:
        raise UsageError(f"script: unknown key(s) {', '.join(map(repr, unknown))}; expected {sorted(KEYS)}")
    events = script.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        raise UsageError('script: "events" must be a list of event names')
    if len(set(events)) != len(events):
        raise UsageError('script: "events" names an event twice')
    events = list(events)
    cpus = script.get("cpus", {})
    if not isinstance(cpus, dict):
        raise UsageError('script: "cpus" must be an object {"0": [op, ...], ...}')
    check_timeout(script, "script: ")
    d = script.get("dirty", 0)
    if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= MAX_DIRTY:
        raise UsageError(f'script: "dirty" is the starting value of the dirty flag or counter, an integer '
                         f'0..{MAX_DIRTY} (got {d!r})')
    p = script.get("procs", 1)
    if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= MAX_PROCS:
        raise UsageError(f'script: "procs" is the number of guest processes, 1..{MAX_PROCS} (got {p!r})')
    if guest is not None and "procs" in script and guest.n_procs != p:
        raise UsageError(f'script: "procs" is {p}, the run has {guest.n_procs} guest process(es)')
    hosts = host_scripts(script)
    actors = [(f"cpu {k}", k, ops, CPU_OPS) for k, ops in cpus.items()]
    actors += [("host" if h == 0 and "host" in script else f"host {h}", None, ops, HOST_OPS)
               for h, ops in sorted(hosts.items())]
    for who, k, ops, allowed in actors:
        if k is not None and not (str(k).isdigit() and int(k) < n_vcpus):
            raise UsageError(f"script: cpu {k!r} is not a vCPU of this run (0..{n_vcpus - 1})")
        if not isinstance(ops, list):
            raise UsageError(f"script: {who}: expected a list of ops")
        for n, op in enumerate(ops):
            if not isinstance(op, list) or not op or op[0] not in allowed:
                raise UsageError(f"script: {who} op {n}: {op!r} is not one of {sorted(allowed)}")
            _check_op(who, n, op, events, n_vcpus, guest)
            if op[0] == "wait_halted" and not (len(op) == 2 and isinstance(op[1], int) and 0 <= op[1] < n_vcpus
                                               and str(op[1]) != str(k)):
                raise UsageError(f"script: {who} op {n}: wait_halted needs another vCPU's number (0..{n_vcpus - 1})")
    return events


_PAGE_OPS = {"touch", "map", "access", "unmap", "invlpg", "reclaim", "invalidate_range", "write_pte", "shootdown"}
_EVENT_OPS = {"signal", "wait", "spin", "busy"}


def _check_page(where, page, n_vcpus, guest) -> None:
    if not (isinstance(page, list) and len(page) == 3 and page[0] == "u"
            and all(isinstance(x, int) and not isinstance(x, bool) for x in page[1:])
            and 0 <= page[1] < n_vcpus and page[2] >= 0):
        raise UsageError(f"{where}: expected a page [\"u\", vcpu 0..{n_vcpus - 1}, index >= 0]")
    if guest is not None and page[2] >= guest.pages_per_thread:
        raise UsageError(f"{where}: page index {page[2]} is past vCPU {page[1]}'s "
                         f"{guest.pages_per_thread} pages")


def _check_proc(where, p, guest) -> None:
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise UsageError(f"{where}: expected a guest process number >= 1")
    if guest is not None and not 1 <= p <= guest.n_procs:
        raise UsageError(f"{where}: guest process {p} does not exist (1..{guest.n_procs})")


def _check_op(who, n, op, events, n_vcpus, guest) -> None:
    """Operands of one op: one clear line for whatever is wrong."""
    kind = op[0]
    where = f"script: {who} op {n} {op!r}"
    if kind in _PAGE_OPS:
        _check_page(where, op[1] if len(op) > 1 else None, n_vcpus, guest)
        if kind == "write_pte":
            t = op[2] if len(op) == 3 else "missing"
            if isinstance(t, list) and t[:1] == ["pt"]:
                if len(t) != 2:
                    raise UsageError(f'{where}: expected ["pt", guest process >= 1]')
                _check_proc(where, t[1], guest)
            elif t is not None:
                if not isinstance(t, list):
                    raise UsageError(f'{where}: expected ["write_pte", PAGE, TARGET], TARGET null (cleared), '
                                     f'a page, or ["pt", P] (process P\'s page-table frame)')
                _check_page(where, t, n_vcpus, guest)
    elif kind in _EVENT_OPS:
        if len(op) != 2 or op[1] not in events:
            raise UsageError(f"{where}: unknown event {op[1] if len(op) > 1 else None!r} (declare it in \"events\")")
    elif kind == "preempt":
        if len(op) != 3 or any(e not in events for e in op[1:]):
            raise UsageError(f"{where}: expected [\"preempt\", OUT_EVENT, IN_EVENT] (declare both in \"events\")")
    elif kind == "arm":
        if len(op) != 4 or op[1] not in POINT_NAMES:
            raise UsageError(f"{where}: expected [\"arm\", POINT, paused_event, resume_event], POINT one of "
                             f"{', '.join(POINT_NAMES)}")
        for e in op[2:]:
            if e not in events:
                raise UsageError(f"{where}: unknown event {e!r} (declare it in \"events\")")
    elif kind in ("pt_write", "invlpg_pt", "cr3"):
        _check_proc(where, op[1] if len(op) == 2 else None, guest)
    elif kind == "reclaim_freed":
        if len(op) != 2 or not isinstance(op[1], int) or isinstance(op[1], bool) or not 0 <= op[1] < n_vcpus:
            raise UsageError(f"{where}: expected a vCPU number 0..{n_vcpus - 1}")
    elif kind == "optional":
        if len(op) != 2 or not isinstance(op[1], list) or not op[1] or op[1][0] not in OPTIONAL_OPS:
            raise UsageError(f"{where}: expected [\"optional\", OP], OP one of {sorted(OPTIONAL_OPS)} "
                             f"(a wait that may never end)")
        _check_op(who, n, op[1], events, n_vcpus, guest)


def _slot(guest_layout, page) -> int:
    _, v, i = page
    return guest_layout.user_range(v)[i]


def _evt(spec, name):
    return spec.sems[f"evt-{name}"]


def _wait_evt(ctx, point, sem, timeout, name, watch=(), poll=None, slice_s=0.002, optional=False) -> bool:
    """Until the event ``name`` is posted (and take it), bounded by ``timeout``;
    False if an ``optional`` wait did not end."""
    if ctx.waits.wait_until(ctx, point, lambda took: took or try_take(sem), watch=watch, sem=sem,
                            poll=poll, timeout=timeout, slice_s=slice_s, optional=optional):
        return True
    if optional:
        return False
    raise AckTimeout(f"{_who(ctx)}: script event {name!r} not posted within {timeout} s")


def _who(ctx) -> str:
    return proc_name(ctx.pid_index, ctx.n_vcpus, ctx.n_hosts)


def describe_op(script: dict, n_vcpus: int, n_hosts: int, p: int, k: int) -> str:
    """'host0 op 1 ["optional", ["reclaim_freed", 0]]': process p's op k."""
    if p < n_vcpus:
        ops = script.get("cpus", {}).get(str(p), [])
    else:
        ops = host_scripts(script).get(p - n_vcpus, [])
    return f"{proc_name(p, n_vcpus, n_hosts)} op {k} " + (json.dumps(ops[k]) if 0 <= k < len(ops) else "(none)")


def run(cpu, guest, rng, cfg) -> None:
    spec = cpu.spec
    ctx = cpu.ctx
    L = guest.L
    timeout = float(cfg.script.get("timeout", 20))
    ops = cfg.script.get("cpus", {}).get(str(cpu.me), [])
    preempted = False  # scheduled out by a preempt op, not yet back in guest mode
    for i, op in enumerate(ops):
        ctx.op = i  # which op we are at (smpemu check's setup; the reports of a deadlock)
        kind = op[0]
        if preempted and kind != "preempt":
            cpu.enter_guest()  # vcpu_enter_guest: record_steal_time first
            preempted = False
        if kind == "touch":
            guest.touch(_slot(L, op[1]), bool(op[2]) if len(op) > 2 else False)
        elif kind == "map":
            guest.map_page(_slot(L, op[1]), zero=False)
        elif kind == "access":
            cpu.access(_slot(L, op[1]), bool(op[2]) if len(op) > 2 else False)
        elif kind == "unmap":
            guest.unmap(_slot(L, op[1]))
        elif kind == "write_pte":
            t = op[2]
            if t is None:
                gfn = -1
            elif t[0] == "pt":
                gfn = L.pt_gfns_of_table(t[1])[0]
            else:
                gfn = guest.gfn_at(_slot(L, t))
            guest.set_gpte(_slot(L, op[1]), gfn)
        elif kind == "invlpg":
            cpu.invlpg(_slot(L, op[1]))
        elif kind == "pt_write":
            guest.touch(L.pt_slot(L.pt_gfns_of_table(op[1])[0]), True)
        elif kind == "invlpg_pt":
            cpu.invlpg(L.pt_slot(L.pt_gfns_of_table(op[1])[0]))
        elif kind == "cr3":
            cpu.write_cr3(op[1], L.pt_gfns_of_table(op[1]))
        elif kind == "arm":
            ctx.points.arm(op[1], _evt(spec, op[2]), _evt(spec, op[3]), timeout)
            if op[1] == "tlb.fill":
                cpu.fill_point = True  # the walk reaches the point only when asked to
        elif kind == "signal":
            ctx.mm.drain()  # our stores are visible before the other side runs
            _evt(spec, op[1]).release()
        elif kind == "wait":
            if not cpu.halt(timeout, _evt(spec, op[1])):
                raise AckTimeout(f"cpu {cpu.me}: script event {op[1]!r} not posted within {timeout} s")
        elif kind == "spin":  # in guest mode, taking interrupts: a spinning guest
            def interrupts():
                if cpu.kicked():
                    cpu.take_interrupt()

            _wait_evt(ctx, "script.spin", _evt(spec, op[1]), timeout, op[1], watch=(cpu.a_mode,),
                      poll=interrupts, slice_s=0)
        elif kind == "busy":  # in guest mode, not taking interrupts
            _wait_evt(ctx, "script.busy", _evt(spec, op[1]), timeout, op[1], slice_s=0.001)
        elif kind == "flush":
            cpu.exit_guest()
            ctx.policy.flush_remote(ctx)
            cpu.enter_guest()
        elif kind == "shootdown":
            cpu.pv.shootdowns.munmap(_slot(L, op[1]))
        elif kind == "preempt":
            # the host scheduler's two calls (kvm/steal.py), at a point where
            # Linux can preempt a vCPU thread: after an exit from guest mode
            cpu.exit_guest()
            cpu.pv.steal.sched_out()
            ctx.mm.drain()
            _evt(spec, op[1]).release()
            _wait_evt(ctx, "sched.preempted", _evt(spec, op[2]), timeout, op[2], poll=ctx.exit_poll)
            cpu.pv.steal.sched_in()
            preempted = True
        elif kind == "wait_halted":  # until vCPU v is halted (outside guest mode)
            a_halted = ctx.a_halted[int(op[1])]
            # pairs with the store of halted (then mb()) in vcpu.halt(), which
            # follows its exit from guest mode: halted seen => outside guest mode
            if not ctx.waits.wait_until(ctx, "script.wait", lambda took: bool(ctx.mm.load(a_halted)),
                                        watch=(a_halted,), timeout=timeout, slice_s=0.001):
                raise AckTimeout(f"cpu {cpu.me}: vcpu {op[1]} did not halt within {timeout} s")
    ctx.op = len(ops)

def run_host(ctx, mmu, spec, host: int | None = None) -> None:
    """Host process ``host`` (default: this context's reclaimer index, 0 for
    the only host) runs its op list."""
    if host is None:
        host = max(getattr(ctx, "host_index", 0), 0)
    cfg = spec.cfg
    L = spec.guest
    timeout = float(cfg.script.get("timeout", 20))
    W = ctx.W
    lay = ctx.arena.layout
    hosts = host_scripts(cfg.script)
    ops = hosts.get(host, [])
    for i, op in enumerate(ops):
        ctx.op = i
        kind = op[0]
        optional = kind == "optional"
        if optional:  # a wait that may never end: if it does not, skip it and the rest
            op = op[1]
            kind = op[0]
        if kind == "signal":
            ctx.mm.drain()
            _evt(spec, op[1]).release()
        elif kind == "wait":
            ctx.mm.drain()
            if not _wait_evt(ctx, "script.wait", _evt(spec, op[1]), timeout, op[1], watch=ctx.poll_words,
                             poll=ctx.exit_poll, optional=optional):
                ctx.counters[C["skipped_op"]] = i + 1
                return
        elif kind == "flush":
            ctx.policy.flush_remote(ctx)
        elif kind == "arm":
            ctx.points.arm(op[1], _evt(spec, op[2]), _evt(spec, op[3]), timeout)
        elif kind == "reclaim_freed":
            v = op[1]
            # word reads (not numpy views): an explorer sees what the host read
            a_head = lay["freed_head"].addr(v, 0)
            if not ctx.waits.wait_until(ctx, "host.idle", lambda took: W[a_head] > 0, watch=(a_head,),
                                        timeout=timeout, poll=ctx.exit_poll, optional=optional):
                if optional:
                    ctx.counters[C["skipped_op"]] = i + 1
                    return
                raise AckTimeout(f"script: {_who(ctx)} reclaim_freed {v}: vCPU {v} freed nothing within {timeout} s")
            h = W[a_head]
            ring = lay["freed_ring"]
            mmu.host_invalidate(W[ring.addr(v, (h - 1) % ring.shape[1])])
        elif kind in ("reclaim", "invalidate_range"):
            gfn = W[lay["gpte"].offset + _slot(L, op[1])] - 1
            if gfn >= 0:
                (mmu.host_invalidate if kind == "reclaim" else mmu.host_invalidate_range)(gfn)
    ctx.op = len(ops)
