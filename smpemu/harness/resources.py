"""Named POSIX objects of a run: creation, unlinking, and cleaning of dead runs.

Why it exists: POSIX shared memory and named semaphores outlive the processes
that made them.  Every object smpemu creates is named

    /smpemu-<owner pid>-<token>-<what>

(``/dev/shm/smpemu-...`` for segments, ``/dev/shm/sem.smpemu-...`` for
semaphores), is created only by the coordinator through a ``ResourceSet``,
and is unlinked by ``ResourceSet.close()`` on every exit path.  The owner pid
in the name lets ``smpemu clean`` remove the leftovers of killed runs and
leave live runs alone.  close() is idempotent; a failure halfway through
setup unlinks what was made and re-raises.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
from dataclasses import dataclass, field

import posix_ipc

PREFIX = "smpemu-"
SHM_DIR = "/dev/shm"
_NAME_RE = re.compile(r"^(?:sem\.)?smpemu-(\d+)-([0-9a-f]+)-(.+)$")


def new_run_id() -> str:
    """``<pid>-<token>``: unique per run, carries the owner pid for clean."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


@dataclass
class ResourceSet:
    """Owns every shared object of one run (coordinator side only)."""

    run_id: str
    shms: list = field(default_factory=list)
    sems: dict = field(default_factory=dict)
    maps: list = field(default_factory=list)
    closed: bool = False

    def name(self, what: str) -> str:
        return f"/{PREFIX}{self.run_id}-{what}"

    def shm(self, what: str, size: int) -> mmap.mmap:
        """Create a segment of ``size`` bytes and map it (zero filled)."""
        seg = posix_ipc.SharedMemory(self.name(what), posix_ipc.O_CREX, size=size)
        self.shms.append(seg)
        try:
            m = mmap.mmap(seg.fd, size)
        finally:
            seg.close_fd()
        self.maps.append(m)
        return m

    def sem(self, what: str, initial: int = 0):
        s = posix_ipc.Semaphore(self.name(what), posix_ipc.O_CREX, initial_value=initial)
        self.sems[what] = s
        return s

    def unlink_all(self) -> None:
        """Unlink every name (objects stay usable by whoever has them open)."""
        for seg in self.shms:
            _quiet(seg.unlink)
        for s in self.sems.values():
            _quiet(s.unlink)

    def close(self) -> None:
        """Unlink and close everything; safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        self.unlink_all()
        for s in self.sems.values():
            _quiet(s.close)
        for m in self.maps:
            _quiet(m.close)  # fails while numpy views exist: the OS frees it at exit


def _quiet(fn) -> None:
    try:
        fn()
    except (posix_ipc.ExistentialError, BufferError, ValueError, OSError):
        pass


def list_objects() -> list[tuple[str, int]]:
    """Every smpemu object in /dev/shm as (file name, owner pid)."""
    out = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return out
    for n in names:
        m = _NAME_RE.match(n)
        if m:
            out.append((n, int(m.group(1))))
    return sorted(out)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean(dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove objects whose owner is dead.  Returns (removed, kept_live)."""
    removed, kept = [], []
    for fname, pid in list_objects():
        if pid_alive(pid) and pid != os.getpid():
            kept.append(fname)
            continue
        if not dry_run:
            try:
                if fname.startswith("sem."):
                    posix_ipc.unlink_semaphore("/" + fname[4:])
                else:
                    posix_ipc.unlink_shared_memory("/" + fname)
            except posix_ipc.ExistentialError:
                pass
        removed.append(fname)
    return removed, kept
