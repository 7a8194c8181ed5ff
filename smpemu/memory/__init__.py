"""The memory layer: the shared arena and the memory models over it.

- ``arena``: named int64 fields over one buffer (offsets, views, atomic words);
- ``model``: the ``native`` model and the interface every model implements;
- ``store_buffer``: the ``tso`` and ``relaxed`` store-buffer models.

Every protocol word of the kernel model and every litmus variable goes
through a model built by ``make_model``.  It imports nothing else of
smpemu's: the layers above are built on it.

May import: smpemu.errors.
"""

from __future__ import annotations

from smpemu.memory.model import MODELS, MemoryModel
from smpemu.memory.store_buffer import make as _make_buffered


def make_model(name: str, *args, **kwargs) -> MemoryModel:
    """Build the model called ``name`` (one of MODELS)."""
    if name == "native":
        return MemoryModel(*args, **kwargs)
    return _make_buffered(name, *args, **kwargs)


__all__ = ["MODELS", "MemoryModel", "make_model"]
