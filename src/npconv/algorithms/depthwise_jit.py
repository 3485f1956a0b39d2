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

Scratch (see :mod:`npconv.workspace`): each running job holds its tile, one row of outputs
per tap (the weights repeated, or the weight gradient's sums) and a row of accumulators, so
under a small cap the rows of a job are fewer (more row chunks); padding modes other than
zeros pad a copy of a few images at a time; where even one-row jobs do not fit, the
planner leaves the layer to ``depthwise_direct``.  Numba's allocations are not seen by
``tracemalloc``: they are counted here by :func:`_job_bytes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import workspace
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


@dataclass(frozen=True)
class Layout:
    """The geometry in the kernels' 2-D form (1-D: a height of one): the input plane the
    kernels read (padded, for modes other than zeros), its low pads, kernel, stride,
    dilation and output plane, and the padded tile's width."""

    in_hw: tuple
    lo_h: int
    lo_w: int
    kernel: tuple
    stride: tuple
    dilation: tuple
    out_hw: tuple

    @property
    def tile_width(self) -> int:
        """The padded tile's width, covering every column a window reads (its rows are per chunk)."""
        return max((self.out_hw[1] - 1) * self.stride[1] + self.dilation[1] * (self.kernel[1] - 1) + 1,
                   self.in_hw[1] + self.lo_w)


def _layout(spec, x_shape) -> Layout:
    pads, out = spec.pads(x_shape[2:]), spec.out_spatial(x_shape[2:])
    in_sp = tuple(x_shape[2:])
    if spec.padding_mode != "zeros":
        in_sp, pads = tuple(i + lo + hi for i, (lo, hi) in zip(in_sp, pads)), ((0, 0),) * spec.ndim
    lead, lead_pad = ((1,), ((0, 0),)) if spec.ndim == 1 else ((), ())
    pads = lead_pad + tuple(pads)
    return Layout(lead + in_sp, pads[0][0], pads[1][0], lead + spec.kernel_size, lead + spec.stride,
                  lead + spec.dilation, lead + tuple(out))


def _job_bytes(layout: Layout, rows: int, itemsize: int) -> int:
    """Numba's scratch per running job of ``rows`` output rows: the tile of the rows they read
    (B = BLOCK_CHANNELS channels innermost), one output row of B per tap (forward: the
    weights repeated; gradient: the sums) and one of accumulators (or grad_output)."""
    (kh, kw), out_w, block = layout.kernel, layout.out_hw[1], _kernels().BLOCK_CHANNELS
    tile_rows = (rows - 1) * layout.stride[0] + (kh - 1) * layout.dilation[0] + 1
    return itemsize * block * (tile_rows * layout.tile_width + (kh * kw + 1) * out_w)


def _padded_image_bytes(spec, layout, x_shape, itemsize) -> int:
    """One image's padded copy (padding modes other than zeros), else nothing."""
    return 0 if spec.padding_mode == "zeros" else x_shape[1] * math.prod(layout.in_hw) * itemsize


def _fixed_bytes(layout, w_shape, itemsize, grad: bool, row_chunks: int) -> int:
    """NumPy's scratch besides the padded copy: the weights (or their gradient, and its sum
    over image chunks) laid out channels last; the gradient's per-chunk partial sums (float64)."""
    weights = w_shape[0] * math.prod(layout.kernel) * itemsize
    return weights * (2 if grad else 1) + (8 * row_chunks * math.prod(layout.kernel) * w_shape[0] if grad else 0)


def _min_bytes(spec, x_shape, w_shape, itemsize, grad: bool) -> int:
    layout = _layout(spec, x_shape)
    return (_fixed_bytes(layout, w_shape, itemsize, grad, layout.out_hw[0])
            + _padded_image_bytes(spec, layout, x_shape, itemsize)
            + numba.get_num_threads() * _job_bytes(layout, 1, itemsize))


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """One padded image (modes other than zeros) and one-row jobs on every thread."""
    return _min_bytes(spec, x_shape, w_shape, itemsize, grad=False) if available() else 0


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    return _min_bytes(spec, x_shape, w_shape, itemsize, grad=True) if available() else 0


def _cap_rows(layout, itemsize, budget, partial_row_bytes: int = 0) -> int:
    """The most output rows per job whose jobs on every thread (and the gradient's partial sums
    per chunk, ``partial_row_bytes`` each) fit in ``budget``; at least one."""
    out_h, threads = layout.out_hw[0], numba.get_num_threads()

    def fits(rows):
        return threads * _job_bytes(layout, rows, itemsize) + partial_row_bytes * -(-out_h // rows) <= budget
    low, high = 1, out_h
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _image_chunks(spec, layout, x_shape, itemsize, fixed) -> tuple[int, int]:
    """(images per padded copy, bytes of that copy): all images when their copies fit in half
    of what the cap leaves, else as many as do (at least one)."""
    per_image = _padded_image_bytes(spec, layout, x_shape, itemsize)
    if per_image == 0:
        return x_shape[0], 0
    count = max(1, min(x_shape[0], (workspace.limit() - fixed) // 2 // per_image))
    return count, count * per_image


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


def _row_chunks(out_shape, per_image: bool = True) -> int:
    """Chunks of output rows per job (forward: image and channel block; weight gradient:
    channel block), when those alone are too few for JOBS_PER_THREAD jobs per thread (for
    balance; smaller chunks' tiles also stay in cache: 3 channels of 1024 x 1024, 5x5 weight
    gradient, 79 ms in one chunk, 44 in two, 25 in eight)."""
    n, c_out, out_h = out_shape[:3]
    jobs = (n if per_image else 1) * -(-c_out // _kernels().BLOCK_CHANNELS)
    wanted = JOBS_PER_THREAD * numba.get_num_threads()
    return max(1, min(out_h, -(-wanted // jobs)))


def _chunks_under_cap(out_h, balanced, layout, itemsize, budget, partial_row_bytes=0) -> int:
    """The balanced row chunks, or more where the cap needs shorter jobs."""
    rows = min(-(-out_h // balanced), _cap_rows(layout, itemsize, budget, partial_row_bytes))
    return max(balanced, -(-out_h // rows))


def _jobs_bytes(layout, row_chunks, itemsize, partial_row_bytes=0) -> int:
    """Numba's scratch with ``row_chunks`` chunks: a job on every thread (and the partial sums)."""
    rows = -(-layout.out_hw[0] // row_chunks)
    return numba.get_num_threads() * _job_bytes(layout, rows, itemsize) + partial_row_bytes * row_chunks


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    workspace.require({"depthwise_jit": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    layout = _layout(spec, x.shape)
    fixed = _fixed_bytes(layout, w.shape, x.itemsize, False, 0)
    step, copy_bytes = _image_chunks(spec, layout, x.shape, x.itemsize, fixed)
    out = np.empty((x.shape[0], w.shape[0]) + layout.out_hw, x.dtype)
    w_t = np.ascontiguousarray((w[:, :, None] if spec.ndim == 1 else w)[:, 0].transpose(1, 2, 0))
    for start in range(0, x.shape[0], step):
        chunk = out[start:start + step]
        row_chunks = _chunks_under_cap(layout.out_hw[0], _row_chunks(chunk.shape), layout, x.itemsize,
                                       workspace.limit() - fixed - copy_bytes)
        workspace.make_room(fixed + copy_bytes + _jobs_bytes(layout, row_chunks, x.itemsize))
        x2, _, lo_h, lo_w, stride, dilation = _as_2d(x[start:start + step], spec, pads)
        _kernels().forward(x2, w_t, chunk, lo_h, lo_w, *stride, *dilation, layout.tile_width, row_chunks)
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    w_shape = (gy.shape[1], 1) + spec.kernel_size
    workspace.require({"depthwise_jit": weight_grad_min_workspace(spec, x.shape, w_shape, x.itemsize)})
    layout = _layout(spec, x.shape)
    partial_row = 8 * math.prod(layout.kernel) * gy.shape[1]  # the float64 partial sums of one row chunk
    fixed = _fixed_bytes(layout, w_shape, x.itemsize, True, 0)
    step, copy_bytes = _image_chunks(spec, layout, x.shape, x.itemsize, fixed + partial_row * layout.out_hw[0])
    gy2 = np.ascontiguousarray(gy.reshape((gy.shape[0], gy.shape[1]) + layout.out_hw))
    gw_t = np.zeros(layout.kernel + (gy.shape[1],), x.dtype)
    part = np.empty_like(gw_t) if step < x.shape[0] else gw_t
    for start in range(0, x.shape[0], step):
        row_chunks = _chunks_under_cap(layout.out_hw[0], _row_chunks(gy2.shape, False), layout, x.itemsize,
                                       workspace.limit() - fixed - copy_bytes, partial_row)
        workspace.make_room(fixed + copy_bytes + _jobs_bytes(layout, row_chunks, x.itemsize, partial_row))
        x2, _, lo_h, lo_w, stride, dilation = _as_2d(x[start:start + step], spec, pads)
        _kernels().weight_grad(x2, gy2[start:start + step], part, lo_h, lo_w, *stride, *dilation,
                               layout.tile_width, row_chunks)
        if part is not gw_t:
            gw_t += part
    return np.ascontiguousarray(gw_t.transpose(2, 0, 1)).reshape((gy.shape[1], 1) + spec.kernel_size)
