"""The compiled kernels of deformable convolution (imported on first use; see ``deform.py``).

One image and one run of output positions at a time, channels innermost.  The image's planes
are transposed to ``(H*W + 1, C)``: each pixel's channels are contiguous, and the extra last
row is zeros.  :func:`sample_table` turns the offsets into, per (position, offset group, tap),
the four corners' row indices and bilinear weights, plus the fractional parts (ly, lx) the
offset gradient needs; a corner outside the image (or every corner of a point outside
``-1 <= y < H``, ``-1 <= x < W``) indexes the zero row with weight 0, so it adds exactly
``0 * 0`` and the loops have no branch.  A point exactly on ``y = -1`` (or ``x = -1``) keeps its
corners: its bilinear weights are 0 there (``ly = 0``), so it samples 0 as torchvision's
``-1 < y`` rule says, while the offset gradient sees the row-0 (column-0) values as
torchvision's floor-cell derivative does (the usual case: the top and left taps of a padded
layer with zero offsets).  Only an infinite pixel on that row would differ (0 * inf).  An
infinite offset is outside (0); a NaN offset gets NaN weights: its sample is NaN, never silently 0.
The inner loops then run over contiguous channels, which the compiler vectorises (they index
slices from 0: a loop index that could be negative keeps Numba's wraparound test, which stops it):

- :func:`gather_columns`: ``columns[gw, p, t, c] = mask * (w1 v1 + w2 v2 + w3 v3 + w4 v4)``
  (torchvision's order of operations), per weight group ``gw`` a ``(P, K*Cg)`` matrix whose
  transpose is the GEMM's right operand (the weight taken tap-major to match);
- :func:`scatter_input_grad`: the same weights, transposed: each column gradient goes back to
  its four corners (the zero row collects what fell outside); parallel over channel blocks;
- :func:`coordinate_grads`: per (position, offset group, tap), four sums over the group's
  channels ``S_k = sum_c grad[c] * v_k[c]`` give d/d(mask), d/d(dy) and d/d(dx).

``channel_runs`` lists (weight group, offset group, first channel, end channel): the runs of
channels that share both groups.  Constants arrive typed (``one``) and the integer parts of the
positions as arrays of the compute dtype, so float32 stays float32.
"""

import numba
import numpy as np

_parallel = numba.njit(parallel=True, cache=True)
_summing = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})  # the sums over channels
_inline = numba.njit(cache=True, inline="always")


