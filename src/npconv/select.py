"""Which algorithm computes a convolution: a public, pure function, and the autotuner.

:func:`choose_algorithm` applies correctness rules first (what each algorithm can compute),
then measured heuristics.  ``measure=True`` times every applicable candidate instead and
returns the timings.  With autotuning on (:func:`set_autotune`), the first call of each
(spec, shapes, dtype, threads) times the candidates once and remembers the fastest, on disk
in the user's cache directory (``$XDG_CACHE_HOME/npconv/autotune.json``), as FFTW's wisdom
or cudnn.benchmark do.  :func:`set_algorithm` (or ``algorithm=`` on :func:`npconv.conv`)
forces one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .algorithms import depthwise, depthwise_jit, fft, im2col_gemm, pointwise


@dataclass(frozen=True)
class Algorithm:
    name: str
    applies: Callable
    forward: Callable
    weight_grad: Callable | None = None
    weight_grad_applies: Callable | None = None


def _always_conv(spec, x_shape, w_shape):
    return not spec.transposed


def _transposed(spec, x_shape, w_shape):
    return spec.transposed


ALGORITHMS = {a.name: a for a in (
    Algorithm("im2col_gemm", _always_conv, im2col_gemm.forward, im2col_gemm.weight_grad),
    Algorithm("gemm_col2im", _transposed, im2col_gemm.forward_transposed),
    Algorithm("pointwise", pointwise.applies, pointwise.forward, pointwise.weight_grad),
    Algorithm("depthwise_direct", depthwise.applies, depthwise.forward, depthwise.weight_grad),
    Algorithm("depthwise_jit", depthwise_jit.applies, depthwise_jit.forward, depthwise_jit.weight_grad),
    Algorithm("fft", fft.applies, fft.forward, fft.weight_grad, fft.weight_grad_applies),
)}

_forced: str | None = None
_autotune = False
_tuned: dict | None = None


def candidates(spec, x_shape, w_shape) -> list[str]:
    """Every algorithm that can compute this convolution exactly (correctness rules only)."""
    return [name for name, algorithm in ALGORITHMS.items() if algorithm.applies(spec, x_shape, w_shape)]


def heuristic(spec, x_shape, w_shape) -> str:
    """The measured rules (2-core Zen 5 machine, float32; see the README's benchmark):

    - transposed: GEMM + col2im;
    - 1x1 without padding: pointwise GEMM on the NCHW data (no window buffer);
    - depthwise (more than one input channel) with every kernel side >= 5 and stride 1:
      FFT (7x7: 67 -> 25 ms, 31x31: 295 -> 12 ms); smaller ones: the compiled direct
      kernel where Numba is installed (1-D and 2-D), else NumPy's multiply-adds per tap;
    - one input channel (audio front ends, stems) stays on im2col + GEMM: its window buffer
      is small (C_in * k rows) and the GEMM wide (wav2vec2 conv0: 2.3x torch);
    - everything else: im2col + GEMM.
    """
    if spec.transposed:
        return "gemm_col2im"
    if pointwise.applies(spec, x_shape, w_shape):
        return "pointwise"
    if depthwise.applies(spec, x_shape, w_shape) and x_shape[1] > 1:
        if min(spec.kernel_size) >= 5 and max(spec.stride) == 1:
            return "fft"
        return "depthwise_jit" if depthwise_jit.applies(spec, x_shape, w_shape) else "depthwise_direct"
    return "im2col_gemm"


def choose_algorithm(spec, input_shape, weight_shape, dtype=np.float32, threads: int | None = None,
                     measure: bool = False):
    """The algorithm's name for this convolution; with ``measure=True``, (name, {name: seconds})
    after timing every candidate once on random data of these shapes.

    >>> from npconv import ConvSpec
    >>> choose_algorithm(ConvSpec.build((1, 1)), (8, 64, 56, 56), (256, 64, 1, 1))
    'pointwise'
    """
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    allowed = candidates(spec, input_shape, weight_shape)
    if _forced is not None and _forced in allowed:
        return _forced
    if measure:
        timings = measure_candidates(spec, input_shape, weight_shape, dtype)
        return min(timings, key=timings.get), timings
    if _autotune:
        return _tuned_choice(spec, input_shape, weight_shape, dtype, threads)
    return heuristic(spec, input_shape, weight_shape)


def measure_candidates(spec, input_shape, weight_shape, dtype, repeats: int = 3) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    pads, out_spatial = spec.pads(input_shape[2:]), spec.out_spatial(input_shape[2:])
    timings = {}
    for name in candidates(spec, input_shape, weight_shape):
        forward = ALGORITHMS[name].forward
        forward(x, w, spec, pads, out_spatial)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            forward(x, w, spec, pads, out_spatial)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    return timings


def set_algorithm(name: str | None) -> None:
    """Force one algorithm wherever it applies (None: let the planner choose)."""
    global _forced
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; one of {sorted(ALGORITHMS)}")
    _forced = name


def set_autotune(enabled: bool = True) -> None:
    """Time the candidates once per (spec, shapes, dtype, threads) and keep the fastest."""
    global _autotune
    _autotune = bool(enabled)


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "npconv" / "autotune.json"


def _key(spec, input_shape, weight_shape, dtype, threads) -> str:
    return json.dumps([repr(spec), list(input_shape), list(weight_shape), np.dtype(dtype).name,
                       threads or os.cpu_count()])


def _tuned_choice(spec, input_shape, weight_shape, dtype, threads) -> str:
    global _tuned
    if _tuned is None:
        try:
            _tuned = json.loads(cache_path().read_text())
        except (OSError, ValueError):
            _tuned = {}
    key = _key(spec, input_shape, weight_shape, dtype, threads)
    if _tuned.get(key) not in candidates(spec, input_shape, weight_shape):
        timings = measure_candidates(spec, input_shape, weight_shape, dtype)
        _tuned[key] = min(timings, key=timings.get)
        try:
            cache_path().parent.mkdir(parents=True, exist_ok=True)
            cache_path().write_text(json.dumps(_tuned, indent=1))
        except OSError:
            pass  # a read-only home still gets the in-memory choice
    return _tuned[key]


def weight_grad_algorithm(spec, input_shape, weight_shape) -> Algorithm:
    """The weight gradient's algorithm: the forward's choice where it has one that applies."""
    name = choose_algorithm(spec, input_shape, weight_shape)
    algorithm = ALGORITHMS[name]
    usable = algorithm.weight_grad is not None and (
        algorithm.weight_grad_applies is None or algorithm.weight_grad_applies(spec, input_shape, weight_shape))
    return algorithm if usable else ALGORITHMS["im2col_gemm"]
