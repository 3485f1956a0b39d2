"""Winograd minimal filtering F(m, 3) in every spatial dim: 3x3 (3, 3x3x3) stride-1 convolutions
with fewer multiplications, as batched GEMMs (Lavin & Gray 2016, https://arxiv.org/abs/1509.09308).

One tile of ``a = m + 2`` inputs per dim gives ``m`` outputs per dim:
``Y = A^T [(G g G^T) * (B^T d B)] A`` (per dim), where the multiply ``*`` over all tiles and
channels is one GEMM per transform position: (C_out, C_in) x (C_in, tiles).  A direct 3x3
layer does 9 multiply-adds per output, F(2, 3) 4 and F(4, 3) 2.25.

The matrices come from the Toom-Cook construction on interpolation points (0, 1, -1 for
F(2, 3); 0, 1, -1, 1/2, -2 for F(4, 3); plus the point at infinity), computed exactly with
fractions: ``A^T`` evaluates, ``B^T`` is the transposed inverse of the Vandermonde matrix,
scaled row by row to small integers, and ``G`` takes the scale.  Small points keep the
float32 error near 1e-6 of the largest output (measured in the tests and the benchmark).

Layout: the tiles of a chunk of images and tile rows are transformed into a buffer V laid
out (a^n, C_in, tiles), the GEMM is a batched matmul over the a^n positions (BLAS), and the
product (a^n, C_out, tiles) is transformed back into the NCHW output.

- With Numba (``winograd_jit_kernels``): the input transform is one compiled pass that reads
  x directly — the padding modes are index tables (:func:`source_tables`), no padded copy —
  and writes V; the output transform is one compiled pass that writes the cropped tiles
  straight into the output.  Both run in parallel over (channel, block of tile rows), one
  pass per dim (B^T along depth, rows, columns: 2 * 6^3 multiply-adds per F(4, 3) tile where
  the Kronecker product takes 6^4).  The NumPy path makes five passes through memory around
  the GEMM (gather, Kronecker transform, Kronecker inverse, transpose, scatter); compiled,
  one thread (CPU time, shared 2-core Zen 3): C64 56x56 N=8 F(4, 3) 53 -> 40 ms, C256 14x14
  F(2, 3) 31 -> 29 ms, C512 7x7 F(4, 3) 62 -> 33 ms, C3D F(2, 3) 384 -> 297 ms.
- Without Numba: the tiles are gathered by :func:`npconv.windows.im2col` (window ``a``,
  stride ``m``) into (a^n, C_in, tiles), transformed by the Kronecker product of ``B^T`` over
  the dims, and the product by that of ``A^T``, then scattered into NCHW.

The transformed weights are kept between calls, one per weight array (:func:`kept_transformed_weight`:
a 512 x 512 layer's takes 20-35 ms to compute, 1-2 ms to compare with the weight; a read-only
weight, as :func:`npconv.nn.fuse` leaves them, is not compared).

Scratch: the transformed weight (a^n * C_out * C_in/G, computed through float64 blocks of
:func:`transform_block_bytes`) and the copy of the weight kept with it, for the whole call;
per tile of a chunk: compiled, V and the product (a^n * (C_in + C_out)) and each thread's
two job buffers of a^n values per tile (Numba's, counted here as tracemalloc cannot see
them); NumPy, a^n * C_in values twice (tiles, V), a^n * C_out (the product) and m^n * C_out
twice (Y, the NCHW blocks) — so chunks shrink with C_out as much as with C_in.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from .. import compiled as compiled_kernels
from .. import workspace
from ..windows import im2col, tap_sources
from .chunks import chunks
from .kept import KeptTransforms

try:
    import numba
except ImportError:  # the NumPy transforms serve
    numba = None

POINTS = {2: (0, 1, -1), 4: (0, 1, -1, Fraction(1, 2), -2)}
# of gathered tiles: each chunk alternates compiled transforms (OpenMP workers) with a BLAS GEMM
# (OpenBLAS workers), and each switch costs the other pool's spin-wait; where torch loaded its
# OpenMP before npconv (so not waiting passively) 2 MiB chunks made ResNet conv2_x 100 ms, 32 MiB 36
CHUNK_TARGET_BYTES = 32 * 2**20
JOB_TILES = 256  # tiles per job of the compiled transforms: rows of this many values vectorise well


def transform_block_bytes() -> int:
    """The float64 block the weight transform goes through: a sixteenth of the cap, within
    64 KiB .. 16 MiB (few blocks at the default cap: 6 for a 512 x 512 layer)."""
    return max(64 * 2**10, min(16 * 2**20, workspace.limit() // 16))


def applies(spec, x_shape, w_shape) -> bool:
    return not spec.transposed and all(k == 3 for k in spec.kernel_size) and spec.unit_stride and spec.undilated


def applies_f4(spec, x_shape, w_shape) -> bool:
    """F(4, 3) in 1-D and 2-D only: in 3-D its float32 error reaches 5.5e-6 of the largest
    output at 64 channels (F(2, 3): 1e-6), too near the 1e-5 budget."""
    return applies(spec, x_shape, w_shape) and spec.ndim <= 2


def _inverse(matrix):
    """Gauss-Jordan inverse of a small square matrix of Fractions."""
    size = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(size)] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = next(r for r in range(col, size) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [v / rows[col][col] for v in rows[col]]
        for r in range(size):
            if r != col and rows[r][col] != 0:
                rows[r] = [v - rows[r][col] * p for v, p in zip(rows[r], rows[col])]
    return [row[size:] for row in rows]


@functools.lru_cache(maxsize=None)
def transforms(m: int, r: int = 3):
    """(A^T (m, a), G (a, r), B^T (a, a)) in float64 for F(m, r), a = m + r - 1."""
    points = [Fraction(p) for p in POINTS[m]]
    a = m + r - 1

    def evaluation(cols):  # rows: p^0..p^(cols-1) at each finite point; infinity: leading coefficient
        return [[p ** i for i in range(cols)] for p in points] + [[Fraction(int(i == cols - 1)) for i in range(cols)]]

    a_t = [list(col) for col in zip(*evaluation(m))]
    g = evaluation(r)
    b_t = [list(col) for col in zip(*_inverse(evaluation(a)))]
    for j, row in enumerate(b_t):  # scale each row of B^T to coprime integers, G's row takes the scale
        scale = math.lcm(*(v.denominator for v in row)) / Fraction(math.gcd(*(v.numerator for v in row)))
        b_t[j] = [v * scale for v in row]
        g[j] = [v / scale for v in g[j]]
    as_array = functools.partial(np.array, dtype=np.float64)
    return as_array(a_t), as_array(g), as_array(b_t)


def _kron(matrix, n):
    return functools.reduce(np.kron, [matrix] * n)


def transformed_weight(w, m, groups, out=None) -> np.ndarray:
    """(a^n, G, C_out/G, C_in/G): G g G^T per dim, computed in float64 a block of filters at a
    time (the float64 copy of a 512 x 512 layer would be three times the result); written
    into ``out`` (of that shape) when given."""
    _, g_matrix, _ = transforms(m)
    n = w.ndim - 2
    c_out, c_in_g = w.shape[:2]
    kron = _kron(g_matrix, n)  # (a^n, 3^n)
    flat = w.reshape(c_out * c_in_g, 3 ** n)
    shape = (kron.shape[0], flat.shape[0])  # (a^n, C_out * C_in/G)
    u = np.empty(shape, w.dtype) if out is None else out.reshape(shape)
    step = max(1, transform_block_bytes() // (8 * sum(kron.shape)))
    for start in range(0, flat.shape[0], step):
        u[:, start:start + step] = kron @ flat[start:start + step].astype(np.float64).T
    return u.reshape(-1, groups, c_out // groups, c_in_g)


KEPT_WEIGHTS = 64  # a network's 3x3 layers (ResNet-50 has 16), one entry each
_kept_weights = KeptTransforms("winograd.kept_weight", KEPT_WEIGHTS)


def kept_transformed_weight(w, m, groups) -> np.ndarray:
    """:func:`transformed_weight`, kept between calls for the same weight (a layer runs many
    batches: 512 x 512 F(4, 3) costs 20-35 ms to transform, 1-2 ms to compare), up to
    ``KEPT_WEIGHTS`` weights per thread so a network's layers do not evict one another
    (:class:`npconv.algorithms.kept.KeptTransforms`: counted against the workspace cap, served
    only while the weights equal the kept copy; never stale)."""
    a_n = (m + 2) ** (w.ndim - 2)
    shape = (a_n, groups, w.shape[0] // groups, w.shape[1])
    kept = _kept_weights.get((m, groups), w, shape, w.dtype)
    if kept is not None:
        return kept
    return _kept_weights.keep((m, groups), w, transformed_weight(w, m, groups))


def forget_kept_weights() -> None:
    """Forget this thread's kept transformed weights (their buffers go with workspace.release())."""
    _kept_weights.forget()


