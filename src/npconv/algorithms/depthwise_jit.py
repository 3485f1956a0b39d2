"""Depthwise and few-channel grouped convolution compiled with Numba (optional: ``pip install 'npconv[jit]'``).

NumPy cannot do a small depthwise kernel fast: each tap is a pass over the whole block, so a
3x3 layer makes 18 passes (MobileNetV2 row of the benchmark: 15 ms in NumPy, 2 ms for
PyTorch).  Two compiled layouts (``depthwise_jit_kernels``), chosen by the output width:

- **planes** (NCHW-native, output rows of ``WIDE_ROWS`` or more): a job is (image, group, chunk
  of output rows); the group's C_in/groups input planes are copied, for the rows the chunk
  reads, into a tile padded through per-dim index tables (every padding mode, no padded copy
  of the input) and split by column phase, so that at stride 2 every tap still reads a
  contiguous run; each output row is then a sum over C_in/groups x taps of weight x tile run,
  vectorised along the row, four taps per pass.  One kernel serves depthwise (C_in/groups = 1),
  channel multipliers (C_out = m * C_in) and grouped layers with few channels per group
  (ResNeXt: 4 in, 4 out per group), where each tile row is read by every output channel of the group.
- **channels** (narrow rows, depthwise only): a 7-wide row fills no 8-lane vector, 960
  channels do.  A job is (image, block of ``BLOCK_CHANNELS`` channels, chunk of rows), its tile
  the block's planes transposed to channels innermost by the kernel itself (NumPy transposes
  in and out cost more than the convolution: 0.5 ms against 0.2 on 8 x 960 x 7 x 7), and each
  tap is one contiguous multiply-add over a whole output row of the block.

The weight gradient uses the same tiles: jobs are (group or channel block, chunk of output
rows), each summing over every image into its own partial sums (float64 per row dot product
in the planes layout), so no two threads add into the same weights.  1-D layers run as 2-D
with a height of one; 3-D layers go to the NumPy ``depthwise_direct`` or to im2col + GEMM.

Scratch (see :mod:`npconv.workspace`): each running job holds its tile and a row or two of
accumulators (channels layout: one output row of B per tap too), so under a small cap the
rows of a job are fewer (more row chunks); where even one-row jobs do not fit, the planner
leaves the layer to another algorithm.  Numba's allocations are not seen by ``tracemalloc``:
they are counted here by :func:`_job_bytes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import compiled, workspace

try:
    import numba
except ImportError:  # the planner falls back to depthwise_direct / im2col_gemm
    numba = None

# the most input channels per group the planes kernel takes: each output row sums
# C_in/groups x taps runs, so past this a GEMM over the windows does better
MAX_GROUP_CHANNELS = 16
# output rows at least this wide run NCHW-native (planes); narrower ones channels innermost
WIDE_ROWS = 16
JOBS_PER_THREAD = 4
SUMS_BYTES = 256 * 2**10  # Zen 3's L2 is 512 KiB per core
BLOCK_CHANNELS = 16  # the channels layout's block (depthwise_jit_kernels.BLOCK_CHANNELS)


def available() -> bool:
    return compiled.available()


def applies(spec, x_shape, w_shape) -> bool:
    return (available() and not spec.transposed and spec.ndim in (1, 2)
            and spec.channels_per_group(x_shape[1]) <= MAX_GROUP_CHANNELS)


def _kernels():
    """The compiled kernels' module, imported on first use; Numba compiles each kernel on its
    first call and caches it on disk, so nothing is compiled at import."""
    return compiled.kernels("depthwise_jit_kernels")


@dataclass(frozen=True)
class Layout:
    """The geometry in the kernels' 2-D form (1-D: a height of one): the input plane, its low
    pads, kernel, stride, dilation, output plane, input channels per group, and whether the
    kernels run channels innermost (narrow rows, depthwise) or NCHW-native planes."""

    in_hw: tuple
    lo_h: int
    lo_w: int
    kernel: tuple
    stride: tuple
    dilation: tuple
    out_hw: tuple
    group_channels: int
    channels_inner: bool

    @property
    def tile_width(self) -> int:
        """The padded columns the windows read."""
        return (self.out_hw[1] - 1) * self.stride[1] + self.dilation[1] * (self.kernel[1] - 1) + 1

    def tile_rows(self, rows: int) -> int:
        """The padded rows ``rows`` output rows read."""
        return (rows - 1) * self.stride[0] + self.dilation[0] * (self.kernel[0] - 1) + 1


def _layout(spec, x_shape) -> Layout:
    pads, out = spec.pads(x_shape[2:]), spec.out_spatial(x_shape[2:])
    lead, lead_pad = ((1,), ((0, 0),)) if spec.ndim == 1 else ((), ())
    pads, out = lead_pad + tuple(pads), lead + tuple(out)
    group_channels = spec.channels_per_group(x_shape[1])
    return Layout(lead + tuple(x_shape[2:]), pads[0][0], pads[1][0], lead + spec.kernel_size, lead + spec.stride,
                  lead + spec.dilation, out, group_channels, group_channels == 1 and out[1] < WIDE_ROWS)


def _job_bytes(layout: Layout, rows: int, itemsize: int, grad: bool = False) -> int:
    """Numba's scratch per running job of ``rows`` output rows.  Planes: the tile (the group's
    planes, the rows read, phase-split columns), the accumulators (a run of the tile's rows
    at stride 1, else one row; gradient: one run per tap, and the grad_output run) and the
    tap offsets.  Channels: the tile (B = BLOCK_CHANNELS channels innermost), one output row
    of B per tap (forward: the weights repeated; gradient: the sums) and one of accumulators."""
    (kh, kw), out_w, sw = layout.kernel, layout.out_hw[1], layout.stride[1]
    if layout.channels_inner:
        return itemsize * BLOCK_CHANNELS * (layout.tile_rows(rows) * layout.tile_width + (kh * kw + 1) * out_w)
    taps = layout.group_channels * kh * kw
    tile = layout.group_channels * layout.tile_rows(rows) * sw * -(-layout.tile_width // sw)
    span = _span(layout, rows)
    return itemsize * (tile + span * ((taps + 1) if grad else 1)) + 8 * taps


def _span(layout, rows: int) -> int:
    """The accumulators' run (depthwise_jit_kernels.flat_span): rows at the tile's pitch at stride 1."""
    if layout.stride == (1, 1):
        return (rows - 1) * layout.tile_width + layout.out_hw[1]
    return layout.out_hw[1]


def _cache_chunks(layout, itemsize) -> int:
    """Row chunks for the planes weight gradient whose per-tap sums stay within SUMS_BYTES
    (they are swept once per image and output channel; past L2 the sweep runs from memory)."""
    if layout.channels_inner or layout.stride != (1, 1):
        return 1
    taps = layout.group_channels * math.prod(layout.kernel)
    rows = max(1, SUMS_BYTES // (taps * layout.tile_width * itemsize))
    return -(-layout.out_hw[0] // rows)


def _fixed_bytes(layout, w_shape, itemsize, grad: bool) -> int:
    """NumPy's scratch: the index tables; channels layout: the weights (or their gradient)
    laid out channels last; planes: the gradient's float64 copy when the dtype differs."""
    tables = 8 * (layout.tile_rows(layout.out_hw[0]) + layout.tile_width)
    weights = w_shape[0] * math.prod(layout.kernel) * layout.group_channels * itemsize
    return tables + (weights if layout.channels_inner or grad else 0)


