"""Forked worker processes for the explorer, and a parent that never waits on them unbounded.

Why it exists: ``smpemu check --jobs N`` shares a level's work items among
forked processes, and ``multiprocessing.Pool`` could hang the run for ever
(issue 16): its workers share one task queue whose lock ``terminate()``
takes and keeps, then it joins the workers with no bound, so a worker that
does not die of SIGTERM (it had inherited the command's SIGTERM handler)
hangs it; a killed worker is silently replaced and its task's result never
comes; a stopped one makes the join wait until it is continued.

Here each worker has its own two pipes (tasks in, results out) and shares
nothing else: no lock another process can hold.  The parent's one blocking
wait (``WorkerPool._wait``) is a select, at most ``TICK_S`` long, on the
result pipes, the task pipes it still has bytes to write to (non-blocking:
a stopped worker cannot block the parent in a write either) and the
processes' sentinels.  Between two waits ``imap`` checks for a signal
(``interrupted``), a dead worker, a worker stopped for ``STOPPED_GRACE_S``
and the deadline.  Results come back in task order; a task whose result
did not come is reported as lost (``None``), and ``failure`` (a worker, by
pid, and what happened to it) or ``interrupted`` says why.  Shutdown is
SIGCONT + SIGKILL and a join bounded by ``KILL_WAIT_S``.

Workers ignore SIGINT (a terminal's ^C reaches the whole process group: the
parent handles it), take SIGTERM's default action (they die, and the parent
reports it), and die with the parent (PR_SET_PDEATHSIG).  The parent blocks
both signals while it forks, so that no handler of its own ever runs in a
worker.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import selectors
import signal
import struct
import time

from smpemu.harness.worker import die_with_parent

TICK_S = 0.1  # the longest single wait: how soon a signal, a death or the deadline is acted on
STOPPED_GRACE_S = 2.0  # a worker stopped (SIGSTOP) this long is given up
STOP_POLL_S = 0.25  # how often the workers' states are read (/proc)
ANSWER_GRACE_S = 3.0  # after the deadline, for the workers' own timeouts to come back
KILL_WAIT_S = 2.0  # shutdown: how long the killed workers are waited for, in all
_HEADER = struct.Struct("<Q")  # a message: its length, then its pickle
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _Worker:
    __slots__ = ("proc", "pid", "ps", "rfd", "wfd", "inbuf", "out", "task", "stopped_since")

    def __init__(self, proc, rfd, wfd):
        import psutil

        self.proc = proc
        self.pid = proc.pid
        self.ps = psutil.Process(proc.pid)
        self.rfd = rfd  # results, from the worker (non-blocking; -1 once closed)
        self.wfd = wfd  # tasks, to the worker (non-blocking; -1 once closed)
        self.inbuf = bytearray()
        self.out = memoryview(b"")  # the bytes of its task still to write
        self.task = None  # the index of the task it runs
        self.stopped_since = None


class WorkerPool:
    """``n`` processes forked from this one, each running ``fn(task)`` for the
    tasks ``imap`` sends it, one at a time (``fn`` and what it uses are
    inherited through fork; tasks and results are pickled).  ``close()``
    ends them, however the run ended."""

    def __init__(self, n: int, fn, name: str = "smpemu-worker"):
        self.failure: str | None = None  # which worker died or stopped: its tasks were lost
        self.interrupted: str | None = None  # the signal that stopped the last imap
        self._workers: list[_Worker] = []
        self._next_poll = 0.0
        ctx = multiprocessing.get_context("fork")
        parent = os.getpid()
        mine: list[int] = []  # the parent's pipe ends: a worker closes them
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # pairs with _serve's reset
        try:
            try:
                for i in range(n):
                    task_r, task_w = os.pipe()
                    res_r, res_w = os.pipe()
                    mine += [task_w, res_r]
                    p = ctx.Process(target=_serve, name=f"{name}{i}", daemon=True,
                                    args=(fn, task_r, res_w, list(mine), parent, held, f"{name}{i}"))
                    try:
                        p.start()
                    finally:
                        os.close(task_r)
                        os.close(res_w)
                    os.set_blocking(task_w, False)
                    os.set_blocking(res_r, False)
                    self._workers.append(_Worker(p, res_r, task_w))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a signal held meanwhile is handled here
        except BaseException:  # ^C without a handler of ours, or a failed fork: no worker left behind
            for fd in mine[2 * len(self._workers):]:
                os.close(fd)
            self.close()
            raise

    # -- the one blocking wait ------------------------------------------------------------
    def _wait(self, timeout: float) -> list:
        """Wait at most ``timeout`` for a result, a writable task pipe or a
        worker's exit; read what came, write what fits.  Returns the
        ``(task, result)`` pairs completed."""
        done = []
        with selectors.DefaultSelector() as sel:
            for w in self._workers:
                if w.proc.exitcode is None:
                    sel.register(w.proc.sentinel, selectors.EVENT_READ, None)
                if w.rfd >= 0:
                    sel.register(w.rfd, selectors.EVENT_READ, w)
                if w.out and w.wfd >= 0:
                    sel.register(w.wfd, selectors.EVENT_WRITE, w)
            for key, ev in sel.select(timeout):
                w = key.data
                if w is None:
                    continue  # a sentinel: the exit is read by _check
                if ev & selectors.EVENT_WRITE:
                    self._write(w)
                if ev & selectors.EVENT_READ:
                    done += self._read(w)
        return done

    def _write(self, w: _Worker) -> None:
        try:
            n = os.write(w.wfd, w.out)
        except BlockingIOError:
            return
        except BrokenPipeError:  # the worker is gone: _check names it
            w.out = memoryview(b"")
            return
        w.out = w.out[n:]

    def _read(self, w: _Worker) -> list:
        try:
            data = os.read(w.rfd, 1 << 20)
        except BlockingIOError:
            return []
        if not data:  # end of file: the worker exited (_check says how)
            os.close(w.rfd)
            w.rfd = -1
            return []
        w.inbuf += data
        done = []
        while len(w.inbuf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(w.inbuf)
            if len(w.inbuf) < _HEADER.size + n:
                break
            with memoryview(w.inbuf) as m:
                ok, value = pickle.loads(m[_HEADER.size:_HEADER.size + n])
            del w.inbuf[:_HEADER.size + n]
            if not ok:
                raise value  # the task raised in the worker (e.g. a UsageError): as it would here
            done.append((w.task, value))
            w.task = None
        return done

    def _send(self, w: _Worker, i: int, task) -> None:
        data = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        w.task = i
        w.out = memoryview(_HEADER.pack(len(data)) + data)
        self._write(w)

    # -- health ---------------------------------------------------------------------------
    def _check(self, interrupted) -> bool:
        """Set ``interrupted`` or ``failure`` if the work must stop; True then."""
        sig = interrupted() if interrupted is not None else None
        if sig:
            self.interrupted = sig
            return True
        bad = []
        for w in self._workers:
            code = w.proc.exitcode  # reaps it
            if code is not None:
                how = f"died ({signal.Signals(-code).name})" if code < 0 else f"exited (code {code})"
                bad.append(f"worker pid {w.pid} {how}")
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + STOP_POLL_S
            bad += self._stopped(now)
        if bad:
            self.failure = "; ".join(bad)
        return bool(bad)

    def _stopped(self, now: float) -> list:
        import psutil

        out = []
        for w in self._workers:
            try:
                stopped = w.proc.exitcode is None and w.ps.status() == psutil.STATUS_STOPPED
            except psutil.Error:
                continue  # gone: its exit code says so
            if not stopped:
                w.stopped_since = None
                continue
            if w.stopped_since is None:
                w.stopped_since = now
            elif now - w.stopped_since >= STOPPED_GRACE_S:
                out.append(f"worker pid {w.pid} was stopped for {STOPPED_GRACE_S:g} s")
        return out

    # -- the tasks --------------------------------------------------------------------------
    def imap(self, tasks, deadline: float | None = None, interrupted=None):
        """Run ``tasks``; yield each one's result in task order, or ``None``
        for a task whose result did not come.  ``deadline``
        (``time.perf_counter()``): no task is sent after it, and a result not
        back ``ANSWER_GRACE_S`` later is lost.  ``interrupted()``: the name of
        a signal that arrived (stop now), else None.  A worker that dies or
        stays stopped ends the work: the tasks not done are lost, and
        ``failure`` says which worker and what happened."""
        tasks = list(tasks)
        results: dict = {}
        nxt = sent = 0
        self.interrupted = None
        stop = self.failure is not None or self._check(interrupted)
        while nxt < len(tasks) and not stop:
            if nxt in results:
                yield results.pop(nxt)
                nxt += 1
                continue
            now = time.perf_counter()
            past = deadline is not None and now > deadline
            for w in self._workers:
                if not past and w.task is None and sent < len(tasks):
                    self._send(w, sent, tasks[sent])
                    sent += 1
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                break  # past the deadline: the tasks not sent are not run
            if past and now > deadline + ANSWER_GRACE_S:
                self.failure = "; ".join(f"worker pid {w.pid} did not answer within {ANSWER_GRACE_S:g} s "
                                         "of the timeout" for w in busy)
                break
            results.update(self._wait(TICK_S))
            stop = self._check(interrupted)
        while nxt < len(tasks):
            yield results.pop(nxt, None)
            nxt += 1

    def close(self) -> list[int]:
        """Kill the workers (a stopped one is continued first) and reap them,
        waiting ``KILL_WAIT_S`` at most.  Returns the pids not reaped (none,
        unless the kernel could not kill one in time)."""
        for w in self._workers:
            for fd in (w.rfd, w.wfd):
                if fd >= 0:
                    os.close(fd)
            w.rfd = w.wfd = -1
            if w.proc.exitcode is None:  # not reaped: its pid is still its own
                for s in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(w.pid, s)
                    except ProcessLookupError:
                        pass
        end = time.monotonic() + KILL_WAIT_S
        for w in self._workers:
            w.proc.join(max(0.0, end - time.monotonic()))
        left = [w.pid for w in self._workers if w.proc.exitcode is None]
        self._workers = []
        return left


# -- the worker's side ------------------------------------------------------------------------
def _serve(fn, task_fd: int, result_fd: int, parent_fds: list, parent: int, mask, name: str) -> None:
    """A worker's life: run each task read from ``task_fd``, write its result to
    ``result_fd``; return (exit) when the parent closes the task pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the whole group: the parent handles it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: die, the parent reports it
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # pairs with WorkerPool.__init__'s SIG_BLOCK
    die_with_parent(name)  # no orphan workers, even if the parent is SIGKILLed
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)
    for fd in parent_fds:
        os.close(fd)
    while True:
        head = _read_exactly(task_fd, _HEADER.size)
        if head is None:
            return
        task = pickle.loads(_read_exactly(task_fd, _HEADER.unpack(head)[0]))
        try:
            out = (True, fn(task))
        except Exception as e:  # noqa: BLE001 - re-raised in the parent
            out = (False, e)
        try:
            data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(f"in a worker: {type(out[1]).__name__}: {out[1]} ({e})")))
        _write_all(result_fd, _HEADER.pack(len(data)))
        _write_all(result_fd, data)


def _read_exactly(fd: int, n: int):
    buf = bytearray()
    while len(buf) < n:
        data = os.read(fd, n - len(buf))
        if not data:
            if buf:
                raise EOFError("the parent closed the task pipe inside a message")
            return None
        buf += data
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    m = memoryview(data)
    while m:
        m = m[os.write(fd, m):]
