"""FFT convolution for large kernels (depthwise and dense), with ``scipy.fft``.

The correlation ``y[o] = sum_t w[t] x[o + t - lo]`` is computed as a circular correlation of
length ``P >= in + lo + hi`` (``next_fast_len``) — long enough that nothing wraps onto an
output that is kept — then read at ``o * stride``.  Zero padding needs no padded copy: the
low pad is a rotation of the result.  Other padding modes pad the input first (an FFT has no
windows to gather into).  Dilation is a kernel with holes.  Depthwise: one product per
channel; dense: one small complex GEMM per frequency.

Cost grows with ``in log in`` and not with the kernel, so it wins for large kernels.

Scratch is the spectra and the transforms' copies: each stage frees what the next does not
need, and :func:`min_workspace` is the largest stage, counted buffer by buffer (including the
copy pocketfft makes inside a multi-dim inverse, which ``tracemalloc`` does not see).  Nothing
is chunked: where the stages exceed the workspace cap, FFT is not a candidate.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .. import threads, workspace
from ..windows import padded_copy


def applies(spec, x_shape, w_shape) -> bool:
    """Any forward convolution whose stages fit under the workspace cap, counted for float64
    (the widest case: the planner knows no dtype here)."""
    return not spec.transposed and min_workspace(spec, x_shape, w_shape, 8) <= workspace.limit()


def _sizes(spec, x_shape):
    """(real points P, frequencies F) of the FFT lengths, and the padded input's points (modes
    other than zeros pad a copy first; zeros: none)."""
    pads = spec.pads(x_shape[2:])
    lengths = _lengths(x_shape[2:], pads)
    padded = 0 if spec.padding_mode == "zeros" else math.prod(i + lo + hi for i, (lo, hi) in zip(x_shape[2:], pads))
    return math.prod(lengths), math.prod(lengths[:-1]) * (lengths[-1] // 2 + 1), padded


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """The forward's largest stage (real values P each, spectra F complex values each):
    kernel: its zero-filled copy and spectrum (and the dilated kernel); input: the kernel
    spectrum, the padded copy (modes), the zero-filled copy and spectrum; product: the kernel,
    input and output spectra (dense: the output twice, the GEMM's order and NCF); inverse: the
    output spectrum, pocketfft's copy of it and the real result."""
    points, freqs, padded = _sizes(spec, x_shape)
    real, cplx = itemsize, 2 * itemsize
    kernels, inputs, outputs = w_shape[0] * w_shape[1], x_shape[0] * x_shape[1], x_shape[0] * w_shape[0]
    dilated = kernels * math.prod(spec.effective_kernel) * real if max(spec.dilation) > 1 else 0
    return max(dilated + kernels * (points * real + freqs * cplx),
               kernels * freqs * cplx + inputs * (padded * real + points * real + freqs * cplx),
               (kernels + inputs + outputs * (1 if w_shape[1] == 1 else 2)) * freqs * cplx,
               outputs * (2 * freqs * cplx + points * real))


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """The depthwise weight gradient's largest stage: input spectrum (after its copies), then
    grad_output's zero-filled copy and spectrum, their sum over images, and the inverse of it."""
    points, freqs, padded = _sizes(spec, x_shape)
    real, cplx = itemsize, 2 * itemsize
    inputs, grads, c_out = x_shape[0] * x_shape[1], x_shape[0] * w_shape[0], w_shape[0]
    return max(inputs * (padded * real + points * real + freqs * cplx),
               inputs * freqs * cplx + grads * (points * real + freqs * cplx),
               (inputs + grads + c_out) * freqs * cplx,
               c_out * (2 * freqs * cplx + points * real))


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


def _input_spectrum(x, spec, pads, lengths):
    """(spectrum of the input, its low pads still to apply as a rotation): modes other than
    zeros transform a padded copy (freed here), zeros the input itself."""
    axes = tuple(range(2, 2 + spec.ndim))
    if spec.padding_mode != "zeros":
        return sfft.rfftn(padded_copy(x, pads, spec.padding_mode), lengths, axes=axes, workers=_workers()), \
            (0,) * spec.ndim
    return sfft.rfftn(x, lengths, axes=axes, workers=_workers()), tuple(lo for lo, _ in pads)


def _kernel_spectrum(w, spec, lengths):
    """conj(rfftn(kernel)): (C_out, C_in/G, *F), conjugated in place."""
    axes = tuple(range(2, 2 + spec.ndim))
    wf = sfft.rfftn(_dilated_kernel(w, spec), lengths, axes=axes, workers=_workers())
    return np.conjugate(wf, out=wf)


def _read_outputs(z, lows, out_spatial, stride):
    """Outputs o read z[o * stride - lo] (mod P): the low pad as a rotation."""
    index = tuple(np.ix_(*[(np.arange(o) * s - lo) % p for o, s, lo, p in
                           zip(out_spatial, stride, lows, z.shape[2:])]))
    return z[(slice(None), slice(None)) + index]


def _product(xf, wf, groups):
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


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    need = min_workspace(spec, x.shape, w.shape, x.itemsize)
    workspace.require({"fft": need})
    workspace.make_room(need)
    axes, lengths = tuple(range(2, 2 + spec.ndim)), _lengths(x.shape[2:], pads)
    wf = _kernel_spectrum(w, spec, lengths)
    xf, lows = _input_spectrum(x, spec, pads, lengths)
    yf = _product(xf, wf, spec.groups)
    del xf, wf  # the inverse's stage holds only the output spectrum
    z = sfft.irfftn(yf, lengths, axes=axes, workers=_workers())
    del yf
    return np.ascontiguousarray(_read_outputs(z, lows, out_spatial, spec.stride), dtype=x.dtype)


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    """Depthwise weight gradient, stride 1: gw[c, t] = sum_n (padded x[n, c] correlated with gy[n, c])[t * d]."""
    n, c_in, c_out = x.shape[0], x.shape[1], gy.shape[1]
    need = weight_grad_min_workspace(spec, x.shape, (c_out, 1) + spec.kernel_size, x.itemsize)
    workspace.require({"fft": need})
    workspace.make_room(need)
    axes, m, lengths = tuple(range(2, 2 + spec.ndim)), c_out // c_in, _lengths(x.shape[2:], pads)
    xf, lows = _input_spectrum(x, spec, pads, lengths)
    gf = sfft.rfftn(gy, lengths, axes=axes, workers=_workers())
    freq = xf.shape[2:]
    products = np.conjugate(gf, out=gf).reshape((n, c_in, m) + freq)
    products *= xf[:, :, None]  # x's spectrum times conj(grad_output's), in place
    del xf
    total = products.sum(axis=0)
    del gf, products
    z = sfft.irfftn(total.reshape((c_out, 1) + freq), lengths, axes=axes, workers=_workers())
    taps = [(np.arange(k) * d - lo) % p for k, d, lo, p in zip(spec.kernel_size, spec.dilation, lows, lengths)]
    return np.ascontiguousarray(z[(slice(None), slice(None)) + np.ix_(*taps)], dtype=x.dtype)


def weight_grad_applies(spec, x_shape, w_shape) -> bool:
    return spec.groups == x_shape[1] and max(spec.stride) == 1
