"""GELU's compiled kernels (imported on first use, through :func:`npconv.compiled.kernels`).

The exact GELU needs erf per element; NumPy has none and SciPy's ufunc runs one thread at
about 12 ns an element, which made GELU the largest cost of ConvNeXt after its GEMMs.  These
loops compute in float64 (math.erf, math.exp) whatever the dtype and write the input's dtype,
over the flat memory of arrays that share one layout, the elements split among the threads.
"""

import math

import numba
import numpy as np

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_parallel = numba.njit(parallel=True, cache=True)


@_parallel
def gelu_forward(x, out):
    """out = x * Phi(x), Phi the standard normal CDF, element by element."""
    for i in numba.prange(x.size):
        value = np.float64(x[i])
        out[i] = value * 0.5 * (1.0 + math.erf(value * SQRT_HALF))


@_parallel
def gelu_backward(x, grad_output, out):
    """out = grad_output * (Phi(x) + x * phi(x)), phi the standard normal density."""
    for i in numba.prange(x.size):
        value = np.float64(x[i])
        slope = 0.5 * (1.0 + math.erf(value * SQRT_HALF)) + value * math.exp(-0.5 * value * value) * INV_SQRT_2PI
        out[i] = grad_output[i] * slope
