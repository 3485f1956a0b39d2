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

import math
import time
from typing import Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

from . import numerics
from .settings import current as current_settings, set_defaults
from . import threads as thread_control
from . import workspace
from .algorithm_registry import ALGORITHMS, NUMPY_ALGORITHMS, Algorithm  # noqa: F401
from .algorithms import depthwise_jit, fft, polyphase, winograd
# the autotuner, in npconv.autotune; its public names (and what tests reach for) stay importable here
from .autotune import (AutotuneNotice, _key, _merge_into_cache, _tuned_choice,  # noqa: F401
                       cache_path, forget_tuned)
from .arrays import real_dtype
from .spec import ConvSpec

Shape = Sequence[int]


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
    that was neither forced nor autotuned (a measured choice stands), an algorithm whose
    value-level check accepts the operands instead.

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
    settings = current_settings()  # one snapshot for the whole plan
    name = choose_algorithm(spec, x.shape, w.shape, x.dtype)
    if ALGORITHMS[name].transforms and not _transform_safe(x, w):
        name = choose_algorithm(spec, x.shape, w.shape, x.dtype, direct_only=True)
    if not settings.autotune and name != settings.algorithm:
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
    autotuning on, the fastest measured; else :func:`heuristic`.  For a complex dtype: the
    choice the real parts get, then the complex route (:func:`complex_algorithm`'s preference;
    ``measure=True`` times the real parts).  A choice over the workspace
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
    if np.dtype(dtype).kind == "c":  # the parts' choice (measured on real parts), then the complex route
        parts = choose_algorithm(spec, input_shape, weight_shape, real_dtype(dtype), threads, measure, direct_only)
        if measure or current_settings().algorithm is not None:
            return parts
        assert isinstance(parts, str)
        return _complex_preference(parts, spec, input_shape, weight_shape)
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
        The previous default (``enabled`` is read by its truth value, as before; a
        ``npconv.config(autotune=...)`` block accepts only a bool).
    """
    return set_defaults(where="set_autotune", autotune=bool(enabled)).autotune


# Winograd has no complex form: its three real runs lost to one complex im2col GEMM on
# (8, 64, 56, 56) -> 64, 3x3 (complex64 106 ms against 157, complex128 1.2x)
COMPLEX_GEMM_INSTEAD = {"winograd_f2": "im2col_gemm", "winograd_f4": "im2col_gemm"}


def _complex_preference(name: str, spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> str:
    """The unforced complex route: Winograd's layer as one complex GEMM, many taps as the FFT."""
    if name != "fft" and complex_fft_pays(spec, x_shape, w_shape) and fft.applies(spec, x_shape, w_shape):
        return "fft"
    return COMPLEX_GEMM_INSTEAD.get(name, name)


def complex_fft_pays(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> bool:
    """Whether the native complex FFT beats a complex GEMM: per output and output channel the GEMM
    costs about 0.2 ns per tap and input channel of the group, the FFT 50 + 2.6 ns per input
    channel (2 cores, complex64), so the FFT wins from ``taps >= 13 + 256 / channels_per_group``
    (times the stride's subsampling, which the FFT computes in full).  FFT / GEMM ms, median of 3:
    1-D (4, 16, 4096) -> 16, k=31: 8.7 / 25.7 (complex128 19.4 / 63.1), k=15: 8.6 / 11.2, k=9: 9.4 / 6.4;
    (8, 64, 56, 56) -> 64, 7x7: 343 / 697, 5x5: 373 / 314 (complex128 452 / 634), 3x3: 352 / 91;
    (1, 8, 256, 256) -> 8, 9x9: 47 / 274; (2, 32, 64, 64) -> 32, 7x7: 33 / 83."""
    taps = math.prod(spec.kernel_size)
    per_group = max(w_shape[1], 1) if not spec.transposed else max(w_shape[0] // spec.groups, 1)
    return taps >= math.prod(spec.stride) * (13 + 256 / per_group)


def complex_algorithm(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> Algorithm | None:
    """The algorithm that computes this complex convolution in complex arithmetic, or None
    where three real convolutions of the parts (:mod:`npconv.complex_forms`) are the plan.

    The choice among real algorithms is the one the real parts would get (forcing and
    autotuning included), Winograd's being im2col + GEMM's unless forced
    (:data:`COMPLEX_GEMM_INSTEAD`); where that algorithm computes complex natively (and measured
    faster so, :attr:`Algorithm.complex_native`), its operands are safe to transform and its
    scratch fits under the cap, the complex operands go to it whole.
    """
    dtype = np.result_type(x, w)
    algorithm = ALGORITHMS[choose_algorithm(spec, x.shape, w.shape, real_dtype(dtype))]
    if current_settings().algorithm is None:
        algorithm = ALGORITHMS[_complex_preference(algorithm.name, spec, x.shape, w.shape)]
    if not algorithm.complex_native or (algorithm.transforms and not _transform_safe(x, w)):
        return None
    if workspace_needed(algorithm.name, spec, x.shape, w.shape, dtype) > workspace.limit():
        return None
    return algorithm


def complex_weight_grad_algorithm(spec: ConvSpec, x: np.ndarray, gy: np.ndarray,
                                  weight_shape: Shape) -> Algorithm | None:
    """As :func:`complex_algorithm`, for the weight gradient: the algorithm the real parts would
    get, whole where it computes complex natively, else None (by real parts)."""
    algorithm = weight_grad_algorithm(spec, x.real, gy.real, weight_shape)
    if not algorithm.complex_native or (algorithm.transforms and not _transform_safe(x, gy)):
        return None
    dtype = np.result_type(x, gy)
    if workspace_needed(algorithm.name, spec, x.shape, weight_shape, dtype, weight_grad=True) > workspace.limit():
        return None
    return algorithm


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
