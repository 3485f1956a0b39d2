"""The cap on the scratch memory an algorithm may use at once (window buffers, transforms).

Scratch is every array an algorithm makes beyond its inputs and the output it returns:
window and tile buffers, GEMM results before they are scattered, transformed weights,
spectra, and the buffers :func:`scratch` keeps between calls.  Each algorithm splits its work
into :func:`boxes` small enough to keep its scratch under :func:`limit`, and says the least it
can run in (its ``min_workspace``); one whose least is over the cap is not planned, and a
convolution no algorithm can run under the cap is refused by :func:`require` before any work.

The cap is a setting of :mod:`npconv.settings`: :func:`set_workspace_limit` sets the process
default, ``with npconv.config(workspace_limit=nbytes):`` caps one block in one thread or task.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from typing import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from .settings import current as current_settings, set_defaults

MIN_LIMIT = 2**20


_reservations = threading.local()


def limit() -> int:
    """The cap in effect here in bytes (a block's, else the process default: 256 MiB unless
    set), less what this thread has :func:`reserved` (never under the 1 MiB floor)."""
    cap, held = current_settings().workspace_limit, getattr(_reservations, "bytes", 0)
    return cap if not held else max(MIN_LIMIT, cap - held)


@contextlib.contextmanager
def reserved(nbytes: int) -> Iterator[None]:
    """Within the block, this thread's algorithms plan under the cap less ``nbytes``: what a
    caller holds while it runs another algorithm (polyphase's phase weights and outputs)."""
    _reservations.bytes = getattr(_reservations, "bytes", 0) + nbytes
    try:
        yield
    finally:
        _reservations.bytes -= nbytes


def set_workspace_limit(nbytes: int) -> int:
    """Set the cap on scratch memory's process default.

    Algorithms chunk their work to stay under the cap; the planner skips an algorithm that
    cannot.  This thread's kept scratch buffers are trimmed to the cap at once (other threads'
    at their next call); a ``npconv.config(workspace_limit=...)`` block keeps its own cap.

    Parameters
    ----------
    nbytes : int
        The cap in bytes, at least 1 MiB (default 256 MiB).

    Returns
    -------
    int
        The previous default.

    Raises
    ------
    ValueError
        Not an int of at least 1 MiB.

    Examples
    --------
    >>> previous = set_workspace_limit(64 * 2**20)
    >>> limit() == 64 * 2**20, set_workspace_limit(previous) == 64 * 2**20
    (True, True)
    """
    previous = set_defaults(where="set_workspace_limit", workspace_limit=nbytes).workspace_limit
    trim()
    return previous


def trim() -> None:
    """Drop this thread's kept scratch buffers, least recently used first, until they fit
    under the cap in effect (after the cap changes)."""
    _trim(_buffers(), keep=None)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.3g} MiB"


def require(needs: dict[str, int]) -> None:
    """Refuse, before any work, a convolution that no algorithm in ``needs`` ({name: least
    scratch bytes}) can run under the cap; the error names the smallest cap that would do."""
    cap = limit()
    if not needs or min(needs.values()) <= cap:
        return
    name, least = min(needs.items(), key=lambda item: item[1])
    others = "".join(f", {other} {_mib(n)}" for other, n in sorted(needs.items(), key=lambda i: i[1])[1:])
    raise ValueError(
        f"workspace limit {cap} bytes ({_mib(cap)}) is too small for this convolution: {name} needs at "
        f"least {least} bytes ({_mib(least)}){others}; npconv.set_workspace_limit({max(least, MIN_LIMIT)})")


# ---- chunking --------------------------------------------------------------------------

def boxes(shape: Sequence[int], fits: Callable[[tuple[int, ...]], bool]) -> "Boxes":
    """The coarsest boxes covering the index space ``shape`` whose extents ``fits`` accepts.

    ``shape`` is outermost first (images, then output rows, columns, ...); ``fits(extents)``
    says whether a box of those extents keeps its buffers under the budget (it must grow with
    every extent).  A box is single indices before one dim, a run along it and whole dims
    after it: whole images while they fit, else runs of rows, else runs of columns of one
    row, ... down to single cells (used even when one cell does not fit: the caller's
    ``min_workspace`` has refused that case already)."""
    shape = tuple(int(s) for s in shape)
    dim = next((d for d in range(len(shape)) if fits((1,) * (d + 1) + shape[d + 1:])), len(shape) - 1)
    low, high = 1, max(shape[dim], 1)  # the longest run along dim that fits
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits((1,) * dim + (mid,) + shape[dim + 1:]) else (low, mid - 1)
    return Boxes(shape, dim, low)


