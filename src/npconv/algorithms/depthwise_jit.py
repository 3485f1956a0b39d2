"""Depthwise convolution compiled with Numba (optional: ``pip install 'npconv[jit]'``).

NumPy cannot do a small depthwise kernel fast: each tap is a pass over the whole block, so a
3x3 layer makes 18 passes (MobileNetV2 row of the benchmark: 16 ms in NumPy, 1.5-2.5 ms for
PyTorch).  This kernel makes one pass per output row with the taps in registers, reads zero
padding as "skip" (no padded copy), and runs the planes in parallel: about 2 ms.
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


def available() -> bool:
    return numba is not None


def applies(spec, x_shape, w_shape) -> bool:
    return available() and not spec.transposed and spec.groups == x_shape[1] and spec.ndim in (1, 2)


@functools.lru_cache(maxsize=None)
def _kernels():
    """Compiled on first use (and cached on disk by Numba), not at import."""
    prange = numba.prange
    # reassociation lets the weight-gradient sums vectorise; no assumption about NaN/Inf
    jit = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})

    @jit
    def forward(x, w, out, lo_h, lo_w, sh, sw, dh, dw):
        n_images, c_out, out_h, out_w = out.shape
        height, width, kh, kw = x.shape[2], x.shape[3], w.shape[2], w.shape[3]
        m = c_out // x.shape[1]
        for plane in prange(n_images * c_out):
            n, co = plane // c_out, plane % c_out
            image, result = x[n, co // m], out[n, co]
            for h in range(out_h):
                acc = result[h]
                acc[:] = 0
                for i in range(kh):
                    r = h * sh + i * dh - lo_h
                    if r < 0 or r >= height:
                        continue
                    row = image[r]
                    for j in range(kw):
                        weight, off = w[co, 0, i, j], j * dw - lo_w
                        q0 = max(0, (sw - 1 - off) // sw)  # first q with q*sw + off >= 0
                        q1 = min(out_w, (width - off + sw - 1) // sw)
                        if q1 <= q0:
                            continue
                        dst = acc[q0:q1]
                        if sw == 1:  # a contiguous zero-based slice: the loop Numba vectorises
                            src = row[q0 + off:q1 + off]
                            for q in range(q1 - q0):
                                dst[q] += weight * src[q]
                        else:
                            strided = row[q0 * sw + off:(q1 - 1) * sw + off + 1:sw]
                            for q in range(q1 - q0):
                                dst[q] += weight * strided[q]

    @jit
    def weight_grad(x, gy, gw, lo_h, lo_w, sh, sw, dh, dw):
        n_images, c_out, out_h, out_w = gy.shape
        height, width, kh, kw = x.shape[2], x.shape[3], gw.shape[2], gw.shape[3]
        m = c_out // x.shape[1]
        for co in prange(c_out):
            for i in range(kh):
                for j in range(kw):
                    off = j * dw - lo_w
                    q0 = max(0, (sw - 1 - off) // sw)
                    q1 = min(out_w, (width - off + sw - 1) // sw)
                    total = 0.0
                    for n in range(n_images):
                        image, grads = x[n, co // m], gy[n, co]
                        for h in range(out_h):
                            r = h * sh + i * dh - lo_h
                            if r < 0 or r >= height or q1 <= q0:
                                continue
                            g = grads[h, q0:q1]
                            if sw == 1:
                                src = image[r, q0 + off:q1 + off]
                                for q in range(q1 - q0):
                                    total += g[q] * src[q]
                            else:
                                strided = image[r, q0 * sw + off:(q1 - 1) * sw + off + 1:sw]
                                for q in range(q1 - q0):
                                    total += g[q] * strided[q]
                    gw[co, 0, i, j] = total

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


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    x2, w2, lo_h, lo_w, (sh, sw), (dh, dw) = _as_2d(x, spec, pads, w)
    out = np.empty((x.shape[0], w.shape[0]) + ((1,) if spec.ndim == 1 else ()) + tuple(out_spatial), x.dtype)
    _kernels()[0](x2, np.ascontiguousarray(w2), out, lo_h, lo_w, sh, sw, dh, dw)
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    x2, _, lo_h, lo_w, (sh, sw), (dh, dw) = _as_2d(x, spec, pads)
    gy2 = np.ascontiguousarray(gy[:, :, None] if spec.ndim == 1 else gy)
    kernel = ((1,) if spec.ndim == 1 else ()) + spec.kernel_size
    gw = np.empty((gy.shape[1], 1) + kernel, x.dtype)
    _kernels()[1](x2, gy2, gw, lo_h, lo_w, sh, sw, dh, dw)
    return gw.reshape((gy.shape[1], 1) + spec.kernel_size)
