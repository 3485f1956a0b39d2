"""The compiled kernels of deformable convolution (imported on first use; see ``deform.py``).

One image at a time.  :func:`sample_table` turns the offsets into, per (offset group, tap,
output position), the four corner indices into the flattened input plane (-1: outside the
image, or the whole point outside -1 < y < H, -1 < x < W) and the fractional parts (ly, lx).
The other kernels read the table for every channel of the group:

- :func:`gather_columns`: columns[c*K + t, p] = mask * (w1 v1 + w2 v2 + w3 v3 + w4 v4),
  the right operand of the per-group GEMM (torchvision's summation order);
- :func:`scatter_input_grad`: the same bilinear weights, transposed: each column gradient
  goes back to its four corners;
- :func:`coordinate_grads`: d/d(dy), d/d(dx) and d/d(mask) of every sample, summed over the
  group's channels (the derivative of the bilinear form along y and x, floor-based).

A non-finite offset makes its sample NaN (corner index -2), so bad offsets are never silently
read as "outside the image".  Loops keep the compute dtype: the constants arrive typed (``one``)
and the integer parts of the positions arrive as arrays of that dtype.
"""

import numba
import numpy as np

_parallel = numba.njit(parallel=True, cache=True)
_inline = numba.njit(cache=True, inline="always")

NAN_POINT = -2


@_parallel
def sample_table(offset, row_base, col_base, height, width, kw, out_w, corners, fracs):
    """corners[g, t, p, :] and fracs[g, t, p, :] = (ly, lx) for one image.

    offset (2*G*K, P); row_base (K, oh) = oy*sh - ph + i*dh and col_base (K, ow) likewise, in
    the compute dtype; corners int64 (G, K, P, 4); fracs (G, K, P, 2).
    """
    groups, taps, positions = corners.shape[0], corners.shape[1], corners.shape[2]
    for job in numba.prange(groups * taps):
        g, t = job // taps, job % taps
        for p in range(positions):
            y = row_base[t, p // out_w] + offset[g * 2 * taps + 2 * t, p]
            x = col_base[t, p % out_w] + offset[g * 2 * taps + 2 * t + 1, p]
            _point(y, x, height, width, corners[g, t, p], fracs[g, t, p])


@_inline
def _point(y, x, height, width, corner, frac):
    if not (np.isfinite(y) and np.isfinite(x)):
        corner[:] = NAN_POINT
        frac[:] = 0
        return
    if not (y > -1 and y < height and x > -1 and x < width):
        corner[:] = -1
        frac[:] = 0
        return
    y_low, x_low = np.floor(y), np.floor(x)
    frac[0], frac[1] = y - y_low, x - x_low
    top, left = int(y_low), int(x_low)
    rows_ok = (top >= 0, top + 1 <= height - 1)
    cols_ok = (left >= 0, left + 1 <= width - 1)
    for k in range(4):
        r, c = top + k // 2, left + k % 2
        corner[k] = r * width + c if rows_ok[k // 2] and cols_ok[k % 2] else -1


@_inline
def _bilinear(plane, corner, frac, one):
    """w1 v1 + w2 v2 + w3 v3 + w4 v4 in that order; an outside corner adds nothing."""
    ly, lx = frac[0], frac[1]
    hy, hx = one - ly, one - lx
    weights = (hy * hx, hy * lx, ly * hx, ly * lx)
    value = one - one
    for k in range(4):
        if corner[k] >= 0:
            value += weights[k] * plane[corner[k]]
    return value


@_parallel
def gather_columns(planes, mask, masked, corners, fracs, one, per_group, chunks, columns):
    """columns[c*K + t, p] for one image: planes (C, H*W); mask (G*K, P) (read when masked)."""
    channels = planes.shape[0]
    taps, positions = corners.shape[1], corners.shape[2]
    for chunk in numba.prange(chunks):
        for t in range(taps):
            for c in range(chunk * channels // chunks, (chunk + 1) * channels // chunks):
                g = c // per_group
                row = columns[c * taps + t]
                for p in range(positions):
                    if corners[g, t, p, 0] == NAN_POINT:
                        row[p] = np.nan
                        continue
                    value = _bilinear(planes[c], corners[g, t, p], fracs[g, t, p], one)
                    row[p] = mask[g * taps + t, p] * value if masked else value


@_parallel
def scatter_input_grad(grad_columns, mask, masked, corners, fracs, one, per_group, chunks, grad_planes):
    """grad_planes (C, H*W) += each column gradient spread over its four corners."""
    channels = grad_planes.shape[0]
    taps, positions = corners.shape[1], corners.shape[2]
    for chunk in numba.prange(chunks):
        for t in range(taps):
            for c in range(chunk * channels // chunks, (chunk + 1) * channels // chunks):
                g = c // per_group
                row, plane = grad_columns[c * taps + t], grad_planes[c]
                for p in range(positions):
                    corner = corners[g, t, p]
                    if corner[0] == NAN_POINT:
                        continue
                    grad = mask[g * taps + t, p] * row[p] if masked else row[p]
                    ly, lx = fracs[g, t, p, 0], fracs[g, t, p, 1]
                    hy, hx = one - ly, one - lx
                    weights = (hy * hx, hy * lx, ly * hx, ly * lx)
                    for k in range(4):
                        if corner[k] >= 0:
                            plane[corner[k]] += weights[k] * grad


@_parallel
def coordinate_grads(planes, grad_columns, mask, masked, corners, fracs, one, per_group, grad_offset, grad_mask):
    """grad_offset (2*G*K, P) and grad_mask (G*K, P) of one image, one job per (group, tap)."""
    groups, taps, positions = corners.shape[0], corners.shape[1], corners.shape[2]
    for job in numba.prange(groups * taps):
        g, t = job // taps, job % taps
        dy_row, dx_row = grad_offset[g * 2 * taps + 2 * t], grad_offset[g * 2 * taps + 2 * t + 1]
        mask_row = grad_mask[g * taps + t]
        for c in range(g * per_group, (g + 1) * per_group):
            plane, row = planes[c], grad_columns[c * taps + t]
            for p in range(positions):
                corner = corners[g, t, p]
                if corner[0] == NAN_POINT:
                    dy_row[p] = dx_row[p] = mask_row[p] = np.nan
                    continue
                v = _corner_values(plane, corner, one)
                ly, lx = fracs[g, t, p, 0], fracs[g, t, p, 1]
                hy, hx = one - ly, one - lx
                value = hy * hx * v[0] + hy * lx * v[1] + ly * hx * v[2] + ly * lx * v[3]
                mask_row[p] += row[p] * value
                grad = mask[g * taps + t, p] * row[p] if masked else row[p]
                dy_row[p] += grad * (lx * (v[3] - v[1]) + hx * (v[2] - v[0]))
                dx_row[p] += grad * (ly * (v[3] - v[2]) + hy * (v[1] - v[0]))


@_inline
def _corner_values(plane, corner, one):
    zero = one - one
    return (plane[corner[0]] if corner[0] >= 0 else zero, plane[corner[1]] if corner[1] >= 0 else zero,
            plane[corner[2]] if corner[2] >= 0 else zero, plane[corner[3]] if corner[3] >= 0 else zero)
