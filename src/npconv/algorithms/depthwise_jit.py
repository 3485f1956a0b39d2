"""Depthwise convolution compiled with Numba (optional: ``pip install 'npconv[jit]'``).

NumPy cannot do a small depthwise kernel fast: each tap is a pass over the whole block, so a
3x3 layer makes 18 passes (MobileNetV2 row of the benchmark: 15 ms in NumPy, 2 ms for
PyTorch).  These kernels work on blocks of ``BLOCK_CHANNELS`` channels of one image: the
block is copied, zero-padded and channels-innermost, into a scratch tile that stays in
cache; every output pixel is then a sum over taps of ``weight[tap, :] * tile[pixel + tap, :]``
— a vector over the block's channels, whatever the plane size (a 7x7 plane is too small to
vectorise along its rows; 960 channels are not).  Blocks of all images run in parallel.
The weight gradient keeps the same tiles and sums ``grad[pixel, :] * tile[pixel + tap, :]``,
in parallel over channel blocks so that no two threads add into the same weights.

1-D layers run as 2-D with a height of one; the NumPy version (``depthwise.py``) remains for
3-D, for machines without Numba, and as the tested fallback.
"""

from __future__ import annotations

import functools

import numpy as np

from ..windows import padded_copy

try:
    import numba
except ImportError:  # the planner falls back to depthwise_direct
    numba = None

BLOCK_CHANNELS = 16


def available() -> bool:
    return numba is not None


def applies(spec, x_shape, w_shape) -> bool:
    return available() and not spec.transposed and spec.groups == x_shape[1] and spec.ndim in (1, 2)


