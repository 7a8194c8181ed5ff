"""Running the scope search: batches of scenarios, in this process, forked workers or dask.

Why it exists: search/scope.py says what the search is; this module spreads
its scenarios over ``--jobs`` forked processes (search/pool.py, the
explorer's own pool: bounded waits, lost workers reported) or over a dask
cluster (``--scheduler``: dask workers are daemonic, so, as
study/remote.py does for sweep, each batch runs in a ``python -m
smpemu.search.scope_run`` subprocess, JSON in and out).  Results are merged
in the enumeration's order, so counts and the minimal scenario are the same
however the work was split.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from smpemu.errors import UsageError
from smpemu.search.scope_types import BATCH, ScopeResult, ScopeSettings, ScopeViolation, scope_scenarios, zap_flushes
from smpemu.search.scope_enum import Scn, Start, describe, to_script


# -- one scenario --------------------------------------------------------------------------
def _scenario(s: Scn, bound: int | None = None):
    from smpemu.search.scenarios import Scenario
    from workloads.script import host_count

    script = to_script(s)
    return Scenario("scope", script, 1 + len(s.cachers), host_count(script), "a scope scenario",
                    bound if bound is not None else 1)


_PROTOS: dict = {}  # shape -> Proto: one per shape and process (world.Proto.use), of one settings
_SETUPS: dict = {}  # (shape, setup programs) -> the setup's choices
_SETTINGS: list = [None]  # the settings the caches hold Protos of (a new search's settings empty them)


def _proto(sc, st: dict):
    """A Proto running ``sc``, and its setup's choices: built once per shape
    and reused (13% of a size-3 scenario's time, measured: docs/check.md);
    what runs is the same as with a new one.  Only the current settings'
    Protos are kept (``smpemu verdicts`` runs many settings in one process)."""
    from smpemu.search.world import Proto

    args = (st["policy"], st["memory_model"], st["requests"], st["notifier"])
    if _SETTINGS[0] != args:
        _PROTOS.clear()
        _SETUPS.clear()
        _SETTINGS[0] = args
    shape = Proto.shape_of(sc, (*args, "native", "concurrent"))  # a scope scenario shoots nothing down
    proto = _PROTOS.get(shape)
    if proto is None:
        proto = _PROTOS[shape] = Proto(sc, *args)
    else:
        proto.use(sc)
    cpus, setup = sc.script["cpus"], sc.script.get("setup", {})
    # the setup's choices depend on its ops, and on whether an explored op follows them
    key = (shape, tuple((k, _tup(cpus[k][:n]), len(cpus[k]) > n) for k, n in sorted(setup.items())))
    prefix = _SETUPS.get(key)
    if prefix is None:
        prefix = _SETUPS[key] = proto.setup_prefix()
    return proto, prefix


def explore_one(s: Scn, st: dict, deadline: float | None):
    """(schedules, complete, kind, preemptions, steps) of one scenario."""
    from smpemu.search.explore import Explorer

    proto, prefix = _proto(_scenario(s), st)
    left = None if deadline is None else max(deadline - time.time(), 0.001)
    ex = Explorer(proto.world, st["bound"], timeout=left, prefix=prefix, jobs=1)
    r = ex.run()
    if r.minimal is not None:
        m = r.minimal
        return r.schedules, True, m.violation["kind"], m.bound, m.steps
    return r.schedules, r.complete, None, None, None


def explore_batch(task):
    """A work item: ``(settings dict, deadline, [(index, scn), ...])`` -> results in order."""
    st, deadline, items = task
    out = []
    for i, s in items:
        if deadline is not None and time.time() > deadline:
            out.append((i, 0, False, None, None, None))
            continue
        out.append((i, *explore_one(s, st, deadline)))
    return out


# -- JSON (dask) -----------------------------------------------------------------------------
def _tup(x):
    return tuple(_tup(y) for y in x) if isinstance(x, list) else x


def scn_from_json(d) -> Scn:
    start, v0, cachers, hosts = d
    return Scn(Start(*start), _tup(v0), _tup(cachers), _tup(hosts))


def _remote(task_json: str) -> list:
    p = subprocess.run([sys.executable, "-m", "smpemu.search.scope_run"], input=task_json,
                       capture_output=True, text=True)
    if p.returncode != 0:
        from smpemu.errors import SmpemuError

        raise SmpemuError(f"remote scope batch failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return [tuple(r) for r in json.loads(p.stdout)]


def _main() -> None:
    st, deadline, items = json.loads(sys.stdin.read())
    res = explore_batch((st, deadline, [(i, scn_from_json(s)) for i, s in items]))
    json.dump(res, sys.stdout)


def connect(address: str):
    """A dask client (as study/remote.py's, which search/ may not import)."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError('--scheduler needs dask.distributed: pip install "dask[distributed]"') from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {address}: cannot connect: {e}") from None


# -- the sizes -----------------------------------------------------------------------------
class _Runner:
    def __init__(self, st: ScopeSettings):
        self.st = st
        self.pool = None
        self.client = None

    def batches(self, tasks):
        """Yield each task's results (a list, or None if lost), in order."""
        st = self.st
        if st.scheduler:
            if self.client is None:
                self.client = connect(st.scheduler)
            futs = [self.client.submit(_remote, json.dumps(t), pure=False) for t in tasks]
            try:
                for f in futs:
                    yield f.result()
            except BaseException:
                self.client.cancel(futs)
                raise
            return
        if st.jobs < 2 or len(tasks) < 2:
            for t in tasks:
                yield explore_batch(t)
            return
        if self.pool is None:
            from smpemu.search.pool import WorkerPool

            self.pool = WorkerPool(st.jobs, explore_batch, name="smpemu-scope")
        deadline = tasks[0][1]
        yield from self.pool.imap(tasks, None if deadline is None else
                                  time.perf_counter() + max(deadline - time.time(), 0))

    def close(self):
        if self.pool is not None:
            self.pool.close()
        if self.client is not None:
            self.client.close()


def run_sizes(st: ScopeSettings, progress=None) -> ScopeResult:
    t0 = time.time()
    deadline = None if st.timeout is None else t0 + st.timeout
    sd = {"policy": st.policy, "memory_model": st.memory_model, "requests": st.requests,
          "notifier": st.notifier, "bound": st.bound}
    res = ScopeResult(st, False, 0, 0, 0, 0.0, None)
    try:
        zf = zap_flushes(st.policy, st.memory_model, st.requests, st.notifier)
        by_size = {n: scope_scenarios(st, n, zf) for n in range(1, st.scope + 1)}
    except (KeyboardInterrupt, SystemExit) as e:
        res.interrupted = "SIGINT" if isinstance(e, KeyboardInterrupt) else "SIGTERM"
        res.incomplete_reason = f"interrupted ({res.interrupted}) while the scenarios were enumerated"
        res.elapsed = time.time() - t0
        return res
    res.total = total = sum(map(len, by_size.values()))
    runner = _Runner(st)
    done = 0
    n = n_done = base = 0
    scs = []
    try:
        for n in range(1, st.scope + 1):
            scs = by_size[n]
            ts = time.time()
            items = list(enumerate(scs))
            if st.scheduler:
                items_j = [(i, list(s)) for i, s in items]
                tasks = [json.dumps([sd, deadline, items_j[k:k + BATCH]]) for k in range(0, len(items), BATCH)]
                tasks = [json.loads(t) for t in tasks]
            else:
                tasks = [(sd, deadline, items[k:k + BATCH]) for k in range(0, len(items), BATCH)]
            found, n_done, sched, lost = [], 0, 0, 0
            base = res.scenarios  # those of the smaller sizes
            for out in runner.batches(tasks):
                if out is None:
                    lost += 1
                    continue
                for (i, schedules, complete, kind, pre, steps) in out:
                    sched += schedules
                    if complete:
                        n_done += 1
                    if kind is not None:
                        found.append((pre, steps, i, kind))
                done += len(out)
                if progress:
                    progress(res.scenarios + n_done, total, n)
            res.scenarios = base + n_done
            res.schedules += sched
            res.sizes.append({"ops": n, "scenarios": len(scs), "explored": n_done, "schedules": sched,
                              "seconds": round(time.time() - ts, 2), "violations": len(found)})
            if found:
                pre, steps, i, kind = min(found)
                res.violation = _violation(st, scs[i], n)
                res.complete = n_done == len(scs)
                if not res.complete:
                    res.incomplete_reason = _why(n, n_done, len(scs), lost, runner)
                break
            if n_done < len(scs):
                res.incomplete_reason = _why(n, n_done, len(scs), lost, runner)
                break
            res.explored_ops = n
        else:
            res.complete = True
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C, or SIGTERM (cli._terminate): say how far it got
        res.interrupted = "SIGINT" if isinstance(e, KeyboardInterrupt) else "SIGTERM"
        res.complete = False
        res.scenarios = base + n_done  # idempotent: the size's own count may be in already
        res.incomplete_reason = (f"interrupted ({res.interrupted}): {n_done:,} of the {len(scs):,} scenarios of {n} "
                                 f"operations explored (every scenario of up to {n - 1} operations complete)")
        res.violation = None  # a size not finished has no minimal scenario
    finally:
        runner.close()
    res.elapsed = time.time() - t0
    return res


def _why(n, n_done, n_all, lost, runner) -> str:
    fail = getattr(runner.pool, "failure", None)
    what = f"{fail}: " if fail else "timeout: "
    return (f"{what}{n_done:,} of the {n_all:,} scenarios of {n} operations explored (every scenario of up to "
            f"{n - 1} operations complete)")


def _violation(st: ScopeSettings, s: Scn, n: int) -> ScopeViolation:
    """The minimal scenario, explored once more here: its counterexample rendered and its replay file."""
    from types import SimpleNamespace

    from smpemu.search import counterexample
    from smpemu.search.explore import Explorer
    from smpemu.search.world import Proto

    sc = _scenario(s, st.bound)
    proto = Proto(sc, st.policy, st.memory_model, st.requests, st.notifier)
    setup = proto.setup_prefix()
    r = Explorer(proto.world, st.bound, prefix=setup, jobs=1).run()
    m = r.minimal
    cr = SimpleNamespace(res=r, counterexample=None)  # what _replay_doc reads of a check_cmd.CheckResult
    cr.counterexample = counterexample.replay_schedule(proto, m.choices, len(setup))
    doc = counterexample._replay_doc(cr, proto, sc)
    v = {k: m.violation.get(k) for k in ("kind", "vcpu", "slot", "gfn", "pfn")}
    tr = cr.counterexample.get("trace")
    cost, marked, drains = f"{m.bound} preemptions", m.bound, 0
    if tr is not None:
        from smpemu.harness import explain

        cost, (marked, drains, _) = explain.counts_text(tr), explain.counts(tr)
    return ScopeViolation(m.violation["kind"], to_script(s, st.bound), n, m.bound, m.steps, doc,
                          describe(s), cr.counterexample["rendered"], v, cost, drains, marked)


if __name__ == "__main__":
    _main()
