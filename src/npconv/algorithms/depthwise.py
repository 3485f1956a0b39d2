"""Direct depthwise convolution (groups == in_channels) for small kernels: one multiply-add
of a shifted view per kernel tap, on blocks of channels small enough to stay in cache.
Output channel ``c * m + j`` (m = out_channels / in_channels) reads input channel ``c``.

No window buffer: each tap is a strided view of the block's padded copy (the block is a
few hundred KiB; the padding mode is applied while the block is copied).
"""

from __future__ import annotations

import math

import numpy as np

from ..windows import padded_copy

BLOCK_BYTES = 512 * 2**10


def applies(spec, x_shape, w_shape) -> bool:
    return not spec.transposed and spec.groups == x_shape[1]


def _blocks(n, c, bytes_per_plane):
    """(image slice, channel slice) blocks of about BLOCK_BYTES of padded input each."""
    per_block = max(1, BLOCK_BYTES // max(bytes_per_plane, 1))
    for i in range(n):
        for start in range(0, c, per_block):
            yield slice(i, i + 1), slice(start, min(start + per_block, c))


def _tap_view(padded, tap, spec, out_spatial):
    return padded[(slice(None), slice(None)) + tuple(
        slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(tap, spec.dilation, spec.stride, out_spatial))]


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    n, c = x.shape[:2]
    m = w.shape[0] // c
    weights = w.reshape((c, m) + spec.kernel_size)
    out = np.empty((n, c, m) + tuple(out_spatial), x.dtype)
    plane = math.prod(i + lo + hi for i, (lo, hi) in zip(x.shape[2:], pads)) * x.itemsize
    for images, channels in _blocks(n, c, plane):
        padded = padded_copy(x[images, channels], pads, spec.padding_mode)
        acc = np.zeros((1, padded.shape[1], m) + tuple(out_spatial), x.dtype)
        scratch = np.empty_like(acc)
        for tap in np.ndindex(*spec.kernel_size):
            tap_w = weights[(channels, slice(None)) + tap].reshape((1, -1, m) + (1,) * spec.ndim)
            np.multiply(_tap_view(padded, tap, spec, out_spatial)[:, :, None], tap_w, out=scratch)
            acc += scratch
        out[images, channels] = acc
    return out.reshape((n, c * m) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    n, c = x.shape[:2]
    m = gy.shape[1] // c
    grads = gy.reshape((n, c, m) + gy.shape[2:])
    out_spatial = gy.shape[2:]
    gw = np.zeros((c, m) + spec.kernel_size, x.dtype)
    plane = math.prod(i + lo + hi for i, (lo, hi) in zip(x.shape[2:], pads)) * x.itemsize
    for images, channels in _blocks(n, c, plane):
        padded = padded_copy(x[images, channels], pads, spec.padding_mode)
        g_block = grads[images, channels]
        dims = "xyz"[:spec.ndim]
        for tap in np.ndindex(*spec.kernel_size):
            view = _tap_view(padded, tap, spec, out_spatial)
            gw[(channels, slice(None)) + tap] += np.einsum(f"nc{dims},ncm{dims}->cm", view, g_block)
    return gw.reshape((c * m, 1) + spec.kernel_size)
