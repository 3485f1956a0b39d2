"""The FFT algorithm's transforms, chosen by the operands' dtype: real operands take the
half spectra of ``rfftn``/``irfft`` (Hermitian symmetry), complex ones the full spectra of
``fftn``/``ifft``.  The rest of :mod:`.fft` and :mod:`.fft_grad` is one code path for both.

Correlation is a product of spectra with one of them *reversed*: ``z[u] = sum_t w[t] x[u + t]``
has spectrum ``X(f) * W~(f)`` with ``W~(f) = sum_t w[t] exp(+2 pi i f t / P)``.  For real ``w``
that is ``conj(rfftn(w))``; for complex ``w`` it is ``ifftn(w)`` unscaled
(``norm="forward"``) — one transform, no conjugated copy, and bilinear as PyTorch's complex
convolution is (no operand conjugated).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .. import threads


def workers() -> int:
    return threads.get_num_threads()


def spectrum_length(length: int, complex_operands: bool) -> int:
    """Values kept along the last transformed axis: all ``length`` (complex), else ``length // 2 + 1``."""
    return length if complex_operands else length // 2 + 1


def spectrum(a: np.ndarray, lengths, axes) -> np.ndarray:
    """The spectrum of ``a`` zero-filled to ``lengths`` along ``axes``: fftn (complex) or rfftn (real)."""
    transform = sfft.fftn if np.iscomplexobj(a) else sfft.rfftn
    return transform(a, lengths, axes=axes, workers=workers())


def reversed_spectrum(a: np.ndarray, lengths, axes) -> np.ndarray:
    """``sum_t a[t] exp(+2 pi i f t / P)``: the spectrum that correlates with ``a`` (see the module text)."""
    if np.iscomplexobj(a):
        return sfft.ifftn(a, lengths, axes=axes, norm="forward", workers=workers())
    af = sfft.rfftn(a, lengths, axes=axes, workers=workers())
    return np.conjugate(af, out=af)


def last_inverse(yf: np.ndarray, length: int, complex_operands: bool, axis: int = -1) -> np.ndarray:
    """The inverse along the last transformed axis: ifft in place (complex) or irfft (real)."""
    if complex_operands:
        return sfft.ifft(yf, axis=axis, workers=workers(), overwrite_x=True)
    return sfft.irfft(yf, length, axis=axis, workers=workers())


def full_inverse(yf: np.ndarray, lengths, axes, complex_operands: bool) -> np.ndarray:
    """The inverse along every transformed axis: ifftn (complex) or irfftn (real)."""
    if complex_operands:
        return sfft.ifftn(yf, lengths, axes=axes, workers=workers(), overwrite_x=True)
    return sfft.irfftn(yf, lengths, axes=axes, workers=workers())


def product(xf: np.ndarray, wf: np.ndarray, groups: int) -> np.ndarray:
    """Output spectrum (N, C_out, *F).  Depthwise: output channel c*m + j from input channel c;
    dense: one complex GEMM per frequency and group, then reordered to NC(F) (a copy: writing
    the GEMM's result in that order in place took 1.4x as long)."""
    n, c_in, freq = xf.shape[0], xf.shape[1], xf.shape[2:]
    c_out = wf.shape[0]
    if c_in // groups == 1:
        return (xf[:, :, None] * wf.reshape((c_in, c_out // c_in) + freq)).reshape((n, c_out) + freq)
    f = math.prod(freq)
    xg = xf.reshape(n, groups, c_in // groups, f).transpose(1, 3, 0, 2)  # (G, F, N, C_in/G)
    wg = wf.reshape(groups, c_out // groups, c_in // groups, f).transpose(0, 3, 2, 1)  # (G, F, C_in/G, C_out/G)
    yf = np.matmul(xg, wg)  # (G, F, N, C_out/G): (N, C_in/G) @ (C_in/G, C_out/G) per (G, F)
    return yf.transpose(2, 0, 3, 1).reshape((n, c_out) + freq)


def inverse(yf: np.ndarray, ndim: int, length_last: int, complex_operands: bool, keep) -> np.ndarray:
    """Values at the kept positions: the inverse one axis at a time, in place, each leading
    axis cut to the positions ``keep(axis, a)`` returns before the next is transformed."""
    for axis in range(-ndim, -1):
        yf = keep(axis, sfft.ifft(yf, axis=axis, workers=workers(), overwrite_x=True))
    return keep(-1, last_inverse(yf, length_last, complex_operands))
