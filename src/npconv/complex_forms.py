"""Complex convolutions from real ones: every convolution npconv computes is bilinear in its
two operands (input and weight; input and grad_output for the weight gradient), so a complex
one is a few real ones of the parts.

- both operands complex, ``(a + ib) * (c + id)``: Gauss's three-product form in PyTorch's
  arrangement, ``k1 = run(a, c)``, ``k2 = run(b, d)``, ``k3 = run(a + b, c + d)``; the real
  part is ``k1 - k2`` and the imaginary part ``k3 - k1 - k2`` (three real convolutions, not
  four; the same arrangement as PyTorch's, so a NaN or inf lands in the same parts);
- one operand complex: two real convolutions, one per part of the complex one.

Each real convolution goes through the planner, so every real algorithm (the compiled kernels,
Winograd, FFT) serves complex operands.  Where the planner finds an algorithm that computes in
complex arithmetic and measures faster (:func:`npconv.select.complex_algorithm`), the operands
go to it whole instead.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import numerics

Bilinear = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _part(array: np.ndarray, which: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(array, which))


def _assembled(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    out = np.empty(real.shape, np.result_type(real.dtype, np.complex64))
    out.real, out.imag = real, imag
    return out


def by_parts(run: Bilinear, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``run(a, b)`` for a real bilinear ``run`` and operands of which one or both are complex.

    Examples
    --------
    >>> import numpy as np
    >>> by_parts(np.multiply, np.array([1 + 2j]), np.array([3 - 1j]))
    array([5.+5.j])
    """
    a_complex, b_complex = np.iscomplexobj(a), np.iscomplexobj(b)
    if a_complex and b_complex:
        return gauss(run, a, b)
    if a_complex:
        return _assembled(run(_part(a, "real"), b), run(_part(a, "imag"), b))
    if b_complex:
        return _assembled(run(a, _part(b, "real")), run(a, _part(b, "imag")))
    return run(a, b)


def gauss(run: Bilinear, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``run(a, b)`` for complex ``a`` and ``b`` in three real calls (Gauss's product)."""
    ar, ai, br, bi = (_part(a, "real"), _part(a, "imag"), _part(b, "real"), _part(b, "imag"))
    k1, k2 = run(ar, br), run(ai, bi)
    with numerics.quiet():
        sum_a, sum_b = ar + ai, br + bi
    k3 = run(sum_a, sum_b)
    out = np.empty(k1.shape, np.result_type(k1.dtype, np.complex64))
    with numerics.quiet():
        np.subtract(k1, k2, out=out.real)
        np.subtract(k3, k1, out=out.imag)
        out.imag -= k2
    return out
