"""Winograd minimal filtering F(m, 3) in every spatial dim: 3x3 (3, 3x3x3) stride-1 convolutions
with fewer multiplications, as batched GEMMs.

One tile of ``a = m + 2`` inputs per dim gives ``m`` outputs per dim:
``Y = A^T [(G g G^T) * (B^T d B)] A`` (per dim), where the multiply ``*`` over all tiles and
channels is one GEMM per transform position: (C_out, C_in) x (C_in, tiles).  A direct 3x3
layer does 9 multiply-adds per output, F(2, 3) 4 and F(4, 3) 2.25.

The matrices come from the Toom-Cook construction on interpolation points (0, 1, -1 for
F(2, 3); 0, 1, -1, 1/2, -2 for F(4, 3); plus the point at infinity), computed exactly with
fractions: ``A^T`` evaluates, ``B^T`` is the transposed inverse of the Vandermonde matrix,
scaled row by row to small integers, and ``G`` takes the scale.  Small points keep the
float32 error near 1e-6 of the largest output (measured in the tests and the benchmark).

Layout, chosen so that every transform is one GEMM: the tiles of a chunk of images and tile
rows are gathered by :func:`npconv.windows.im2col` (window ``a``, stride ``m``, padding
gathered, zeros past the padded input) straight into a buffer laid out (a^n, C_in, tiles);
the input transform is the Kronecker product of ``B^T`` over the dims times that buffer, the
product is a batched matmul over the a^n positions, and the output transform the Kronecker
product of ``A^T`` times the result, which is then scattered into NCHW.

Scratch: the transformed weight (a^n * C_out * C_in/G, computed through float64 blocks of
:func:`transform_block_bytes`) for the whole call, and per tile of a chunk a^n * C_in values
twice (tiles, V), a^n * C_out (the product) and m^n * C_out twice (Y, the NCHW blocks) — so
chunks shrink with C_out as much as with C_in.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from .. import workspace
from ..windows import im2col
from .im2col_gemm import chunks

POINTS = {2: (0, 1, -1), 4: (0, 1, -1, Fraction(1, 2), -2)}
CHUNK_TARGET_BYTES = 2 * 2**20  # of gathered tiles, as the cache likes them


def transform_block_bytes() -> int:
    """The float64 block the weight transform goes through: a sixteenth of the cap, within
    64 KiB .. 16 MiB (few blocks at the default cap: 6 for a 512 x 512 layer)."""
    return max(64 * 2**10, min(16 * 2**20, workspace.limit() // 16))


def applies(spec, x_shape, w_shape) -> bool:
    return (not spec.transposed and all(k == 3 for k in spec.kernel_size) and max(spec.stride) == 1
            and max(spec.dilation) == 1)


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


def transformed_weight(w, m, groups) -> np.ndarray:
    """(a^n, G, C_out/G, C_in/G): G g G^T per dim, computed in float64 a block of filters at a
    time (the float64 copy of a 512 x 512 layer would be three times the result)."""
    _, g_matrix, _ = transforms(m)
    n = w.ndim - 2
    c_out, c_in_g = w.shape[:2]
    kron = _kron(g_matrix, n)  # (a^n, 3^n)
    flat = w.reshape(c_out * c_in_g, 3 ** n)
    u = np.empty((kron.shape[0], flat.shape[0]), w.dtype)  # (a^n, C_out * C_in/G)
    step = max(1, transform_block_bytes() // (8 * sum(kron.shape)))
    for start in range(0, flat.shape[0], step):
        u[:, start:start + step] = kron @ flat[start:start + step].astype(np.float64).T
    return u.reshape(-1, groups, c_out // groups, c_in_g)


def _fixed_bytes(spec, w_shape, m, itemsize) -> int:
    """The transformed weight, the float64 block it is computed through and the transforms."""
    a_n, r_n = (m + 2) ** spec.ndim, 3 ** spec.ndim
    transforms = 8 * (a_n * a_n + a_n * m ** spec.ndim + a_n * r_n)
    return itemsize * a_n * w_shape[0] * w_shape[1] + transform_block_bytes() + transforms


def _tile_bytes(spec, x_shape, w_shape, m, itemsize) -> int:
    """Per tile of a chunk: tiles and V (a^n * C_in each), the product (a^n * C_out), Y and
    its NCHW blocks (m^n * C_out each)."""
    a_n, m_n = (m + 2) ** spec.ndim, m ** spec.ndim
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
    n, nd, g = spec.ndim, x.shape[0], spec.groups
    c_in, c_out, a = x.shape[1], w.shape[0], m + 2
    fixed, per_tile = _fixed_bytes(spec, w.shape, m, x.itemsize), _tile_bytes(spec, x.shape, w.shape, m, x.itemsize)
    workspace.require({f"winograd_f{m}": fixed + per_tile})
    workspace.make_room(fixed)
    tiles = tuple(-(-o // m) for o in out_spatial)
    in_kron, out_kron = _kron_transforms(m, n, x.dtype)
    u = transformed_weight(w, m, g)
    ends = tuple(size + hi for size, (_, hi) in zip(x.shape[2:], pads))
    out = np.empty((nd, c_out) + tuple(out_spatial), x.dtype)
    gathered_share = a ** n * c_in * x.itemsize / per_tile
    for box in _tile_chunks(nd, tiles, per_tile * math.prod(tiles[1:]), gathered_share, fixed):
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
