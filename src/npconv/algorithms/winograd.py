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
CHUNK_TARGET_BYTES = 2 * 2**20


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
    """(a^n, G, C_out/G, C_in/G): G g G^T per dim, computed in float64."""
    _, g_matrix, _ = transforms(m)
    n = w.ndim - 2
    c_out, c_in_g = w.shape[:2]
    u = _kron(g_matrix, n) @ w.astype(np.float64).reshape(c_out * c_in_g, 3 ** n).T  # (a^n, C_out * C_in/G)
    return np.ascontiguousarray(u.reshape(-1, groups, c_out // groups, c_in_g).astype(w.dtype))


def _tile_chunks(n_images, tiles, bytes_per_tile_row):
    """(images, tile rows) slices whose four buffers (tiles, V, product, Y) stay under the cap."""
    return chunks(n_images, tiles, bytes_per_tile_row, min(CHUNK_TARGET_BYTES, workspace.limit() // 4))


def forward(x, w, spec, pads, out_spatial, m: int = 4) -> np.ndarray:
    """x (N, C_in, *in), w (C_out, C_in/G, 3, ...) -> (N, C_out, *out), no bias."""
    a_t, _, b_t = transforms(m)
    n, nd, g = spec.ndim, x.shape[0], spec.groups
    c_in, c_out, a = x.shape[1], w.shape[0], m + 2
    tiles = tuple(-(-o // m) for o in out_spatial)
    in_kron, out_kron = _kron(b_t, n).astype(x.dtype), _kron(a_t, n).astype(x.dtype)
    u = transformed_weight(w, m, g)
    ends = tuple(size + hi for size, (_, hi) in zip(x.shape[2:], pads))
    out = np.empty((nd, c_out) + tuple(out_spatial), x.dtype)
    rest = math.prod(tiles[1:])
    for images, rows in _tile_chunks(nd, tiles, c_in * a ** n * rest * x.itemsize):
        count, chunk_tiles = images.stop - images.start, (rows.stop - rows.start,) + tiles[1:]
        length = count * math.prod(chunk_tiles)
        gathered = workspace.scratch("winograd tiles", (a ** n, c_in, count) + chunk_tiles, x.dtype)
        view = gathered.reshape((a,) * n + (c_in, count) + chunk_tiles)
        view = np.moveaxis(view, (n, n + 1), (1, 0))  # (N, C, *a, *tiles) over the (a^n, C, N, tiles) buffer
        shifted = ((pads[0][0] - rows.start * m, pads[0][1]),) + tuple(pads[1:])
        im2col(x[images], (a,) * n, (m,) * n, (1,) * n, shifted, chunk_tiles, spec.padding_mode, view, ends)
        v = np.matmul(in_kron, gathered.reshape(a ** n, -1), out=workspace.scratch("winograd v", (a ** n, c_in * length), x.dtype))
        product = np.matmul(u, v.reshape(a ** n, g, c_in // g, length),
                            out=workspace.scratch("winograd product", (a ** n, g, c_out // g, length), x.dtype))
        y = np.matmul(out_kron, product.reshape(a ** n, -1), out=workspace.scratch("winograd y", (m ** n, c_out * length), x.dtype))
        y = y.reshape((m,) * n + (c_out, count) + chunk_tiles)
        _scatter(y, out, images, rows, m, n)
    return out


def _scatter(y, out, images, rows, m, n):
    """y (*m, C_out, N, *tiles) into out[images, :, rows...] (N, C_out, *out), cropping the overhang."""
    count, c_out, tiles = y.shape[n + 1], y.shape[n], y.shape[n + 2:]
    # (N, C_out, tile0, m0, tile1, m1, ...)
    order = (n + 1, n) + tuple(axis for d in range(n) for axis in (n + 2 + d, d))
    blocks = workspace.scratch("winograd blocks", (count, c_out) + tuple(t * m for t in tiles), y.dtype)
    blocks.reshape([(count, c_out)[i] if i < 2 else y.shape[order[i]] for i in range(len(order))])[...] = \
        y.transpose(order)
    start = rows.start * m
    target = out[images]
    sizes = (min(blocks.shape[2], out.shape[2] - start),) + tuple(out.shape[3:])
    target[(slice(None), slice(None), slice(start, start + sizes[0])) + tuple(slice(0, s) for s in sizes[1:])] = \
        blocks[(slice(None), slice(None)) + tuple(slice(0, s) for s in sizes)]


forward_f2 = functools.partial(forward, m=2)
forward_f4 = functools.partial(forward, m=4)
