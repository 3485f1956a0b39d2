"""Which algorithm computes a convolution: the planner's rules, and the autotuner.

:func:`choose_algorithm` applies correctness rules first (what each algorithm can compute, from
the shapes), then measured heuristics; :func:`algorithm_for` then looks at the operands' values:
it plans around transforms where they hold NaN, inf or extremes, and takes an algorithm whose
value-level check (:attr:`Algorithm.worthwhile`: the separable passes, for filters of rank 1)
accepts them.  ``measure=True`` times every applicable candidate instead and returns the
timings.  With autotuning on (:func:`set_autotune`), the first call of each (spec, shapes,
dtype, threads) times the candidates once and remembers the fastest, on disk in the user's cache
directory (``$XDG_CACHE_HOME/npconv/autotune.json``), as FFTW's wisdom or cudnn.benchmark do;
the entries are keyed by the CPU model and npconv's and NumPy's versions too, so another machine
or an upgrade measures afresh.  A first call that measured for more than a second says so once
with an :class:`AutotuneNotice`, silenced as any warning::

    warnings.filterwarnings("ignore", category=npconv.select.AutotuneNotice)

:func:`set_algorithm` forces one for the process, ``npconv.config(algorithm=...)`` for a block.
These functions read those settings (and the workspace cap) where they are called: they are not
pure functions of their arguments.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

from . import compiled, cpu, numerics
from .settings import current as current_settings, set_defaults
from . import threads as thread_control
from . import workspace
from .algorithms import (depthwise, depthwise_jit, direct_jit, fft, fft_grad, im2col_gemm, pointwise, polyphase,
                         separable_passes, winograd)
from .spec import ConvSpec

Shape = Sequence[int]


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: its name, the rule that says where it applies, its entry points.

    ``applies(spec, x_shape, w_shape)`` is the correctness rule; ``forward(x, w, spec, pads,
    out_spatial)`` computes; ``min_workspace(spec, x_shape, w_shape, itemsize)`` is the least
    scratch it runs in.  The weight-gradient fields are None where it has no weight gradient.
    """

    name: str
    applies: Callable
    forward: Callable
    weight_grad: Callable | None = None
    weight_grad_applies: Callable | None = None
    # (spec, x_shape, w_shape, itemsize) -> the least scratch bytes it can run in (its smallest chunk)
    min_workspace: Callable | None = None
    weight_grad_min_workspace: Callable | None = None
    # mixes many inputs into each transformed value: a NaN or inf spreads and extreme values
    # overflow, so it only gets operands npconv.numerics.transform_safe accepts
    transforms: bool = False
    # (spec, x, w) -> bool: where its gain depends on the values (a weight's rank), the planner
    # takes it only where this accepts the operands; forcing or autotuning needs only `applies`
    worthwhile: Callable | None = None


