"""How many threads npconv's work may use, in one place.

By default every library decides for itself (OpenBLAS and Numba: all cores; scipy.fft:
``workers=os.cpu_count()``).  :func:`set_num_threads` caps them all: BLAS through
threadpoolctl (NumPy's and SciPy's OpenBLAS alike), the compiled kernels through
``numba.set_num_threads`` and the FFTs through ``workers=``.  The GEMMs, the FFTs and the
compiled depthwise kernels spread over the cores; NumPy's own elementwise passes (window
gathering, Winograd's scatter) run on one.
"""

from __future__ import annotations

import contextlib
import os

_threads: int | None = None


def set_num_threads(threads: int | None) -> int | None:
    """Cap the threads of every library npconv calls (None: their own defaults); returns the
    previous cap."""
    global _threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"set_num_threads: threads must be a positive int or None, got {threads!r}")
    previous, _threads = _threads, threads
    return previous


def get_num_threads() -> int:
    """The cap, or the number of cores when there is none."""
    return _threads or os.cpu_count() or 1


@contextlib.contextmanager
def limited(threads: int | None = None):
    """Run the block with BLAS and Numba capped at ``threads`` (default: the global cap; no cap
    set and none given: nothing changes)."""
    threads = threads or _threads
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"), _numba_threads(threads):
        yield


@contextlib.contextmanager
def _numba_threads(threads: int):
    try:
        import numba
    except ImportError:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
