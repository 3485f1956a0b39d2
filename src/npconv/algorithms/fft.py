"""FFT convolution for large kernels (depthwise and dense), with ``scipy.fft``.

The correlation ``y[o] = sum_t w[t] x[o + t - lo]`` is computed as a circular correlation of
length ``P >= in + lo + hi`` (``next_fast_len``) — long enough that nothing wraps onto an
output that is kept — then read at ``o * stride``.  Zero padding needs no padded copy: the
low pad is a rotation of the result.  Other padding modes pad the input first (an FFT has no
windows to gather into).  Dilation is a kernel with holes.  Depthwise: one product per
channel; dense: one small complex GEMM per frequency.

Cost grows with ``in log in`` and not with the kernel, so it wins for large kernels.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .. import threads, workspace
from ..windows import padded_copy


def applies(spec, x_shape, w_shape) -> bool:
    """Any forward convolution whose spectra fit under the workspace cap."""
    return not spec.transposed and spectra_bytes(spec, x_shape, w_shape) <= workspace.limit()


def spectra_bytes(spec, x_shape, w_shape) -> int:
    """Bytes of the input, kernel and output spectra (complex128, the widest case): a dense
    layer's kernel spectrum is C_out * C_in/G per frequency (DeepLab's ASPP: 7.8 GB)."""
    lengths = _lengths(x_shape[2:], spec.pads(x_shape[2:]))
    frequencies = math.prod(lengths[:-1]) * (lengths[-1] // 2 + 1)
    n, c_in, c_out = x_shape[0], x_shape[1], w_shape[0]
    return 16 * frequencies * (n * c_in + c_out * w_shape[1] + n * c_out)


def _workers() -> int:
    return threads.get_num_threads()


def _dilated_kernel(w, spec) -> np.ndarray:
    if max(spec.dilation) == 1:
        return w
    out = np.zeros(w.shape[:2] + spec.effective_kernel, w.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in spec.dilation)] = w
    return out


def _lengths(in_spatial, pads) -> tuple[int, ...]:
    """FFT lengths: each padded input size, rounded up to a fast length."""
    return tuple(sfft.next_fast_len(i + lo + hi, real=True) for i, (lo, hi) in zip(in_spatial, pads))


def _geometry(x, spec, pads):
    """(input to transform, its low pads still to apply as a rotation, FFT lengths)."""
    lengths = _lengths(x.shape[2:], pads)
    if spec.padding_mode != "zeros":
        return padded_copy(x, pads, spec.padding_mode), (0,) * spec.ndim, lengths
    return x, tuple(lo for lo, _ in pads), lengths


def _read_outputs(z, lows, out_spatial, stride):
    """Outputs o read z[o * stride - lo] (mod P): the low pad as a rotation."""
    index = tuple(np.ix_(*[(np.arange(o) * s - lo) % p for o, s, lo, p in
                           zip(out_spatial, stride, lows, z.shape[2:])]))
    return z[(slice(None), slice(None)) + index]


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, axes = w.shape[0], tuple(range(2, 2 + spec.ndim))
    x, lows, lengths = _geometry(x, spec, pads)
    kernel = _dilated_kernel(w, spec)
    xf = sfft.rfftn(x, lengths, axes=axes, workers=_workers())  # (N, C_in, *F)
    wf = np.conj(sfft.rfftn(kernel, lengths, axes=axes, workers=_workers()))  # (C_out, C_in/G, *F)
    freq = xf.shape[2:]
    if c_in // g == 1:  # depthwise: output channel c*m + j from input channel c
        m = c_out // c_in
        yf = xf[:, :, None] * wf.reshape((c_in, m) + freq)
        yf = yf.reshape((n, c_out) + freq)
    else:  # one complex GEMM per frequency and group: (N, C_in/G) @ (C_in/G, C_out/G)
        f = math.prod(freq)
        xg = xf.reshape(n, g, c_in // g, f).transpose(1, 3, 0, 2)  # (G, F, N, C_in/G)
        wg = wf.reshape(g, c_out // g, c_in // g, f).transpose(0, 3, 2, 1)  # (G, F, C_in/G, C_out/G)
        yf = np.matmul(xg, wg).transpose(2, 0, 3, 1).reshape((n, c_out) + freq)
    z = sfft.irfftn(yf, lengths, axes=axes, workers=_workers())
    return np.ascontiguousarray(_read_outputs(z, lows, out_spatial, spec.stride), dtype=x.dtype)


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    """Depthwise weight gradient, stride 1: gw[c, t] = sum_n (padded x[n, c] correlated with gy[n, c])[t * d]."""
    n, c_in, c_out = x.shape[0], x.shape[1], gy.shape[1]
    axes, m = tuple(range(2, 2 + spec.ndim)), c_out // c_in
    x, lows, lengths = _geometry(x, spec, pads)
    xf = sfft.rfftn(x, lengths, axes=axes, workers=_workers())
    gf = sfft.rfftn(gy, lengths, axes=axes, workers=_workers())
    freq = xf.shape[2:]
    prod = (xf[:, :, None] * np.conj(gf.reshape((n, c_in, m) + freq))).sum(axis=0)
    z = sfft.irfftn(prod.reshape((c_out, 1) + freq), lengths, axes=axes, workers=_workers())
    taps = [(np.arange(k) * d - lo) % p for k, d, lo, p in zip(spec.kernel_size, spec.dilation, lows, lengths)]
    return np.ascontiguousarray(z[(slice(None), slice(None)) + np.ix_(*taps)], dtype=x.dtype)


def weight_grad_applies(spec, x_shape, w_shape) -> bool:
    return spec.groups == x_shape[1] and max(spec.stride) == 1
