"""How many threads npconv's work may use, in one place.

By default every library decides for itself (OpenBLAS and Numba: all cores; scipy.fft:
``workers=os.cpu_count()``).  :func:`set_num_threads` caps them all: BLAS through
threadpoolctl (NumPy's and SciPy's OpenBLAS alike), the compiled kernels through
``numba.set_num_threads`` and the FFTs through ``workers=``.  The GEMMs, the FFTs and the
compiled depthwise kernels spread over the cores; NumPy's own elementwise passes (window
gathering, Winograd's scatter) run on one.

The cap is a setting of :mod:`npconv.settings`: :func:`set_num_threads` sets the process
default (like ``torch.set_num_threads``), ``with npconv.config(threads=n):`` caps one block in
one thread or task.

Under concurrency (calls from many Python threads at once):

- each call reads the cap once when it starts, so the most recent :func:`set_num_threads`
  applies to the calls started after it, and a block's cap only to the calls made inside it;
- BLAS limits are process-wide too, so they are shared: the first capped call to start
  records the libraries' own limits, the BLAS limit while capped calls run is the smallest
  of their caps (no call ever gets more BLAS threads than it asked for), and the last one
  to finish restores the recorded limits exactly;
- Numba's thread count is per Python thread, so each call sets and restores its own.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from typing import Any, Iterator

from .settings import current as current_settings, set_defaults


def set_num_threads(threads: int | None) -> int | None:
    """Cap the threads of every library npconv calls (BLAS, Numba, the FFTs), as
    ``torch.set_num_threads``.

    The process default: calls already running keep the cap they started with, and a
    ``npconv.config(threads=...)`` block keeps its own.

    Parameters
    ----------
    threads : int or None
        The cap; None: each library's own default.

    Returns
    -------
    int or None
        The previous cap.

    Raises
    ------
    ValueError
        Not a positive int or None.

    Examples
    --------
    >>> previous = set_num_threads(1)
    >>> get_num_threads()
    1
    >>> set_num_threads(previous)
    1
    """
    return set_defaults(where="set_num_threads", threads=threads).threads


def get_num_threads() -> int:
    """The cap in effect here (a block's, else the process default), or the number of cores
    when there is none.

    Returns
    -------
    int
    """
    return current_settings().threads or os.cpu_count() or 1


@contextlib.contextmanager
def limited(threads: int | None = None) -> Iterator[None]:
    """Run the block with BLAS and Numba capped at ``threads`` (default: the cap in effect; no
    cap set and none given: nothing changes)."""
    threads = threads or current_settings().threads  # read once: a concurrent change cannot split a call
    if threads is None:
        yield
        return
    with _blas_capped(threads), _numba_threads(threads):
        yield


class _SharedBlasLimit:
    """The process-wide BLAS limit, shared by the capped calls running at once.

    threadpoolctl's own context restores what it saw on entry, so overlapping contexts
    entered and left by different threads put back each other's caps (the audit saw
    [2, 2] -> [1, 1] after eight threads).  Here one lock orders every change, the
    libraries' limits are recorded when the first capped call starts and restored when
    the last one finishes, and in between the limit is the smallest cap still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: collections.Counter = collections.Counter()  # cap -> calls running with it
        self._original: Any = None  # their limits before the first call (a threadpool_limits)
        self._applied: int | None = None

    def enter(self, cap: int) -> None:
        with self._lock:
            if not self._running:
                self._start(cap)
            elif cap < self._applied:
                self._apply(cap)
            self._running[cap] += 1

    def leave(self, cap: int) -> None:
        with self._lock:
            self._running[cap] -= 1
            if not self._running[cap]:
                del self._running[cap]
            if not self._running:
                self._finish()
            elif min(self._running) != self._applied:  # the smallest cap left: raise to the next
                self._apply(min(self._running))

    def _start(self, cap: int) -> None:
        from threadpoolctl import threadpool_limits

        # only BLAS: OpenMP's setting is per thread, and restoring it from another thread is wrong
        self._original = threadpool_limits(limits=cap, user_api="blas")
        self._applied = cap

    def _apply(self, cap: int) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=cap, user_api="blas")  # dropped: _original restores the first limits
        self._applied = cap

    def _finish(self) -> None:
        original, self._original, self._applied = self._original, None, None
        original.restore_original_limits()


_blas_limit = _SharedBlasLimit()


@contextlib.contextmanager
def _blas_capped(threads: int) -> Iterator[None]:
    _blas_limit.enter(threads)
    try:
        yield
    finally:
        _blas_limit.leave(threads)


@contextlib.contextmanager
def _numba_threads(threads: int) -> Iterator[None]:
    """Numba's count is per Python thread, so set and restore it in this one; never above
    what this thread already has (a nested call keeps the smaller cap, as BLAS does)."""
    try:
        import numba
    except ImportError:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, previous, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
