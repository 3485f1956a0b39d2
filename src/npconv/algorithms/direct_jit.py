"""Direct convolution compiled with Numba: dense, strided, dilated and grouped layers, 1-D to 3-D.
A direct loop nest blocked for registers and cache with no window buffer in memory, after
Zhang, Franchetti & Low 2018, "High Performance Zero-Memory Overhead Direct Convolutions"
(ICML); here each job gathers a few windows into a small buffer instead.

Layout (``direct_jit_kernels``): the input channels-last and group-major, (N, G, D, H, W * cig)
with cig = C_in / groups, and the weights (C_out, kd, kh, kw, cig) flattened per output
channel.  A job (image, output row, chunk of 32 output channels of one group) takes its
pixels 4 at a time: it gathers their 4 windows into a small buffer in the weights' order (a
window row inside the input is one copied run of kw * cig values), then adds 4 pixels x 2
channels of dot products at once over the whole window (C_in/G * K values).  Measured here
before writing it (float32, Zen 3, one core, operands in L1): a dot-product loop reached 17
GFLOP/s, an outer-product loop over a block of 16 output channels 1-4 GFLOP/s (Numba keeps
such an accumulator block in memory and its unrolled 16-wide loop was not vectorised),
OpenBLAS 26.  The 8 dot products' vector accumulators stay in registers (6 loads per 8 FMAs;
checked in the assembly); summing window row by window row instead cost a horizontal sum
per row (row 3 of the benchmark, 64 channels: 1.7 GFLOP/s, a third of PyTorch).  The gather
is 4 windows per block against 2 x 32 dot products, and gives every geometry (stride,
dilation, padding, 3 input channels, 4 per group) the same long loop.

- Strides and dilation are index arithmetic; padding of every mode is a lookup per spatial
  dim from padded coordinate to source (-1: zero), so no padded copy of the input is made.
- 1-D and 2-D layers run as 3-D with leading sizes of one (loops of one trip).
- The input is converted by a compiled, parallel kernel; an input already channels-last in
  memory (``x.transpose(0, 2, ..., 1)`` C-contiguous) with one group is read without a copy.
  The kernel writes the output straight into (N, C_out, *out).
- Weights are packed by :func:`pack`; ``forward`` takes them packed (``packed=``) or packs
  them, keeping the last few packings and reusing one for an equal weight array.
- Weight gradient: a compiled reduction on the same gathered windows, sums over pixels of
  ``gy * window`` (4 pixels per store), in jobs of (channel chunk, chunk of output rows) that
  each own their float64 partial sums.
- A padded tap is a zero times the weight: an infinite weight makes NaN at the border as
  im2col does (PyTorch's oneDNN path may skip the padding).

Scratch (see :mod:`npconv.workspace`): the converted input of a chunk of images, the packed
weights and their cache's copy, each running job's block of windows (Numba's, counted here);
the weight gradient's float64 partial sums, one per row chunk, and each running job's sums of
one output row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import compiled, workspace

try:
    import numba
except ImportError:  # the planner uses im2col_gemm
    numba = None

JOBS_PER_THREAD = 4
CHANNEL_CHUNK = 32  # output channels per job: their weights (32 x 3 x 3 x 256 floats: 295 KB) stay in L2
CACHED_PACKINGS = 4


def available() -> bool:
    return compiled.available()


def applies(spec, x_shape, w_shape) -> bool:
    return available() and not spec.transposed and 1 <= spec.ndim <= 3


def _kernels():
    """The compiled kernels' module, imported on first use (Numba compiles each kernel on its
    first call and caches it on disk, so nothing is compiled at import)."""
    return compiled.kernels("direct_jit_kernels")


# ---- geometry in 3-D form ------------------------------------------------------------------

def _as_3d(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


@dataclass(frozen=True)
class Geometry:
    """The convolution in the kernels' 3-D form (leading sizes of one for 1-D and 2-D)."""

    in_sp: tuple
    out_sp: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple
    mode: str
    groups: int

    @property
    def width_interior(self) -> tuple[int, int]:
        """(first, last) output column whose window lies inside the input along W (last < first: none)."""
        (lo, _), width, k, s = self.pads[2], self.in_sp[2], self.kernel[2], self.stride[2]
        first = -(-lo // s)
        last = min(self.out_sp[2] - 1, (width - k + lo) // s) if width >= k else -1
        return first, last

    def tables(self) -> tuple:
        """Per dim, the source index of every padded coordinate a window reads (-1: zeros)."""
        return tuple(source_table(size, lo, (o - 1) * s + (k - 1) * d + 1, self.mode)
                     for size, (lo, _), o, k, s, d in zip(self.in_sp, self.pads, self.out_sp, self.kernel,
                                                           self.stride, self.dilation))


def geometry(spec, x_shape, pads=None) -> Geometry:
    pads = spec.pads(x_shape[2:]) if pads is None else pads
    return Geometry(_as_3d(x_shape[2:], 1), _as_3d(spec.out_spatial(x_shape[2:]), 1), _as_3d(spec.kernel_size, 1),
                    _as_3d(spec.stride, 1), _as_3d(spec.dilation, 1), _as_3d(tuple(pads), (0, 0)),
                    spec.padding_mode, spec.groups)


def source_table(size: int, lo: int, length: int, mode: str) -> np.ndarray:
    """Source index of padded coordinates 0..length-1 of a dim of ``size`` with ``lo`` low pad.

    >>> source_table(4, 2, 8, "reflect").tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    """
    index = np.arange(length, dtype=np.int64) - lo
    if mode == "reflect":
        index = np.abs(index)
        return np.where(index >= size, 2 * (size - 1) - index, index)
    if mode == "replicate":
        return np.clip(index, 0, size - 1)
    if mode == "circular":
        return index % size
    return np.where((index >= 0) & (index < size), index, -1)


# ---- packing -------------------------------------------------------------------------------

def pack(w, groups: int = 1) -> np.ndarray:
    """The weights (C_out, C_in/groups, *k) in the kernels' layout (C_out, kd, kh, kw * C_in/groups).

    ``groups`` is part of the packed form's identity (the cache keys on it); the layout itself
    is the same for every grouping."""
    w3 = w.reshape(w.shape[:2] + _as_3d(w.shape[2:], 1))
    packed = np.ascontiguousarray(w3.transpose(0, 2, 3, 4, 1))
    return packed.reshape(packed.shape[:3] + (-1,))


_packings: list = []  # [(key, private copy of the weights, packed)], most recent last


def cached_pack(w, groups: int) -> np.ndarray:
    """:func:`pack`, reused where an equal weight array (same shape, dtype, groups, values) was
    packed recently; NaN weights never compare equal, so they are packed again."""
    key = (w.shape, w.dtype.str, groups)
    for index, (seen_key, copy, packed) in enumerate(_packings):
        if seen_key == key and np.array_equal(copy, w):
            _packings.append(_packings.pop(index))
            return packed
    packed = pack(w, groups)
    _packings.append((key, np.array(w, copy=True), packed))
    del _packings[:-CACHED_PACKINGS]
    return packed


def forget_packings() -> None:
    _packings.clear()


# ---- the input in the kernels' layout ----------------------------------------------------

def _as_5d(x):
    return x.reshape(x.shape[:2] + _as_3d(x.shape[2:], 1))


def reads_in_place(x, groups: int) -> bool:
    """A channels-last input (of one group) is already the kernels' layout."""
    return groups == 1 and np.moveaxis(x, 1, -1).flags.c_contiguous


def to_kernel_layout(x, groups: int) -> np.ndarray:
    """(N, G, D, H, W * cig): a view of a channels-last input of one group, else a compiled copy."""
    x5 = _as_5d(x)
    n, c, d, h, w = x5.shape
    if reads_in_place(x, groups):
        return np.moveaxis(x, 1, -1).reshape(n, 1, d, h, w * c)
    xg = np.empty((n, groups, d, h, w * (c // groups)), x.dtype)
    _kernels().to_group_channels_last(x5, xg)
    return xg


# ---- scratch accounting --------------------------------------------------------------------

def _image_bytes(x_shape, itemsize) -> int:
    return math.prod(x_shape[1:]) * itemsize


def _window_bytes(w_shape, itemsize) -> int:
    """One output pixel's window: C_in/G * K values."""
    return math.prod(w_shape[1:]) * itemsize


def _thread_bytes(spec, w_shape, itemsize) -> int:
    """Numba's scratch per running forward job: a block's windows and the accumulators."""
    return _kernels_pixels() * _window_bytes(w_shape, itemsize) + 8 * itemsize


def _kernels_pixels() -> int:
    return 4  # direct_jit_kernels.PIXELS, without importing (compiling) the kernels


def _packing_bytes(w_shape, itemsize) -> int:
    """The packed weights and the cache's private copy."""
    return 2 * math.prod(w_shape) * itemsize


def _threads() -> int:
    return numba.get_num_threads()


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """One image's converted input, the packed weights (and their copy), every thread's jobs."""
    if not available():
        return 0
    return (_image_bytes(x_shape, itemsize) + _packing_bytes(w_shape, itemsize)
            + _threads() * _thread_bytes(spec, w_shape, itemsize))


def _row_sums_bytes(w_shape, itemsize) -> int:
    """A running gradient job's sums of one output row (CHANNEL_CHUNK channels' weights) and
    its block's windows."""
    return (min(w_shape[0], CHANNEL_CHUNK) + _kernels_pixels()) * _window_bytes(w_shape, itemsize)


def _partial_bytes(w_shape) -> int:
    return 8 * math.prod(w_shape)


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """One image's converted input, one chunk of float64 partial sums, each thread's row sums."""
    if not available():
        return 0
    return (_image_bytes(x_shape, itemsize) + _partial_bytes(w_shape)
            + _threads() * _row_sums_bytes(w_shape, itemsize))


def _images_per_step(x, groups, budget) -> int:
    """Images converted at once: all that fit in ``budget`` (all, when read in place)."""
    if reads_in_place(x, groups):
        return x.shape[0]
    return int(max(1, min(x.shape[0], budget // max(1, _image_bytes(x.shape, x.itemsize)))))


# ---- forward -------------------------------------------------------------------------------

def _channel_chunk(n_rows, c_out, groups) -> int:
    """Output channels per job: CHANNEL_CHUNK, fewer (even) where the jobs would be too few."""
    cog = c_out // groups
    wanted = JOBS_PER_THREAD * _threads()
    chunk = min(cog, CHANNEL_CHUNK)
    while chunk > 2 and n_rows * groups * -(-cog // chunk) < wanted:
        chunk = max(2, chunk // 2)
    return chunk


def forward(x, w, spec, pads, out_spatial, packed=None) -> np.ndarray:
    """x (N, C_in, *in), w (C_out, C_in/G, *k) -> (N, C_out, *out); ``packed``: :func:`pack` (w)."""
    workspace.require({"direct_jit": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    geo = geometry(spec, x.shape, pads)
    packed = cached_pack(w, spec.groups) if packed is None else packed
    fixed = _packing_bytes(w.shape, x.itemsize) + _threads() * _thread_bytes(spec, w.shape, x.itemsize)
    step = _images_per_step(x, spec.groups, workspace.limit() - fixed)
    workspace.make_room(fixed + (0 if reads_in_place(x, spec.groups) else step * _image_bytes(x.shape, x.itemsize)))
    out = np.empty((x.shape[0], w.shape[0]) + geo.out_sp, x.dtype)
    chunk = _channel_chunk(step * geo.out_sp[0] * geo.out_sp[1], w.shape[0], spec.groups)
    tables, (first, last) = geo.tables(), geo.width_interior
    for start in range(0, x.shape[0], step):
        xg = to_kernel_layout(x[start:start + step], spec.groups)
        _kernels().forward(xg, packed.reshape(w.shape[0], -1), out[start:start + step], tables, geo.stride,
                           geo.dilation, geo.kernel, w.shape[1], first, last, chunk)
    return out.reshape((x.shape[0], w.shape[0]) + tuple(out_spatial))


# ---- weight gradient -----------------------------------------------------------------------

def _row_chunks(geo, n_images, c_out, chunk, budget, w_shape) -> int:
    """Chunks of output rows (each with its float64 partial sums): enough for JOBS_PER_THREAD
    jobs per thread, as many as ``budget`` holds partial sums for (at least one)."""
    rows = n_images * geo.out_sp[0] * geo.out_sp[1]
    jobs = geo.groups * -(-(c_out // geo.groups) // chunk)
    wanted = -(-JOBS_PER_THREAD * _threads() // jobs)
    return int(max(1, min(rows, wanted, budget // _partial_bytes(w_shape))))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    w_shape = (gy.shape[1], x.shape[1] // spec.groups) + spec.kernel_size
    workspace.require({"direct_jit": weight_grad_min_workspace(spec, x.shape, w_shape, x.itemsize)})
    geo = geometry(spec, x.shape, pads)
    chunk = min(gy.shape[1] // spec.groups, CHANNEL_CHUNK)
    threads_bytes = _threads() * _row_sums_bytes(w_shape, x.itemsize)
    step = _images_per_step(x, spec.groups, (workspace.limit() - threads_bytes - _partial_bytes(w_shape)) // 2)
    image_bytes = 0 if reads_in_place(x, spec.groups) else step * _image_bytes(x.shape, x.itemsize)
    budget = workspace.limit() - threads_bytes - image_bytes
    row_chunks = _row_chunks(geo, x.shape[0], gy.shape[1], chunk, budget, w_shape)
    workspace.make_room(threads_bytes + image_bytes + row_chunks * _partial_bytes(w_shape))
    partial = np.zeros((row_chunks, gy.shape[1], math.prod(w_shape[1:])))
    gy5 = _as_5d(gy)
    tables, (first, last) = geo.tables(), geo.width_interior
    for start in range(0, x.shape[0], step):
        xg = to_kernel_layout(x[start:start + step], spec.groups)
        _kernels().weight_grad(xg, gy5[start:start + step], partial, tables, geo.stride, geo.dilation, geo.kernel,
                               w_shape[1], first, last, chunk, row_chunks)
    total = partial.sum(axis=0).reshape((gy.shape[1],) + geo.kernel + (w_shape[1],))
    return np.ascontiguousarray(np.moveaxis(total, -1, 1).astype(x.dtype)).reshape(w_shape)