@_parallel
def sample_table(offset, row_base, col_base, first, height, width, one, corners, weights, fracs):
    """Tables of output positions [first, first + run) of one image.

    offset (2*G*K, P); row_base (K, oh) = oy*sh - top + i*dh, col_base (K, ow) likewise, in the
    compute dtype; corners uint64 (run, G, K, 4); weights (run, G, K, 4); fracs (run, G, K, 2).
    """
    run, groups, taps = corners.shape[0], corners.shape[1], corners.shape[2]
    out_w = col_base.shape[1]
    for q in numba.prange(run):
        p = first + q
        for g in range(groups):
            for t in range(taps):
                y = row_base[t, p // out_w] + offset[g * 2 * taps + 2 * t, p]
                x = col_base[t, p % out_w] + offset[g * 2 * taps + 2 * t + 1, p]
                _point(y, x, height, width, one, corners[q, g, t], weights[q, g, t], fracs[q, g, t])


@_inline
def _point(y, x, height, width, one, corner, weight, frac):
    zero = one - one
    corner[:], weight[:], frac[:] = height * width, zero, zero
    if np.isnan(y) or np.isnan(x):
        weight[:], frac[:] = np.nan, np.nan
        return
    if not (y >= -1 and y < height and x >= -1 and x < width):
        return
    y_low, x_low = np.floor(y), np.floor(x)
    ly, lx = y - y_low, x - x_low
    hy, hx = one - ly, one - lx
    frac[0], frac[1] = ly, lx
    top, left = int(y_low), int(x_low)
    for k in range(4):
        r, c = top + k // 2, left + k % 2
        if 0 <= r < height and 0 <= c < width:
            corner[k] = r * width + c
            weight[k] = (hy if k < 2 else ly) * (hx if k % 2 == 0 else lx)


@_parallel
def gather_columns(planes, mask, masked, corners, weights, channel_runs, per_weight_group, columns):
    """columns (Gw, run, K, Cg) of one run; planes (H*W + 1, C); mask (run, G*K) when masked."""
    run, taps = corners.shape[0], corners.shape[2]
    for q in numba.prange(run):
        for t in range(taps):
            for r in range(channel_runs.shape[0]):
                gw, g, c0, c1 = channel_runs[r, 0], channel_runs[r, 1], channel_runs[r, 2], channel_runs[r, 3]
                corner, weight = corners[q, g, t], weights[q, g, t]
                base = gw * per_weight_group
                row = columns[gw, q, t][c0 - base:c1 - base]
                v0, v1 = planes[corner[0]][c0:c1], planes[corner[1]][c0:c1]
                v2, v3 = planes[corner[2]][c0:c1], planes[corner[3]][c0:c1]
                w0, w1, w2, w3 = weight[0], weight[1], weight[2], weight[3]
                if masked:
                    m = mask[q, g * taps + t]
                    for c in range(c1 - c0):
                        row[c] = m * (w0 * v0[c] + w1 * v1[c] + w2 * v2[c] + w3 * v3[c])
                else:
                    for c in range(c1 - c0):
                        row[c] = w0 * v0[c] + w1 * v1[c] + w2 * v2[c] + w3 * v3[c]


@_parallel
def scatter_input_grad(grad_columns, mask, masked, corners, weights, channel_runs, per_weight_group, one, blocks,
                       grad_planes):
    """grad_planes (H*W + 1, C) += each column gradient (Gw, run, K, Cg) spread over its corners."""
    run, taps, channels = corners.shape[0], corners.shape[2], grad_planes.shape[1]
    for block in numba.prange(blocks):
        lo, hi = block * channels // blocks, (block + 1) * channels // blocks
        for q in range(run):
            for t in range(taps):
                for r in range(channel_runs.shape[0]):
                    gw, g = channel_runs[r, 0], channel_runs[r, 1]
                    c0, c1 = max(lo, channel_runs[r, 2]), min(hi, channel_runs[r, 3])
                    if c0 >= c1:
                        continue
                    scale = mask[q, g * taps + t] if masked else one
                    base = gw * per_weight_group
                    grad = grad_columns[gw, q, t][c0 - base:c1 - base]
                    for k in range(4):
                        target, w = grad_planes[corners[q, g, t, k]][c0:c1], weights[q, g, t, k] * scale
                        for c in range(c1 - c0):
                            target[c] += w * grad[c]


@_summing
def coordinate_grads(planes, grad_columns, mask, masked, corners, fracs, channel_runs, per_weight_group, one,
                     first, grad_offset, grad_mask):
    """grad_offset (2*G*K, P) and grad_mask (G*K, P) of positions [first, first + run)."""
    run, groups, taps = corners.shape[0], corners.shape[1], corners.shape[2]
    for q in numba.prange(run):
        p = first + q
        for g in range(groups):
            for t in range(taps):
                s0, s1, s2, s3 = _corner_sums(planes, grad_columns, corners[q, g, t], channel_runs, g, q, t,
                                              per_weight_group, one)
                ly, lx = fracs[q, g, t, 0], fracs[q, g, t, 1]
                hy, hx = one - ly, one - lx
                m = mask[q, g * taps + t] if masked else one
                grad_mask[g * taps + t, p] = hy * hx * s0 + hy * lx * s1 + ly * hx * s2 + ly * lx * s3
                grad_offset[g * 2 * taps + 2 * t, p] = m * (lx * (s3 - s1) + hx * (s2 - s0))
                grad_offset[g * 2 * taps + 2 * t + 1, p] = m * (ly * (s3 - s2) + hy * (s1 - s0))


@_inline
def _corner_sums(planes, grad_columns, corner, channel_runs, g, q, t, per_weight_group, one):
    """sum_c grad[c] * v_k[c] over offset group g's channels, for each corner k."""
    s0 = s1 = s2 = s3 = one - one
    v0, v1, v2, v3 = planes[corner[0]], planes[corner[1]], planes[corner[2]], planes[corner[3]]
    for r in range(channel_runs.shape[0]):
        if channel_runs[r, 1] != g:
            continue
        gw, c0, c1 = channel_runs[r, 0], channel_runs[r, 2], channel_runs[r, 3]
        base = gw * per_weight_group
        grad = grad_columns[gw, q, t][c0 - base:c1 - base]
        u0, u1, u2, u3 = v0[c0:c1], v1[c0:c1], v2[c0:c1], v3[c0:c1]
        for c in range(c1 - c0):
            s0 += grad[c] * u0[c]
            s1 += grad[c] * u1[c]
            s2 += grad[c] * u2[c]
            s3 += grad[c] * u3[c]
    return s0, s1, s2, s3


TILE = 32


@_parallel
def transpose(source, target):
    """target[j, i] = source[i, j] for 2-D arrays, in TILE x TILE tiles (both sides stay cached)."""
    rows, cols = source.shape
    row_tiles, col_tiles = (rows + TILE - 1) // TILE, (cols + TILE - 1) // TILE
    for tile in numba.prange(row_tiles * col_tiles):
        r0, c0 = (tile // col_tiles) * TILE, (tile % col_tiles) * TILE
        for r in range(r0, min(r0 + TILE, rows)):
            line = source[r]
            for c in range(c0, min(c0 + TILE, cols)):
                target[c, r] = line[c]
