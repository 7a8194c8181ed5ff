"""The shared-memory arena mechanism: named int64 fields over one buffer.

Why it exists: every word that processes share (protocol words, counters,
rings) is an index into one int64 buffer, so the memory-model layer can
buffer and reorder any of them.  This module knows nothing of what the fields
mean: a user (the KVM data layout in ``smpemu.kvm.layout``, the litmus
runner) lists its fields; ``ArenaLayout`` gives each an offset on its own
cache line and ``Arena`` views a mapped buffer through it.  Hot scalar
accesses go through ``Arena.words`` (a memoryview, ~60 ns); vector work
(oracle scans, stats) uses the numpy view of a field.

Imports nothing of smpemu's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

LINE = 8  # int64 words per 64-byte cache line


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # in words
    shape: tuple
    atomic: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def addr(self, *idx: int) -> int:
        """Word index of element ``idx`` (row-major)."""
        off = self.offset
        for i, s in zip(idx, self._strides):
            off += i * s
        return off

    @cached_property
    def _strides(self) -> tuple:
        """Words between consecutive indices of each dimension (row-major)."""
        out = []
        s = 1
        for n in reversed(self.shape):
            out.append(s)
            s *= n
        return tuple(reversed(out))


class ArenaLayout:
    """Offsets of every field: ``specs`` is a list of (name, shape, atomic);
    ``extra_atomic`` are single atomic words inside non-atomic fields."""

    def __init__(self, specs, extra_atomic=()):
        self.fields: dict[str, Field] = {}
        off = 0
        for name, shape, atomic in specs:
            off = (off + LINE - 1) // LINE * LINE  # every field starts on a line
            self.fields[name] = Field(name, off, shape, atomic)
            off += int(np.prod(shape))
        self.n_words = (off + LINE - 1) // LINE * LINE
        # atomic words: a set, so that ``is_atomic`` (called on every
        # protocol store) is one C call
        atomic = set(extra_atomic)
        for f in self.fields.values():
            if f.atomic:
                atomic.update(range(f.offset, f.offset + f.size))
        self.atomic_words = frozenset(atomic)
        self.is_atomic = self.atomic_words.__contains__

    @property
    def n_bytes(self) -> int:
        return self.n_words * 8

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]


class Arena:
    """Views over the mapped arena: ``words`` for scalars, numpy per field."""

    def __init__(self, layout: ArenaLayout, buf):
        self.layout = layout
        self.buf = buf
        self.words = memoryview(buf).cast("q")
        self._ctl: dict[int, int] = {}  # ctl_addr's memo
        flat = np.frombuffer(buf, dtype=np.int64, count=layout.n_words)
        self.np: dict[str, np.ndarray] = {}
        for name, f in layout.fields.items():
            self.np[name] = flat[f.offset:f.offset + f.size].reshape(f.shape)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["np"][name]
        except KeyError:
            raise AttributeError(name) from None

    def ctl_addr(self, which: int) -> int:
        """Address of control word ``which`` (a layout with a ``ctl`` field, one line per word)."""
        # memoised: every MMU and context asks for a few (smpemu check builds
        # them once per schedule)
        a = self._ctl.get(which)
        if a is None:
            a = self._ctl[which] = self.layout["ctl"].addr(which, 0)
        return a

    def release(self) -> None:
        """Drop our views so the mapping can be closed."""
        self.np = {}
        self.words.release()
