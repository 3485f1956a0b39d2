"""Matrix products for the algorithms, through the faster of NumPy's and SciPy's OpenBLAS
(see :mod:`npconv.cpu` for why they can differ)."""

from __future__ import annotations

import functools

import numpy as np

_RANK = {"skylakex": 3, "cooperlake": 3, "sapphirerapids": 3, "zen": 1, "haswell": 1}


@functools.lru_cache(maxsize=1)
def use_scipy_blas() -> bool:
    """Whether SciPy's BLAS runs wider kernels than NumPy's (decided once, after loading it)."""
    import scipy.linalg.blas  # noqa: F401  (loads SciPy's OpenBLAS under the tuned setting)
    from threadpoolctl import threadpool_info

    ranks = {}
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas":
            owner = "scipy" if "openblas64_" not in lib["filepath"] else "numpy"
            ranks[owner] = _RANK.get(str(lib.get("architecture", "")).lower(), 2)
    return ranks.get("scipy", 0) > ranks.get("numpy", 0)


def gemm(a, b, out):
    """out[...] = a @ b for C-contiguous 2-D float32/float64 a (M, K), b (K, N), out (M, N)."""
    if use_scipy_blas() and a.dtype == b.dtype == out.dtype and a.dtype.char in "fd" and \
            a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous:
        from scipy.linalg.blas import dgemm, sgemm

        routine = sgemm if a.dtype.char == "f" else dgemm
        # row-major C = A B is column-major C^T = B^T A^T: no copies, written in place
        routine(1.0, b.T, a.T, beta=0.0, c=out.T, overwrite_c=1)
        return out
    return np.matmul(a, b, out=out)
