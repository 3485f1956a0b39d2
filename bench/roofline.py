"""The machine's two limits, measured at the start of a benchmark run, and each layer's floor.

    rates = measure_machine()            # {'sgemm_gflops': ..., 'dgemm_gflops': ..., 'copy_gbps': ...}
    floor_s = roofline_floor(flops, bytes_moved, rates, np.float32)

- sgemm rate: ``np.matmul`` of two 2048 x 2048 float32 matrices (2 * 2048^3 FLOPs), best of 5
  after one untimed call: the BLAS NumPy links, with the threads it would use for npconv.
  The float64 row's floor uses the dgemm rate, measured the same way (half the lanes per FMA).
- copy bandwidth: ``np.copyto`` between two 256 MiB float32 arrays (both touched first), best of
  5, counting the bytes read AND written (2 x 256 MiB per copy), so that a copy of an array
  sits exactly at its own floor.
- floor = max(direct FLOPs / sgemm rate, (bytes in + bytes out) / copy bandwidth), where the
  bytes are the input, the weights and the output, each moved once.  A layer at 1x its floor
  runs its direct arithmetic at GEMM speed, or moves its data at memcpy speed; algorithms that
  do fewer multiplications than the direct ones (Winograd, FFT, separable passes) can go under.
"""

from __future__ import annotations

import os
import time

import numpy as np

GEMM_SIZE = 2048
COPY_BYTES = 256 * 2**20


def measure_machine(repeats: int = 5) -> dict:
    """sgemm GFLOP/s and copy GB/s (best of ``repeats``), and the BLAS core type if pinned."""
    return dict(sgemm_gflops=gemm_gflops(np.float32, repeats), dgemm_gflops=gemm_gflops(np.float64, repeats),
                copy_gbps=copy_gbps(repeats), openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"))


def gemm_gflops(dtype, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=dtype) for _ in range(2))
    c = np.empty_like(a)
    seconds = _best_of(lambda: np.matmul(a, b, out=c), repeats)
    return 2 * GEMM_SIZE**3 / seconds / 1e9


def copy_gbps(repeats: int) -> float:
    source = np.ones(COPY_BYTES // 4, np.float32)
    target = np.zeros_like(source)  # zeros_like pages lazily: the untimed first copy touches them
    seconds = _best_of(lambda: np.copyto(target, source), repeats)
    return 2 * COPY_BYTES / seconds / 1e9


def roofline_floor(flops: float, bytes_moved: float, rates: dict, dtype) -> float:
    """Seconds the layer needs at least: GEMM-rate arithmetic or copy-rate memory traffic."""
    gemm = rates["dgemm_gflops" if np.dtype(dtype) == np.float64 else "sgemm_gflops"]
    return max(flops / (gemm * 1e9), bytes_moved / (rates["copy_gbps"] * 1e9))


def _best_of(call, repeats: int) -> float:
    call()  # untimed: page faults, BLAS thread start-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best
