"""Numba's compiled kernels: where npconv calls them, and the notice of a first compile.

Each kernel module (``algorithms/*_kernels.py``) is imported on first use, so ``import npconv``
compiles nothing.  Numba compiles a kernel on its first call for each argument type and keeps
the machine code on disk (``cache=True``), so only the first process pays: a few seconds per
kernel and dtype.  A call that compiled for more than :data:`NOTICE_SECONDS` says so once with
a :class:`CompileNotice`, which a user silences as any warning::

    warnings.filterwarnings("ignore", category=npconv.compiled.CompileNotice)

Without Numba (it is a dependency, but an environment may lack it) :func:`available` is
False and the planner keeps to the NumPy algorithms.

Numba's parallel kernels run on GNU OpenMP, whose idle workers spin for a while after each
kernel.  On two cores that spinning took the cores from the BLAS and NumPy work that follows
(measured 10-40x slower calls after a compiled depthwise layer).  Passive waiting
(``OMP_WAIT_POLICY=PASSIVE``) avoids it, but importing npconv sets no environment variable:
set it in the shell, or call :func:`npconv.cpu.tune_environment` before the first compiled
kernel runs (OpenMP reads the policy when Numba starts its workers).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
import warnings

try:
    import numba
except ImportError:  # pragma: no cover - Numba is a dependency; the NumPy algorithms remain
    numba = None  # type: ignore[assignment]

NOTICE_SECONDS = 1.0
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class CompileNotice(UserWarning):
    """A compiled kernel was built for this machine (once: later processes load it from disk)."""


def available() -> bool:
    return numba is not None


def run(kernel, *args):
    """``kernel(*args)``, with a :class:`CompileNotice` where that call compiled it for over a second."""
    known = len(kernel.signatures)
    start = time.perf_counter()
    result = kernel(*args)
    elapsed = time.perf_counter() - start
    if len(kernel.signatures) > known and elapsed > NOTICE_SECONDS:
        types = ", ".join(sorted({str(getattr(a, "dtype", type(a).__name__)) for a in args if hasattr(a, "dtype")}))
        warnings.warn(f"npconv compiled its {kernel.__name__} kernel for {types} in {elapsed:.1f} s; "
                      f"Numba keeps it on disk, so later processes load it at once", CompileNotice,
                      stacklevel=user_stacklevel())
    return result


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function name the first
    line outside npconv (the user's call), for the notices of a slow first call."""
    level, frame = 1, sys._getframe(1)
    while frame.f_code.co_filename.startswith(_PACKAGE_DIR) and frame.f_back is not None:
        level, frame = level + 1, frame.f_back
    return level


class _Reporting:
    """A kernels module whose compiled functions are called through :func:`run`."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        return functools.partial(run, value) if hasattr(value, "signatures") else value


def kernels(module_name: str) -> _Reporting:
    """``npconv.algorithms.<module_name>`` (or a dotted ``npconv.…`` name), imported on first use,
    its kernels reporting a first compile."""
    name = module_name if module_name.startswith("npconv.") else f"npconv.algorithms.{module_name}"
    return _Reporting(importlib.import_module(name))