def _fixed_bytes(spec, w_shape, m, itemsize) -> int:
    """The transformed weight and the copy of the weight kept with it, the float64 block it is
    computed through and the transforms."""
    a_n, r_n = (m + 2) ** spec.ndim, 3 ** spec.ndim
    transforms = 8 * (a_n * a_n + a_n * m ** spec.ndim + a_n * r_n)
    return itemsize * (a_n + r_n) * w_shape[0] * w_shape[1] + transform_block_bytes() + transforms


def compiled() -> bool:
    """Whether the compiled transforms run (Numba installed)."""
    return compiled_kernels.available()


def _kernels():
    """The compiled transforms' module, imported on first use (Numba compiles each kernel on
    its first call and caches it on disk: nothing is compiled at import)."""
    return compiled_kernels.kernels("winograd_jit_kernels")


def _tile_bytes(spec, x_shape, w_shape, m, itemsize) -> int:
    """Per tile of a chunk.  Compiled: V and the product (a^n * (C_in + C_out)), and two
    planes of a^n values per thread (Numba's job buffers, at most one image's tiles each).
    NumPy: tiles and V (a^n * C_in each), the product (a^n * C_out), Y and its NCHW blocks
    (m^n * C_out each)."""
    a_n, m_n = (m + 2) ** spec.ndim, m ** spec.ndim
    if compiled():
        return itemsize * a_n * (x_shape[1] + w_shape[0] + 2 * numba.get_num_threads())
    return itemsize * (2 * a_n * x_shape[1] + a_n * w_shape[0] + 2 * m_n * w_shape[0])


