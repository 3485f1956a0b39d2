"""The reference convolution: the definition, written to be read, computed in float64.

It shares nothing with the fast path but the arguments: padding is a real padded copy
(``np.pad``), each kernel tap is one strided slice, and transposed convolution is computed by
its own definition — every input element times the kernel, placed ``stride`` apart, overlaps
summed — not by flipping kernels.  Use it for tests and to see what a convolution is:

>>> import numpy as np
>>> x = np.arange(36.).reshape(1, 1, 6, 6)
>>> conv_reference(x, np.ones((1, 1, 3, 3)), stride=(2, 2), pads=((1, 1), (1, 1)))[0, 0]
array([[ 14.,  30.,  42.],
       [ 75., 126., 144.],
       [147., 234., 252.]])
"""

from __future__ import annotations

import numpy as np

NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _tap_slices(tap, dilation, stride, count):
    """Slices that pick, for one kernel tap, the positions t*d, t*d + s, ... (count of them)."""
    return tuple(slice(t * d, t * d + s * (c - 1) + 1, s)
                 for t, d, s, c in zip(tap, dilation, stride, count))


def conv_reference(x, w, bias=None, *, stride, pads, dilation=None, groups=1, padding_mode="zeros"):
    """Batched cross-correlation: x (N, C_in, *in), w (C_out, C_in/G, *k) -> (N, C_out, *out)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n_dims = w.ndim - 2
    dilation = dilation or (1,) * n_dims
    padded = np.pad(x, [(0, 0), (0, 0), *pads], mode=NUMPY_PAD_MODES[padding_mode])
    kernel = w.shape[2:]
    out_spatial = [(p - d * (k - 1) - 1) // s + 1
                   for p, k, d, s in zip(padded.shape[2:], kernel, dilation, stride)]
    n, g = x.shape[0], groups
    out = np.zeros((n, g, w.shape[0] // g, *out_spatial))
    for tap in np.ndindex(*kernel):
        window = padded[(slice(None), slice(None)) + _tap_slices(tap, dilation, stride, out_spatial)]
        window = window.reshape(n, g, -1, *out_spatial)  # (N, G, C_in/G, *out)
        taps = w[(slice(None), slice(None)) + tap].reshape(g, -1, w.shape[1])  # (G, C_out/G, C_in/G)
        out += np.einsum("ngc...,goc->ngo...", window, taps)
    out = out.reshape(n, -1, *out_spatial)
    return out if bias is None else out + np.reshape(bias, (-1,) + (1,) * n_dims)


def conv_transpose_reference(x, w, bias=None, *, stride, pads, dilation=None, groups=1,
                             output_padding=None):
    """x (N, C_in, *in), w (C_in, C_out/G, *k): each input element scatters kernel * value."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n_dims = w.ndim - 2
    dilation = dilation or (1,) * n_dims
    output_padding = output_padding or (0,) * n_dims
    n, g, in_spatial, kernel = x.shape[0], groups, x.shape[2:], w.shape[2:]
    full = [(i - 1) * s + d * (k - 1) + 1 + op
            for i, s, d, k, op in zip(in_spatial, stride, dilation, kernel, output_padding)]
    out = np.zeros((n, g, w.shape[1], *full))
    grouped = x.reshape(n, g, -1, *in_spatial)  # (N, G, C_in/G, *in)
    for tap in np.ndindex(*kernel):
        taps = w[(slice(None), slice(None)) + tap].reshape(g, -1, w.shape[1])  # (G, C_in/G, C_out/G)
        placed = _tap_slices(tap, dilation, stride, in_spatial)
        out[(slice(None),) * 3 + placed] += np.einsum("ngc...,gco->ngo...", grouped, taps)
    crop = tuple(slice(lo, f - hi) for (lo, hi), f in zip(pads, full))
    out = out.reshape(n, -1, *full)[(slice(None), slice(None)) + crop]
    return out if bias is None else out + np.reshape(bias, (-1,) + (1,) * n_dims)
