"""The cap on the scratch memory an algorithm may use at once (window buffers, transforms)."""

from __future__ import annotations

import math
import threading

import numpy as np

_limit = 256 * 2**20


def limit() -> int:
    """The current cap in bytes (default 256 MiB)."""
    return _limit


def set_workspace_limit(nbytes: int) -> int:
    """Set the cap (bytes, >= 1 MiB); returns the previous one.  Algorithms chunk their work to
    stay under it; the planner skips an algorithm that cannot."""
    global _limit
    if not isinstance(nbytes, int) or nbytes < 2**20:
        raise ValueError(f"workspace limit must be an int of at least 1 MiB (1048576 bytes), got {nbytes!r}")
    previous, _limit = _limit, nbytes
    return previous


_arena = threading.local()


def scratch(name: str, shape, dtype) -> np.ndarray:
    """An uninitialised array for scratch data, carved from a buffer kept between calls.

    Fresh large arrays come from ``mmap`` and every page faults on first touch: on this
    project's VMs that cost 3 ms of a 5 ms Winograd layer (C64, 56x56, N=1; 1.8 ms with the
    buffers kept).  Each ``name`` has its own buffer per thread, grown on demand; callers
    keep them under :func:`limit` by chunking.  A result handed to the user never lives here.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = _arena.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[name] = np.empty(max(nbytes, 1), np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's scratch buffers."""
    _arena.__dict__.pop("buffers", None)