def min_workspace(spec, x_shape, w_shape, itemsize, m: int = 4) -> int:
    """The transformed weight and the buffers of one tile."""
    return _fixed_bytes(spec, w_shape, m, itemsize) + _tile_bytes(spec, x_shape, w_shape, m, itemsize)


min_workspace_f2 = functools.partial(min_workspace, m=2)
min_workspace_f4 = functools.partial(min_workspace, m=4)


def _tile_chunks(n_images, tiles, bytes_per_tile_row, gathered_share: float = 0.25, fixed: int = 0):
    """Boxes (images, *tiles) of tiles whose buffers, ``bytes_per_tile_row`` per image and row
    of tiles, stay under the cap less ``fixed``, and whose gathered tiles (``gathered_share`` of
    the buffers) stay near CHUNK_TARGET_BYTES."""
    per_tile = bytes_per_tile_row / max(math.prod(tiles[1:]), 1)
    target = int(CHUNK_TARGET_BYTES / gathered_share)
    return chunks(n_images, tiles, per_tile, target, fixed)


def _kron_transforms(m, n, dtype):
    a_t, _, b_t = transforms(m)
    return _kron(b_t, n).astype(dtype), _kron(a_t, n).astype(dtype)


def forward(x, w, spec, pads, out_spatial, m: int = 4) -> np.ndarray:
    """x (N, C_in, *in), w (C_out, C_in/G, 3, ...) -> (N, C_out, *out), no bias."""
    fixed, per_tile = _fixed_bytes(spec, w.shape, m, x.itemsize), _tile_bytes(spec, x.shape, w.shape, m, x.itemsize)
    workspace.require({f"winograd_f{m}": fixed + per_tile})
    transform = _forward_compiled if compiled() else _forward_numpy
    return transform(x, w, spec, pads, tuple(out_spatial), m, fixed, per_tile)


