"""Depthwise convolution compiled with Numba (optional: ``pip install 'npconv[jit]'``).

NumPy cannot do a small depthwise kernel fast: each tap is a pass over the whole block, so a
3x3 layer makes 18 passes (MobileNetV2 row of the benchmark: 15 ms in NumPy, 2 ms for
PyTorch).  These kernels (``depthwise_jit_kernels``) work on blocks of ``BLOCK_CHANNELS`` (16) channels of one image: the
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


JOBS_PER_THREAD = 4


def _kernels():
    """The compiled kernels' module, imported on first use; Numba compiles each kernel on its
    first call and caches it on disk, so nothing is compiled at import."""
    from . import depthwise_jit_kernels
    return depthwise_jit_kernels


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


def _tile_width(x2, lo_w, out_w, stride, dilation, kernel) -> int:
    """The padded tile's width, covering every column a window reads (its rows are per chunk)."""
    return max((out_w - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1, x2.shape[3] + lo_w)


def _row_chunks(out_shape, per_image: bool = True) -> int:
    """Chunks of output rows per job (forward: image and channel block; weight gradient:
    channel block), when those alone are too few for JOBS_PER_THREAD jobs per thread (for
    balance; smaller chunks' tiles also stay in cache: 3 channels of 1024 x 1024, 5x5 weight
    gradient, 79 ms in one chunk, 44 in two, 25 in eight)."""
    n, c_out, out_h = out_shape[:3]
    jobs = (n if per_image else 1) * -(-c_out // _kernels().BLOCK_CHANNELS)
    wanted = JOBS_PER_THREAD * numba.get_num_threads()
    return max(1, min(out_h, -(-wanted // jobs)))


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    x2, w2, lo_h, lo_w, stride, dilation = _as_2d(x, spec, pads, w)
    out = np.empty((x.shape[0], w.shape[0]) + ((1,) if spec.ndim == 1 else ()) + tuple(out_spatial), x.dtype)
    w_t = np.ascontiguousarray(w2[:, 0].transpose(1, 2, 0))
    wp = _tile_width(x2, lo_w, out.shape[3], stride, dilation, w_t.shape[:2])
    _kernels().forward(x2, w_t, out, lo_h, lo_w, *stride, *dilation, wp, _row_chunks(out.shape))
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    x2, _, lo_h, lo_w, stride, dilation = _as_2d(x, spec, pads)
    gy2 = np.ascontiguousarray(gy[:, :, None] if spec.ndim == 1 else gy)
    kernel = ((1,) if spec.ndim == 1 else ()) + spec.kernel_size
    gw_t = np.empty(kernel + (gy.shape[1],), x.dtype)
    wp = _tile_width(x2, lo_w, gy2.shape[3], stride, dilation, kernel)
    _kernels().weight_grad(x2, gy2, gw_t, lo_h, lo_w, *stride, *dilation, wp, _row_chunks(gy2.shape, False))
    return np.ascontiguousarray(gw_t.transpose(2, 0, 1)).reshape((gy.shape[1], 1) + spec.kernel_size)