class Boxes:
    """The boxes of :func:`boxes`, each a tuple of slices, made when asked for: a list of them
    (thousands under a 1 MiB cap) would itself be scratch."""

    def __init__(self, shape: tuple[int, ...], dim: int, run: int) -> None:
        self.shape, self.dim, self.run = shape, dim, run
        self.runs = -(-shape[dim] // run)

    def __len__(self) -> int:
        return math.prod(self.shape[:self.dim]) * self.runs

    def __getitem__(self, index: int) -> tuple[slice, ...]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"box {index} of {len(self)}")
        prefix, number = divmod(index % len(self), self.runs)
        lead = np.unravel_index(prefix, self.shape[:self.dim]) if self.dim else ()
        start = number * self.run
        return (tuple(slice(int(p), int(p) + 1) for p in lead)
                + (slice(start, min(start + self.run, self.shape[self.dim])),)
                + tuple(slice(0, s) for s in self.shape[self.dim + 1:]))

    def __iter__(self) -> Iterator[tuple[slice, ...]]:
        whole = tuple(slice(0, s) for s in self.shape[self.dim + 1:])
        size = self.shape[self.dim]
        for prefix in itertools.product(*map(range, self.shape[:self.dim])):
            lead = tuple(slice(p, p + 1) for p in prefix)
            for start in range(0, size, self.run):
                yield lead + (slice(start, min(start + self.run, size)),) + whole


def linear(cell_bytes: int, budget: int) -> Callable[[tuple[int, ...]], bool]:
    """A ``fits`` for :func:`boxes` whose buffers hold ``cell_bytes`` per cell."""
    return lambda extents: math.prod(extents) * cell_bytes <= budget


def extents(box: Sequence[slice]) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in box)


# ---- buffers kept between calls --------------------------------------------------------

_arena = threading.local()


def _buffers() -> dict[str, np.ndarray]:
    return _arena.__dict__.setdefault("buffers", {})


def scratch(name: str, shape: Sequence[int], dtype: npt.DTypeLike) -> np.ndarray:
    """An uninitialised array for scratch data, carved from a buffer kept between calls.

    Fresh large arrays come from ``mmap`` and every page faults on first touch: on this
    project's VMs that cost 3 ms of a 5 ms Winograd layer (C64, 56x56, N=1; 1.8 ms with the
    buffers kept).  Each ``name`` has its own buffer per thread, grown on demand; callers
    keep what they use at once under :func:`limit` by chunking.  What stays kept after the
    call is also held under the cap: a buffer larger than the cap is never kept (nor reused:
    one grown under a larger cap is replaced), and the least recently used others are dropped
    while all of them together exceed it.  A result handed to the user never lives here.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = _buffers()
    buffer = buffers.pop(name, None)  # re-inserted last: the dict is in least-recently-used order
    if buffer is None or buffer.nbytes < nbytes or buffer.nbytes > limit():
        buffer = None  # dropped before its replacement is made
        buffer = np.empty(max(nbytes, 1), np.uint8)
    if buffer.nbytes <= limit():
        buffers[name] = buffer
        _trim(buffers, keep=name)
    return buffer[:nbytes].view(dtype).reshape(shape)


def _trim(buffers: dict[str, np.ndarray], keep: str | None) -> None:
    """Drop kept buffers, least recently used first (never ``keep``), until they fit under the
    cap together (so none is larger than the cap)."""
    total = sum(b.nbytes for b in buffers.values())
    if total <= limit():
        return
    for name in [n for n in buffers if n != keep]:
        total -= buffers.pop(name).nbytes
        if total <= limit():
            break


def make_room(nbytes: int) -> None:
    """Drop kept buffers (least recently used first) until ``nbytes`` of scratch made outside
    them (a transformed weight, spectra, Numba's tiles) fits beside them under the cap."""
    buffers, room = _buffers(), limit() - nbytes
    total = sum(b.nbytes for b in buffers.values())
    for name in list(buffers):
        if total <= room:
            break
        total -= buffers.pop(name).nbytes


def kept_bytes() -> int:
    """Bytes of this thread's kept scratch buffers."""
    return sum(b.nbytes for b in _buffers().values())


def release() -> None:
    """Drop this thread's scratch buffers."""
    _arena.__dict__.pop("buffers", None)