def source_tables(spec, in_spatial, pads, tiles, m) -> list[np.ndarray]:
    """Per dim, (tiles, a) int64: the input index that position k of tile t reads, padded
    position t * m + k; -1 for zero padding and past the padded input (the last tiles
    overhang it), whatever the mode.  Leading dims of one trivial tile make the 3-D form."""
    tables = [np.zeros((1, 1), np.int64)] * (3 - spec.ndim)
    for size, (lo, hi), count in zip(in_spatial, pads, tiles):
        table = tap_sources(size, count, lo, m, 1, m + 2, spec.padding_mode)
        padded = np.arange(count)[:, None] * m + np.arange(m + 2)  # padded position read
        table[padded - lo >= size + hi] = -1
        tables.append(table)
    return tables


def _matrices_3d(matrix, n, dtype) -> list[np.ndarray]:
    """``matrix`` per dim in the 3-D form: [[1]] for the leading trivial dims."""
    return [np.ones((1, 1), dtype)] * (3 - n) + [matrix.astype(dtype)] * n


def _as_3d(array, n) -> np.ndarray:
    """(N, C, *spatial) viewed as (N, C, D, H, W), leading dims of one added (no copy)."""
    return array.reshape(array.shape[:2] + (1,) * (3 - n) + array.shape[2:]) if array.flags.c_contiguous \
        else array[(slice(None), slice(None)) + (None,) * (3 - n)]