@functools.lru_cache(maxsize=None)
def _kernels():
    """Compiled on first use (and cached on disk by Numba), not at import."""
    prange = numba.prange
    # reassociation lets the channel loops vectorise; no assumption about NaN/Inf
    jit = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
    inline = numba.njit(cache=True, fastmath={"reassoc", "contract"})

    @inline
    def load_tile(x, n, co0, cb, m, lo_h, lo_w, tile):
        """tile[r + lo_h, (s + lo_w) * B + k] = x[n, (co0 + k) // m, r, s] (B = BLOCK_CHANNELS); zeros elsewhere."""
        tile[:] = 0
        for k in range(cb):
            plane = x[n, (co0 + k) // m]
            for r in range(plane.shape[0]):
                for s in range(plane.shape[1]):
                    tile[r + lo_h, (s + lo_w) * BLOCK_CHANNELS + k] = plane[r, s]

    @inline
    def tap_products(tile, r, col0, sw, factors, acc):
        """acc[q * B + k] += factors[q * B + k] * tile[r, (col0 + q * sw) * B + k] over a row of outputs.

        At stride 1 this is one contiguous loop (vectorised, one alias check per row); at
        other strides one loop per output pixel."""
        width = acc.shape[0] // BLOCK_CHANNELS
        if sw == 1:
            source = tile[r, col0 * BLOCK_CHANNELS:(col0 + width) * BLOCK_CHANNELS]
            for e in range(acc.shape[0]):
                acc[e] += factors[e] * source[e]
        else:
            for q in range(width):
                base, start = q * BLOCK_CHANNELS, (col0 + q * sw) * BLOCK_CHANNELS
                for k in range(BLOCK_CHANNELS):
                    acc[base + k] += factors[base + k] * tile[r, start + k]

    @jit
    def forward(x, w_t, out, lo_h, lo_w, sh, sw, dh, dw, hp, wp):
        """x (N, C_in, H, W), w_t (kh, kw, C_out), out (N, C_out, out_h, out_w)."""
        n_images, c_out, out_h, out_w = out.shape
        kh, kw = w_t.shape[0], w_t.shape[1]
        m = c_out // x.shape[1]
        blocks = (c_out + BLOCK_CHANNELS - 1) // BLOCK_CHANNELS
        for job in prange(n_images * blocks):
            n, co0 = job // blocks, (job % blocks) * BLOCK_CHANNELS
            cb = min(BLOCK_CHANNELS, c_out - co0)
            tile = np.empty((hp, wp * BLOCK_CHANNELS), x.dtype)
            load_tile(x, n, co0, cb, m, lo_h, lo_w, tile)
            weights = np.zeros((kh, kw, out_w * BLOCK_CHANNELS), x.dtype)  # each tap's weights, repeated along a row
            for i in range(kh):
                for j in range(kw):
                    for q in range(out_w):
                        weights[i, j, q * BLOCK_CHANNELS:q * BLOCK_CHANNELS + cb] = w_t[i, j, co0:co0 + cb]
            acc = np.empty(out_w * BLOCK_CHANNELS, x.dtype)
            for h in range(out_h):
                acc[:] = 0
                for i in range(kh):
                    for j in range(kw):
                        tap_products(tile, h * sh + i * dh, j * dw, sw, weights[i, j], acc)
                for k in range(cb):
                    for q in range(out_w):
                        out[n, co0 + k, h, q] = acc[q * BLOCK_CHANNELS + k]

    @jit
    def weight_grad(x, gy, gw_t, lo_h, lo_w, sh, sw, dh, dw, hp, wp):
        """d loss / d w as gw_t (kh, kw, C_out), from x (N, C_in, H, W) and gy (N, C_out, out_h, out_w)."""
        n_images, c_out, out_h, out_w = gy.shape
        kh, kw = gw_t.shape[0], gw_t.shape[1]
        m = c_out // x.shape[1]
        blocks = (c_out + BLOCK_CHANNELS - 1) // BLOCK_CHANNELS
        for block in prange(blocks):
            co0 = block * BLOCK_CHANNELS
            cb = min(BLOCK_CHANNELS, c_out - co0)
            tile = np.empty((hp, wp * BLOCK_CHANNELS), x.dtype)
            grads = np.zeros(out_w * BLOCK_CHANNELS, x.dtype)
            sums = np.zeros((kh, kw, out_w * BLOCK_CHANNELS), x.dtype)  # per tap, per output column
            for n in range(n_images):
                load_tile(x, n, co0, cb, m, lo_h, lo_w, tile)
                for h in range(out_h):
                    for k in range(cb):
                        for q in range(out_w):
                            grads[q * BLOCK_CHANNELS + k] = gy[n, co0 + k, h, q]
                    for i in range(kh):
                        for j in range(kw):
                            tap_products(tile, h * sh + i * dh, j * dw, sw, grads, sums[i, j])
            for i in range(kh):
                for j in range(kw):
                    for k in range(cb):
                        total = 0.0
                        for q in range(out_w):
                            total += sums[i, j, q * BLOCK_CHANNELS + k]
                        gw_t[i, j, co0 + k] = total

    return forward, weight_grad


def _as_2d(x, spec, pads, w=None):
    """(x, w, lo_h, lo_w, stride, dilation) in 2-D form, padding modes other than zeros applied."""
    if spec.padding_mode != "zeros":
        x = padded_copy(x, pads, spec.padding_mode)
        pads = ((0, 0),) * spec.ndim
    stride, dilation = spec.stride, spec.dilation
    if spec.ndim == 1:
        x, pads = x[:, :, None], ((0, 0),) + tuple(pads)
        w = None if w is None else w[:, :, None]
        stride, dilation = (1,) + stride, (1,) + dilation
    return np.ascontiguousarray(x), w, pads[0][0], pads[1][0], stride, dilation


def _tile_size(x2, lo_h, lo_w, out_h, out_w, stride, dilation, kernel):
    """(hp, wp): the padded tile, covering every position a window reads."""
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip((out_h, out_w), stride, dilation, kernel)]
    return max(reach[0], x2.shape[2] + lo_h), max(reach[1], x2.shape[3] + lo_w)


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    x2, w2, lo_h, lo_w, stride, dilation = _as_2d(x, spec, pads, w)
    out = np.empty((x.shape[0], w.shape[0]) + ((1,) if spec.ndim == 1 else ()) + tuple(out_spatial), x.dtype)
    w_t = np.ascontiguousarray(w2[:, 0].transpose(1, 2, 0))
    hp, wp = _tile_size(x2, lo_h, lo_w, out.shape[2], out.shape[3], stride, dilation, w_t.shape[:2])
    _kernels()[0](x2, w_t, out, lo_h, lo_w, *stride, *dilation, hp, wp)
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    x2, _, lo_h, lo_w, stride, dilation = _as_2d(x, spec, pads)
    gy2 = np.ascontiguousarray(gy[:, :, None] if spec.ndim == 1 else gy)
    kernel = ((1,) if spec.ndim == 1 else ()) + spec.kernel_size
    gw_t = np.empty(kernel + (gy.shape[1],), x.dtype)
    hp, wp = _tile_size(x2, lo_h, lo_w, gy2.shape[2], gy2.shape[3], stride, dilation, kernel)
    _kernels()[1](x2, gy2, gw_t, lo_h, lo_w, *stride, *dilation, hp, wp)
    return np.ascontiguousarray(gw_t.transpose(2, 0, 1)).reshape((gy.shape[1], 1) + spec.kernel_size)
