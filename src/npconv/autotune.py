"""The autotuner's memory: the fastest algorithm measured for each (spec, shapes, dtype, threads),
kept in this process and on disk in :func:`cache_path` (``$XDG_CACHE_HOME/npconv/autotune.json``),
keyed by the CPU model and npconv's and NumPy's versions too, so another machine or an upgrade
measures afresh; :class:`AutotuneNotice` says once when a first call measured for more than a
second.  :func:`npconv.select.choose_algorithm` asks :func:`_tuned_choice` when autotuning is on;
``npconv.select`` re-exports the public names (:func:`cache_path`, :func:`forget_tuned`,
:class:`AutotuneNotice`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import numpy.typing as npt

from . import compiled, cpu
from . import threads as thread_control
from .algorithm_registry import ALGORITHMS
from .spec import ConvSpec

Shape = Sequence[int]

# the autotune choices read from the cache file: a cache shared by every thread, not a setting
_tuned: dict | None = None
_tuned_lock = threading.Lock()


def cache_path() -> Path:
    """The autotune cache file: ``$XDG_CACHE_HOME/npconv/autotune.json`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "npconv" / "autotune.json"


class AutotuneNotice(UserWarning):
    """An autotuned first call measured its candidates for more than a second (once per problem:
    the choice is kept on disk, and later calls and processes reuse it)."""


def _key(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike, threads: int | None) -> str:
    """The cache key: the problem, the thread count, and what its timings depend on beyond it
    (the CPU model, npconv's and NumPy's versions; keys without them never match)."""
    return json.dumps([repr(spec), list(input_shape), list(weight_shape), np.dtype(dtype).name,
                       threads or thread_control.get_num_threads(), *_machine_and_versions()])


def _machine_and_versions() -> tuple[str, str, str]:
    from . import __version__  # at call time: npconv is imported by then

    return cpu.cpu_model(), __version__, np.__version__


def _tuned_choice(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike,
                  threads: int | None) -> str:
    """The remembered fastest algorithm for this problem, measured (once) where none is kept."""
    from . import select  # at call time (select imports this module): its measure_candidates, as patched

    tuned = _tuned_choices()
    key = _key(spec, input_shape, weight_shape, dtype, threads)
    choice = tuned.get(key)
    if choice not in select.candidates(spec, input_shape, weight_shape):
        start = time.perf_counter()
        timings = select.measure_candidates(spec, input_shape, weight_shape, dtype, threads)  # not under the lock
        choice = tuned[key] = min(timings, key=timings.__getitem__)
        _merge_into_cache({key: choice})
        _notice_slow_tuning(input_shape, weight_shape, dtype, choice, len(timings), time.perf_counter() - start)
    return choice


def _notice_slow_tuning(input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike, choice: str, measured: int,
                        seconds: float) -> None:
    if seconds > compiled.NOTICE_SECONDS:
        warnings.warn(f"npconv autotuned the conv of input {tuple(input_shape)}, weight {tuple(weight_shape)}, "
                      f"{np.dtype(dtype).name} in {seconds:.1f} s ({measured} algorithms timed); it keeps "
                      f"{choice} in {cache_path()}, so later calls and processes skip the timing",
                      AutotuneNotice, stacklevel=compiled.user_stacklevel())


def _tuned_choices() -> dict:
    """The in-memory choices, read from the file once (by one thread) after each forget_tuned;
    callers keep this dict, so a concurrent forget_tuned cannot pull it from under them."""
    global _tuned
    with _tuned_lock:
        if _tuned is None:
            _tuned = _read_cache()
        return _tuned


def _read_cache() -> dict:
    """The cache's usable entries: any other content (not JSON, not an object, values that
    name no algorithm, a directory in its place) counts as empty rather than failing a call."""
    try:
        content = json.loads(cache_path().read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(content, dict):
        return {}
    return {key: name for key, name in content.items() if isinstance(name, str) and name in ALGORITHMS}


def _merge_into_cache(entries: dict) -> None:
    """Add entries to the file under an exclusive lock: re-read, merge, write a temporary file and
    rename it over the cache, so processes tuning at once keep each other's entries."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            _lock(lock)
            merged = {**_read_cache(), **entries}
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(merged, indent=1))
            os.replace(temporary, path)
    except OSError:
        pass  # a read-only home still gets the in-memory choice


def _lock(file: IO) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the rename still keeps the file whole
        return
    fcntl.flock(file, fcntl.LOCK_EX)  # released when the file is closed


def forget_tuned() -> None:
    """Drop the in-memory autotune choices (the next tuned call reads the file again; the file
    itself is kept: delete :func:`cache_path` to measure afresh)."""
    global _tuned
    with _tuned_lock:
        _tuned = None