def _any_forward(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> bool:
    """Every forward (not transposed) convolution: im2col + GEMM's domain."""
    return not spec.transposed


def _any_transposed(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> bool:
    """Every transposed convolution: GEMM + col2im's domain."""
    return spec.transposed


ALGORITHMS = {a.name: a for a in (
    Algorithm("im2col_gemm", _any_forward, im2col_gemm.forward, im2col_gemm.weight_grad,
              min_workspace=im2col_gemm.min_workspace, weight_grad_min_workspace=im2col_gemm.weight_grad_min_workspace),
    Algorithm("gemm_col2im", _any_transposed, im2col_gemm.forward_transposed,
              min_workspace=im2col_gemm.transposed_min_workspace),
    Algorithm("pointwise", pointwise.applies, pointwise.forward, pointwise.weight_grad,
              min_workspace=pointwise.min_workspace, weight_grad_min_workspace=pointwise.weight_grad_min_workspace),
    Algorithm("depthwise_direct", depthwise.applies, depthwise.forward, depthwise.weight_grad,
              min_workspace=depthwise.min_workspace, weight_grad_min_workspace=depthwise.weight_grad_min_workspace),
    Algorithm("depthwise_jit", depthwise_jit.applies, depthwise_jit.forward, depthwise_jit.weight_grad,
              min_workspace=depthwise_jit.min_workspace,
              weight_grad_min_workspace=depthwise_jit.weight_grad_min_workspace),
    Algorithm("fft", fft.applies, fft.forward, fft_grad.weight_grad, fft_grad.weight_grad_applies, transforms=True,
              min_workspace=fft.min_workspace, weight_grad_min_workspace=fft_grad.weight_grad_min_workspace),
    Algorithm("winograd_f2", winograd.applies, winograd.forward_f2, transforms=True,
              min_workspace=winograd.min_workspace_f2),
    Algorithm("winograd_f4", winograd.applies_f4, winograd.forward_f4, transforms=True,
              min_workspace=winograd.min_workspace_f4),
    Algorithm("direct_jit", direct_jit.applies, direct_jit.forward, direct_jit.weight_grad,
              min_workspace=direct_jit.min_workspace, weight_grad_min_workspace=direct_jit.weight_grad_min_workspace),
    Algorithm("polyphase", polyphase.applies, polyphase.forward, min_workspace=polyphase.min_workspace),
    Algorithm("separable_passes", separable_passes.applies, separable_passes.forward, transforms=True,
              min_workspace=separable_passes.min_workspace, worthwhile=separable_passes.worthwhile),
)}
# what runs without Numba (the fallback, and the second oracle of the compiled kernels)
NUMPY_ALGORITHMS = ("im2col_gemm", "gemm_col2im", "pointwise", "depthwise_direct", "fft", "winograd_f2",
                    "winograd_f4", "polyphase", "separable_passes")

# the autotune choices read from the cache file: a cache shared by every thread, not a setting
_tuned: dict | None = None
_tuned_lock = threading.Lock()


def candidates(spec: ConvSpec, x_shape: Shape, w_shape: Shape, direct_only: bool = False) -> list[str]:
    """Every algorithm that can compute this convolution exactly (correctness rules only).

    Parameters
    ----------
    spec : ConvSpec
    x_shape, w_shape : sequence of ints
        The batched input's and the weight's shapes.
    direct_only : bool, default False
        Leave out the transforms (FFT, Winograd, separable passes), for operands holding
        NaN, inf or extremes.

    Returns
    -------
    list of str
        Names of :data:`ALGORITHMS`, in registration order.

    Examples
    --------
    >>> from npconv import ConvSpec
    >>> candidates(ConvSpec.build((3, 3), transposed=True), (1, 8, 5, 5), (8, 8, 3, 3))
    ['gemm_col2im']
    """
    return [name for name, algorithm in ALGORITHMS.items() if algorithm.applies(spec, x_shape, w_shape)
            and not (direct_only and algorithm.transforms)]


def workspace_needed(name: str, spec: ConvSpec, x_shape: Shape, w_shape: Shape, dtype: npt.DTypeLike,
                     weight_grad: bool = False) -> int:
    """The least scratch bytes algorithm ``name`` runs this convolution (or its weight gradient) in."""
    algorithm = ALGORITHMS[name]
    rule = algorithm.weight_grad_min_workspace if weight_grad else algorithm.min_workspace
    assert rule is not None  # every algorithm registers its workspace rule(s)
    return rule(spec, tuple(x_shape), tuple(w_shape), np.dtype(dtype).itemsize)


def _within_cap(choice: str, spec: ConvSpec, x_shape: Shape, w_shape: Shape, dtype: npt.DTypeLike,
                direct_only: bool = False) -> str:
    """The choice if it fits under the workspace cap, else the first that fits of: the
    heuristic's direct choice (no transform), the NumPy depthwise kernel, the GEMM algorithms,
    any candidate; none fitting: the ValueError naming the smallest cap, before any work."""
    if workspace_needed(choice, spec, x_shape, w_shape, dtype) <= workspace.limit():
        return choice
    needs = {name: workspace_needed(name, spec, x_shape, w_shape, dtype)
             for name in candidates(spec, x_shape, w_shape, direct_only)}
    workspace.require(needs)
    direct = heuristic(spec, x_shape, w_shape, direct_only=True)
    return next(name for name in (direct, "depthwise_direct", "im2col_gemm", "gemm_col2im", *needs)
                if needs.get(name, math.inf) <= workspace.limit())


def algorithm_for(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> Algorithm:
    """The algorithm for these operands: the planner's choice, unless it transforms and the
    operands are not safe to transform (npconv.numerics), then the best direct one; and where
    that was not forced, an algorithm whose value-level check accepts the operands instead.

    Parameters
    ----------
    spec : ConvSpec
    x, w : numpy.ndarray
        The batched input and the weight, in the compute dtype.

    Returns
    -------
    Algorithm

    Raises
    ------
    ValueError
        No algorithm fits under the workspace cap (the message names the smallest cap).
    """
    name = choose_algorithm(spec, x.shape, w.shape, x.dtype)
    if ALGORITHMS[name].transforms and not _transform_safe(x, w):
        name = choose_algorithm(spec, x.shape, w.shape, x.dtype, direct_only=True)
    if name != current_settings().algorithm:
        name = next((other.name for other in ALGORITHMS.values() if other.worthwhile is not None
                     and other.worthwhile(spec, x, w) and (not other.transforms or _transform_safe(x, w))), name)
    return ALGORITHMS[name]


def _transform_safe(x: np.ndarray, w: np.ndarray) -> bool:
    return numerics.transform_safe(x, w, numerics.transform_terms(x.shape, w.shape))


def heuristic(spec: ConvSpec, x_shape: Shape, w_shape: Shape, direct_only: bool = False) -> str:
    """The measured rules (2-core AMD Zen 3, float32, OpenBLAS on AVX2, Numba's compiled
    kernels; bench/planner_accuracy.py, and the README's speed section):

    - transposed with a stride: polyphase for depthwise layers (stride-1 phases through these
      same rules: the compiled depthwise kernel), GEMM + col2im otherwise (DCGAN: 77 ms vs 95
      polyphase); stride 1 never gets here: it runs as a forward conv;
    - 1x1 without padding: pointwise GEMM on the data as it lies (no window buffer);
    - depthwise and grouped with few channels per group (C_in/groups <= 16): the compiled
      plane/channel-block kernel for kernels up to 7 (MobileNetV2: 7 ms vs 43 im2col, ResNeXt:
      8 vs 49), FFT for larger ones at stride 1 (RepLKNet 31x31: 5 ms vs 19); without Numba,
      NumPy's multiply-add per tap, FFT from 5;
    - 2-D layers with at most 4 input channels whose windows overlap (stems, spectrograms): the
      same compiled plane kernel (ResNet stem: 41 ms vs 49, DeepSpeech2: 13 vs 36);
    - dense 3x3 stride 1 with at least 32 channels per group on both sides: Winograd with the
      compiled transforms, F(4, 3) on 2-D maps of 24 or more, F(2, 3) on 7 to 23 and in 3-D
      (conv5_x 7x7: 19 ms vs 23 im2col; C3D: 250 vs 317);
    - the rest: im2col + GEMM.  The compiled direct kernel (direct_jit) lost to it on every
      row measured (3x3 stride 2: 39 ms vs 30; ASPP 189 vs 155), so it runs only when forced
      or autotuned.

    These rules see shapes only; :func:`algorithm_for` then replaces the choice where a value
    check accepts the operands (2-D depthwise filters all of rank 1, 9 to 15 taps a side, as
    Gaussian blurs: the separable passes, 2.3x FFT's speed on 15x15, 512 x 512;
    :func:`npconv.algorithms.separable_passes.worthwhile`).
    """
    if spec.transposed:
        return _transposed_choice(spec, x_shape, w_shape)
    if spec.is_pointwise:
        return "pointwise"
    if spec.is_depthwise(x_shape[1]) and x_shape[1] > 1:
        return _depthwise_choice(spec, x_shape, w_shape, direct_only)
    if depthwise_jit.applies(spec, x_shape, w_shape) and (spec.groups > 1 or _few_channel_planes(spec, x_shape)):
        return "depthwise_jit"
    winograd_choice = (_winograd_choice(spec, x_shape, w_shape)
                       if winograd.applies(spec, x_shape, w_shape) and not direct_only else None)
    return winograd_choice or "im2col_gemm"


def _transposed_choice(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> str:
    depthwise_layer = spec.channels_per_group(x_shape[1]) == 1 and w_shape[1] == 1
    return "polyphase" if depthwise_layer and polyphase.applies(spec, x_shape, w_shape) else "gemm_col2im"


def _few_channel_planes(spec: ConvSpec, x_shape: Shape) -> bool:
    """A 2-D layer on at most 4 input channels whose windows overlap (kernel wider than stride)."""
    return (spec.ndim == 2 and x_shape[1] <= 4
            and any(k > s for k, s in zip(spec.kernel_size, spec.stride)))


def _depthwise_choice(spec: ConvSpec, x_shape: Shape, w_shape: Shape, direct_only: bool = False) -> str:
    jit = depthwise_jit.applies(spec, x_shape, w_shape)
    large = min(spec.kernel_size) >= (9 if jit else 5) and not direct_only
    if large and spec.unit_stride and fft.applies(spec, x_shape, w_shape):  # spectra under the cap
        return "fft"
    return "depthwise_jit" if jit else "depthwise_direct"


def _winograd_choice(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> str | None:
    per_group_in, per_group_out = w_shape[1], w_shape[0] // spec.groups
    smallest = min(spec.out_spatial(x_shape[2:]))
    if spec.ndim < 2 or min(per_group_in, per_group_out) < 32 or smallest < 7:
        return None
    return "winograd_f4" if spec.ndim == 2 and smallest >= 24 else "winograd_f2"


@overload
def choose_algorithm(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike = ...,
                     threads: int | None = ..., measure: Literal[False] = ..., direct_only: bool = ...) -> str: ...
@overload
def choose_algorithm(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike = ...,
                     threads: int | None = ..., *, measure: Literal[True],
                     direct_only: bool = ...) -> tuple[str, dict[str, float]]: ...
@overload
def choose_algorithm(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike = ...,
                     threads: int | None = ..., measure: bool = ...,
                     direct_only: bool = ...) -> str | tuple[str, dict[str, float]]: ...
def choose_algorithm(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike = np.float32,
                     threads: int | None = None, measure: bool = False,
                     direct_only: bool = False) -> str | tuple[str, dict[str, float]]:
    """The algorithm's name for this convolution (the planner's choice from the shapes).

    A forced algorithm (:func:`set_algorithm`, ``npconv.config``) wins where it applies; with
    autotuning on, the fastest measured; else :func:`heuristic`.  A choice over the workspace
    cap gives way to one that fits.

    Parameters
    ----------
    spec : ConvSpec
    input_shape, weight_shape : sequence of ints
        The batched input's and the weight's shapes.
    dtype : dtype, default float32
        The compute dtype.
    threads : int, optional
        The thread count to time with (``measure`` and autotuning; default: the cap in effect).
    measure : bool, default False
        Time every candidate once on random data of these shapes and return the timings too.
    direct_only : bool, default False
        Leave out the transform algorithms (FFT, Winograd), as :func:`algorithm_for` does for
        operands holding NaN, inf or values near the ends of their range.

    Returns
    -------
    str or (str, dict of str to float)
        The name; with ``measure=True``, (name, {name: seconds}).

    Raises
    ------
    ValueError
        No algorithm fits under the workspace cap.

    Examples
    --------
    >>> from npconv import ConvSpec
    >>> choose_algorithm(ConvSpec.build((1, 1)), (8, 64, 56, 56), (256, 64, 1, 1))
    'pointwise'
    """
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    settings = current_settings()  # read once: npconv.config
    forced = settings.algorithm
    if forced is not None and forced in candidates(spec, input_shape, weight_shape, direct_only):
        return _within_cap(forced, spec, input_shape, weight_shape, dtype, direct_only)
    if measure:
        timings = measure_candidates(spec, input_shape, weight_shape, dtype, threads, direct_only=direct_only)
        return min(timings, key=timings.__getitem__), timings
    if settings.autotune and not direct_only:
        choice = _tuned_choice(spec, input_shape, weight_shape, dtype, threads)
    else:
        choice = heuristic(spec, input_shape, weight_shape, direct_only=direct_only)
    return _within_cap(choice, spec, input_shape, weight_shape, dtype, direct_only)


def measure_candidates(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike,
                       threads: int | None = None, repeats: int = 3,
                       direct_only: bool = False) -> dict[str, float]:
    """Time every candidate that fits under the workspace cap on random data of these shapes.

    Parameters
    ----------
    spec : ConvSpec
    input_shape, weight_shape : sequence of ints
    dtype : dtype
    threads : int, optional
        Threads to time with (default: the cap in effect).
    repeats : int, default 3
        Timed runs per candidate, after one warm-up.
    direct_only : bool, default False
        As in :func:`candidates`.

    Returns
    -------
    dict of str to float
        {name: the best of ``repeats`` runs, in seconds}.
    """
    with thread_control.limited(threads):
        return _timings(spec, input_shape, weight_shape, dtype, repeats, direct_only)


def _timings(spec: ConvSpec, input_shape: Shape, weight_shape: Shape, dtype: npt.DTypeLike, repeats: int,
             direct_only: bool = False) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    pads, out_spatial = spec.pads(input_shape[2:]), spec.out_spatial(input_shape[2:])
    timings: dict[str, float] = {}
    for name in candidates(spec, input_shape, weight_shape, direct_only):
        if workspace_needed(name, spec, input_shape, weight_shape, dtype) > workspace.limit():
            continue
        forward = ALGORITHMS[name].forward
        forward(x, w, spec, pads, out_spatial)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            forward(x, w, spec, pads, out_spatial)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    return timings


def set_algorithm(name: str | None) -> str | None:
    """Force one algorithm wherever it applies (None: let the planner choose).

    The process default: ``npconv.config(algorithm=...)`` forces one in a block.

    Parameters
    ----------
    name : str or None
        A name of :data:`ALGORITHMS`.

    Returns
    -------
    str or None
        The previous default.

    Raises
    ------
    ValueError
        An unknown name.

    Examples
    --------
    >>> previous = set_algorithm("im2col_gemm")
    >>> set_algorithm(previous)
    'im2col_gemm'
    """
    return set_defaults(where="set_algorithm", algorithm=name).algorithm


def set_autotune(enabled: bool = True) -> bool:
    """Time the candidates once per (spec, shapes, dtype, threads) and keep the fastest.

    The process default: ``npconv.config(autotune=...)`` sets a block's.  The choices are kept
    in :func:`cache_path`.

    Parameters
    ----------
    enabled : bool, default True

    Returns
    -------
    bool
        The previous default.

    Raises
    ------
    ValueError
        ``enabled`` not a bool (or 0 or 1).
    """
    return set_defaults(where="set_autotune", autotune=bool(enabled)).autotune


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
    tuned = _tuned_choices()
    key = _key(spec, input_shape, weight_shape, dtype, threads)
    choice = tuned.get(key)
    if choice not in candidates(spec, input_shape, weight_shape):
        start = time.perf_counter()
        timings = measure_candidates(spec, input_shape, weight_shape, dtype, threads)  # not under the lock
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


def weight_grad_algorithm(spec: ConvSpec, x: np.ndarray, gy: np.ndarray, weight_shape: Shape) -> Algorithm:
    """The weight gradient's algorithm: the forward's choice where it has one that applies
    (and, for a transform, where ``x`` and ``gy`` are safe to transform)."""
    algorithm = ALGORITHMS[choose_algorithm(spec, x.shape, weight_shape, x.dtype)]
    if algorithm.transforms and not numerics.transform_safe(x, gy, numerics.transform_terms(x.shape, gy.shape)):
        algorithm = ALGORITHMS[choose_algorithm(spec, x.shape, weight_shape, x.dtype, direct_only=True)]
    usable = algorithm.weight_grad is not None and (
        algorithm.weight_grad_applies is None or algorithm.weight_grad_applies(spec, x.shape, weight_shape))
    if current_settings().algorithm is None and algorithm.name == "depthwise_jit" and spec.groups == 1:
        usable = False  # the stems' weight gradient: im2col + GEMM 60 ms, the plane kernel 143
    return ALGORITHMS[_weight_grad_within_cap(algorithm.name if usable else "im2col_gemm", spec, x, weight_shape)]


def _weight_grad_within_cap(choice: str, spec: ConvSpec, x: np.ndarray, weight_shape: Shape) -> str:
    """The weight gradient's choice if it fits under the workspace cap, else im2col + GEMM, else
    any direct one that fits; none fitting: the ValueError naming the smallest cap."""
    if workspace_needed(choice, spec, x.shape, weight_shape, x.dtype, weight_grad=True) <= workspace.limit():
        return choice
    needs = {name: workspace_needed(name, spec, x.shape, weight_shape, x.dtype, weight_grad=True)
             for name in candidates(spec, x.shape, weight_shape, direct_only=True)
             if ALGORITHMS[name].weight_grad is not None}
    workspace.require(needs)
    return next(name for name in ("im2col_gemm", *needs) if needs.get(name, math.inf) <= workspace.limit())