def _partial_row_bytes(layout, w_shape) -> int:
    """The weight gradient's float64 partial sums of one row chunk."""
    return 8 * w_shape[0] * layout.group_channels * math.prod(layout.kernel)


def _min_bytes(spec, x_shape, w_shape, itemsize, grad: bool) -> int:
    layout = _layout(spec, x_shape)
    partial = _partial_row_bytes(layout, w_shape) * layout.out_hw[0] if grad else 0
    return (_fixed_bytes(layout, w_shape, itemsize, grad) + partial
            + numba.get_num_threads() * _job_bytes(layout, 1, itemsize, grad))


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """The index tables (and channels-last weights) and one-row jobs on every thread."""
    return _min_bytes(spec, x_shape, w_shape, itemsize, grad=False) if available() else 0


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    return _min_bytes(spec, x_shape, w_shape, itemsize, grad=True) if available() else 0


def _cap_rows(layout, itemsize, budget, partial_row_bytes: int = 0) -> int:
    """The most output rows per job whose jobs on every thread (and the gradient's partial sums
    per chunk, ``partial_row_bytes`` each: given for the weight gradient only) fit in ``budget``;
    at least one."""
    out_h, threads = layout.out_hw[0], numba.get_num_threads()

    def fits(rows):
        return (threads * _job_bytes(layout, rows, itemsize, partial_row_bytes > 0)
                + partial_row_bytes * -(-out_h // rows) <= budget)
    low, high = 1, out_h
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _row_chunks(out_shape, per_image: bool = True) -> int:
    """Chunks of output rows per job, when images (forward) and channel blocks alone are too
    few for JOBS_PER_THREAD jobs per thread (for balance; smaller chunks' tiles also stay in
    cache: 3 channels of 1024 x 1024, 5x5 weight gradient, 79 ms in one chunk, 44 in two, 25
    in eight).  Work is reckoned in blocks of BLOCK_CHANNELS output channels in both layouts."""
    n, c_out, out_h = out_shape[:3]
    jobs = (n if per_image else 1) * -(-c_out // BLOCK_CHANNELS)
    wanted = JOBS_PER_THREAD * numba.get_num_threads()
    return max(1, min(out_h, -(-wanted // jobs)))


def _chunks_under_cap(out_h, balanced, layout, itemsize, budget, partial_row_bytes=0) -> int:
    """The balanced row chunks, or more where the cap needs shorter jobs."""
    rows = min(-(-out_h // balanced), _cap_rows(layout, itemsize, budget, partial_row_bytes))
    return max(balanced, -(-out_h // rows))


def _jobs_bytes(layout, row_chunks, itemsize, partial_row_bytes=0) -> int:
    """Numba's scratch with ``row_chunks`` chunks: a job on every thread (and the partial sums)."""
    rows = -(-layout.out_hw[0] // row_chunks)
    return (numba.get_num_threads() * _job_bytes(layout, rows, itemsize, partial_row_bytes > 0)
            + partial_row_bytes * row_chunks)


# ---- padding through index tables -------------------------------------------------------

def source_index(size: int, lo: int, count: int, mode: str) -> np.ndarray:
    """For padded positions 0 .. count-1 along one dim: the source index each reads (-1: zero).

    >>> source_index(4, 2, 8, "reflect").tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    """
    index = np.arange(count, dtype=np.int64) - lo
    outside = (index < 0) | (index >= size)
    if mode == "zeros":
        return np.where(outside, -1, index)
    if mode == "replicate":
        return np.clip(index, 0, size - 1)
    if mode == "circular":
        return index % size
    reflected = np.abs(index)  # reflect about the first and last element, not repeating them
    return np.where(reflected >= size, 2 * (size - 1) - reflected, reflected)


def _tables(layout, mode):
    """(row table, column table) for the padded rows and columns the windows read."""
    rows = source_index(layout.in_hw[0], layout.lo_h, layout.tile_rows(layout.out_hw[0]), mode)
    return rows, source_index(layout.in_hw[1], layout.lo_w, layout.tile_width, mode)


def _as_2d(array, ndim):
    """(N, C, L) -> (N, C, 1, L); 2-D unchanged; C-contiguous."""
    return np.ascontiguousarray(array[:, :, None] if ndim == 1 else array)


def _geometry(layout):
    return (*layout.stride, *layout.dilation)


# ---- forward and weight gradient --------------------------------------------------------

def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    workspace.require({"depthwise_jit": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    layout = _layout(spec, x.shape)
    fixed = _fixed_bytes(layout, w.shape, x.itemsize, False)
    out = np.empty((x.shape[0], w.shape[0]) + layout.out_hw, x.dtype)
    row_chunks = _chunks_under_cap(layout.out_hw[0], _row_chunks(out.shape), layout, x.itemsize,
                                   workspace.limit() - fixed)
    workspace.make_room(fixed + _jobs_bytes(layout, row_chunks, x.itemsize))
    rows, columns = _tables(layout, spec.padding_mode)
    x2, w2 = _as_2d(x, spec.ndim), _as_2d(w, spec.ndim)
    if layout.channels_inner:
        w_t = np.ascontiguousarray(w2[:, 0].transpose(1, 2, 0))  # (kh, kw, C_out)
        _kernels().channels_forward(x2, w_t, out, rows, columns, *_geometry(layout), row_chunks)
    else:
        _kernels().planes_forward(x2, w2.reshape(w.shape[0], -1), out, rows, columns, layout.lo_w, *layout.kernel,
                                  *_geometry(layout), spec.groups, row_chunks)
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    w_shape = (gy.shape[1], x.shape[1] // spec.groups) + spec.kernel_size
    workspace.require({"depthwise_jit": weight_grad_min_workspace(spec, x.shape, w_shape, x.itemsize)})
    layout = _layout(spec, x.shape)
    partial_row = _partial_row_bytes(layout, w_shape)
    fixed = _fixed_bytes(layout, w_shape, x.itemsize, True)
    balanced = max(_row_chunks(gy.shape[:2] + layout.out_hw, False), _cache_chunks(layout, x.itemsize))
    row_chunks = _chunks_under_cap(layout.out_hw[0], balanced, layout, x.itemsize, workspace.limit() - fixed,
                                   partial_row)
    workspace.make_room(fixed + _jobs_bytes(layout, row_chunks, x.itemsize, partial_row))
    rows, columns = _tables(layout, spec.padding_mode)
    x2, gy2 = _as_2d(x, spec.ndim), _as_2d(gy, spec.ndim)
    if layout.channels_inner:
        gw_t = np.empty(layout.kernel + (gy.shape[1],), x.dtype)
        _kernels().channels_weight_grad(x2, gy2, gw_t, rows, columns, *_geometry(layout), row_chunks)
        return np.ascontiguousarray(gw_t.transpose(2, 0, 1)).reshape(w_shape)
    gw = np.empty((w_shape[0], math.prod(w_shape[1:])), x.dtype)
    _kernels().planes_weight_grad(x2, gy2, gw, rows, columns, layout.lo_w, *layout.kernel, *_geometry(layout),
                                  spec.groups, row_chunks)
    return gw.reshape(w_shape)
