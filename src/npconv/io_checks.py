"""What :mod:`npconv.io`'s two weight-file formats share when reading: the wording of a refusal,
the memory check of a whole file's arrays, exact chunked reads and native byte order.
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from .memory import AllocationRefused, available_bytes, human_bytes

READ_CHUNK = 16 << 20  # zip members are inflated this much at a time, never all at once
# a file path as save and load take it
PathLike = Union[str, "os.PathLike[str]"]


def _invalid(path: PathLike, kind: str, reason: str) -> ValueError:
    return ValueError(f"weight file {str(path)!r} is not a valid {kind} file: {reason}")


def _check_total(path: PathLike, what: str, nbytes: int) -> None:
    """All arrays of one file together must fit in memory, not only each one."""
    limit = available_bytes()
    if nbytes > limit:
        raise AllocationRefused(f"weight file {str(path)!r}: {what} need {nbytes} bytes ({human_bytes(nbytes)}), "
                                f"more than the {limit} bytes ({human_bytes(limit)}) of memory this process can use")


def _native(array: np.ndarray) -> np.ndarray:
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _read_exactly(file: Any, nbytes: int, where: str) -> np.ndarray:  # a file or zip member: has readinto
    """``nbytes`` bytes as a uint8 array, read in chunks (a zip member is inflated as it goes)."""
    raw = np.empty(nbytes, np.uint8)
    view, filled = memoryview(raw), 0  # type: ignore[arg-type]  # ndarray is a buffer
    while filled < nbytes:
        got = file.readinto(view[filled:filled + READ_CHUNK])
        if not got:
            raise ValueError(f"{where}: truncated, {filled} of {nbytes} bytes present")
        filled += got
    return raw
