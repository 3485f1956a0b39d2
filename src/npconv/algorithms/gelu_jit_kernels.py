"""GELU's compiled kernels (imported on first use, through :func:`npconv.compiled.kernels`).

The exact GELU needs erf per element; NumPy has none and SciPy's ufunc runs one thread at
about 12 ns an element, which made GELU the largest cost of ConvNeXt after its GEMMs.  These
loops run over the flat memory of arrays that share one layout, the elements split among the
threads, in float64, writing the input's dtype:

- float64 (and every backward): ``math.erf`` and ``math.exp``, to the last bit a libm gives
  (about 4 ns an element: they are calls, not vectorised);
- float32 forward: Abramowitz & Stegun's 7.1.28, erf(z) = 1 - (1 + a1 z + ... + a6 z^6)^-16
  for z >= 0, |error| <= 3e-7, polynomials only, so the loop vectorises (0.35 ns an element:
  ConvNeXt-T's GELUs 37 ms -> 3 ms); against torch's float32 GELU on N(0, 9) values the
  largest difference was 1.7e-6, 1.1e-7 of the largest output (the tolerance is 1e-5).
"""

import math

import numba
import numpy as np

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_parallel = numba.njit(parallel=True, cache=True)
_vectorising = numba.njit(parallel=True, cache=True, fastmath={"contract", "reassoc"})
A1, A2, A3, A4, A5, A6 = 0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672, 0.0000430638


@_vectorising
def gelu_forward_float32(x, out):
    """out = x * Phi(x) with erf from A&S 7.1.28 (float32 inputs: its 3e-7 is below float32's step)."""
    for i in numba.prange(x.size):
        value = np.float64(x[i])
        z = abs(value) * SQRT_HALF
        p = 1.0 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))))
        p2 = p * p
        p4 = p2 * p2
        p8 = p4 * p4
        erf = 1.0 - 1.0 / (p8 * p8)
        out[i] = value * 0.5 * (1.0 + (erf if value >= 0 else -erf))


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
