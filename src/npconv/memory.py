"""Refusing a request the machine cannot hold, before any work is done.

Linux overcommits: ``np.empty`` of 75 GiB usually succeeds, and the process is killed by the
kernel only when the pages are touched, long after the call began.  So every array npconv is
about to fill for a caller (an output, a gradient, a dense matrix) is first sized here against
the memory this process can have: the machine's physical memory, or its cgroup's limit when
that is smaller.  A request above it raises :class:`AllocationRefused`, which is both a
``MemoryError`` and a ``ValueError`` (so ``except ValueError`` in a caller or the CLI's exit 2
covers it), and names the bytes.

>>> check_allocation("conv2d output", (1, 1, 2**20, 2**20, 2**20), "float32")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
npconv.memory.AllocationRefused: conv2d output: shape [1, 1, 1048576, 1048576, 1048576] of float32 needs 4611686018427387904 bytes (4 EiB), more than the ... bytes (...) of memory this process can use
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np


class AllocationRefused(MemoryError, ValueError):
    """An array too large for this machine, refused before it was allocated."""


def human_bytes(nbytes: float) -> str:
    """1536 -> '1.5 KiB': binary units, at most three significant digits."""
    if nbytes < 1024:
        return f"{int(nbytes)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "EiB":
            return f"{nbytes:.3g} {unit}"


@functools.lru_cache(maxsize=1)
def available_bytes() -> int:
    """Physical memory, or the cgroup's limit (v2 or v1) when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def nbytes_of(shape, dtype) -> int:
    """Bytes of an array of this shape and dtype (Python ints: no overflow)."""
    return math.prod(int(v) for v in shape) * np.dtype(dtype).itemsize


def check_allocation(what: str, shape, dtype) -> int:
    """The bytes of an array of ``shape`` and ``dtype``; refuses one that cannot fit in memory."""
    nbytes = nbytes_of(shape, dtype)
    limit = available_bytes()
    if nbytes > limit:
        raise AllocationRefused(
            f"{what}: shape {list(int(v) for v in shape)} of {np.dtype(dtype).name} needs {nbytes} bytes "
            f"({human_bytes(nbytes)}), more than the {limit} bytes ({human_bytes(limit)}) of memory "
            f"this process can use")
    return nbytes