def _forward_compiled(x, w, spec, pads, out_spatial, m, fixed, per_tile) -> np.ndarray:
    """Compiled input transform -> batched GEMM -> compiled output transform, per chunk."""
    n, g, a = spec.ndim, spec.groups, m + 2
    c_in, c_out, a_n = x.shape[1], w.shape[0], (m + 2) ** spec.ndim
    tiles = tuple(-(-o // m) for o in out_spatial)
    boxes = _tile_chunks(x.shape[0], tiles, per_tile * math.prod(tiles[1:]), a_n * c_in * x.itemsize / per_tile,
                         fixed)
    largest = workspace.extents(boxes[0])
    workspace.make_room(fixed + 2 * numba.get_num_threads() * a_n * math.prod(largest) * x.itemsize)
    a_t, _, b_t = transforms(m)
    tables, b_ts, a_ts = source_tables(spec, x.shape[2:], pads, tiles, m), _matrices_3d(b_t, n, x.dtype), \
        _matrices_3d(a_t, n, x.dtype)
    u = kept_transformed_weight(w, m, g)  # (a^n, G, C_out/G, C_in/G)
    out = np.empty((x.shape[0], c_out) + out_spatial, x.dtype)
    x_3d, out_3d, kernels = _as_3d(x, n), _as_3d(out, n), _kernels()
    for box in boxes:
        starts = (0,) * (3 - n) + tuple(run.start for run in box[1:])
        counts = (1,) * (3 - n) + workspace.extents(box[1:])
        length = (box[0].stop - box[0].start) * math.prod(counts)
        v = workspace.scratch("winograd v", (a_n, c_in, length), x.dtype)
        rows = max(1, JOB_TILES // counts[2])
        kernels.input_transform(x_3d[box[0]], *tables, *starts, *counts, *b_ts, v, rows)
        product = np.matmul(u, v.reshape(a_n, g, c_in // g, length),
                            out=workspace.scratch("winograd product", (a_n, g, c_out // g, length), x.dtype))
        kernels.output_transform(product.reshape(a_n, c_out, length), *a_ts, out_3d, box[0].start, *starts, *counts,
                                 rows)
    return out


def _forward_numpy(x, w, spec, pads, out_spatial, m, fixed, per_tile) -> np.ndarray:
    """Gather (im2col) -> Kronecker input transform -> batched GEMM -> Kronecker output
    transform -> scatter, per chunk, all in NumPy."""
    n, images, g = spec.ndim, x.shape[0], spec.groups
    c_in, c_out, a = x.shape[1], w.shape[0], m + 2
    workspace.make_room(fixed)
    tiles = tuple(-(-o // m) for o in out_spatial)
    in_kron, out_kron = _kron_transforms(m, n, x.dtype)
    u = kept_transformed_weight(w, m, g)
    ends = tuple(size + hi for size, (_, hi) in zip(x.shape[2:], pads))
    out = np.empty((images, c_out) + tuple(out_spatial), x.dtype)
    gathered_share = a ** n * c_in * x.itemsize / per_tile
    for box in _tile_chunks(images, tiles, per_tile * math.prod(tiles[1:]), gathered_share, fixed):
        count, chunk_tiles = box[0].stop - box[0].start, workspace.extents(box[1:])
        length = count * math.prod(chunk_tiles)
        gathered = workspace.scratch("winograd tiles", (a ** n, c_in, count) + chunk_tiles, x.dtype)
        view = gathered.reshape((a,) * n + (c_in, count) + chunk_tiles)
        view = np.moveaxis(view, (n, n + 1), (1, 0))  # (N, C, *a, *tiles) over the (a^n, C, N, tiles) buffer
        shifted = tuple((lo - run.start * m, hi) for (lo, hi), run in zip(pads, box[1:]))
        im2col(x[box[0]], (a,) * n, (m,) * n, (1,) * n, shifted, chunk_tiles, spec.padding_mode, view, ends)
        v = np.matmul(in_kron, gathered.reshape(a ** n, -1), out=workspace.scratch("winograd v", (a ** n, c_in * length), x.dtype))
        product = np.matmul(u, v.reshape(a ** n, g, c_in // g, length),
                            out=workspace.scratch("winograd product", (a ** n, g, c_out // g, length), x.dtype))
        y = np.matmul(out_kron, product.reshape(a ** n, -1), out=workspace.scratch("winograd y", (m ** n, c_out * length), x.dtype))
        y = y.reshape((m,) * n + (c_out, count) + chunk_tiles)
        _scatter(y, out, box, m, n)
    return out


def _scatter(y, out, box, m, n):
    """y (*m, C_out, N, *tiles) into out[box] (N, C_out, *out), cropping the overhang."""
    count, c_out, tiles = y.shape[n + 1], y.shape[n], y.shape[n + 2:]
    # (N, C_out, tile0, m0, tile1, m1, ...)
    order = (n + 1, n) + tuple(axis for d in range(n) for axis in (n + 2 + d, d))
    blocks = workspace.scratch("winograd blocks", (count, c_out) + tuple(t * m for t in tiles), y.dtype)
    blocks.reshape([(count, c_out)[i] if i < 2 else y.shape[order[i]] for i in range(len(order))])[...] = \
        y.transpose(order)
    starts = tuple(run.start * m for run in box[1:])
    sizes = tuple(min(b, o - s) for b, o, s in zip(blocks.shape[2:], out.shape[2:], starts))
    out[(box[0], slice(None)) + tuple(slice(s, s + size) for s, size in zip(starts, sizes))] = \
        blocks[(slice(None), slice(None)) + tuple(slice(0, size) for size in sizes)]


forward_f2 = functools.partial(forward, m=2)
forward_f4 = functools.partial(forward, m=4)
