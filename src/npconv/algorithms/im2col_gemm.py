"""Strided windows + BLAS GEMM: the general algorithm (any dims, groups, stride, dilation,
padding mode) and the one every other algorithm is checked against after the reference.

- forward: ``cols = im2col(x)`` viewed as (N, G, C_in/G * K, L), one GEMM per (image, group)
  with the weight viewed as (G, C_out/G, C_in/G * K) — the result is already NCHW;
- transposed: the weight's transpose times x gives every tap's contribution and ``col2im``
  adds them into place (no zeros inserted between input elements);
- weight gradient: ``grad_output`` (C_out/G, L) times ``cols``^T (L, C_in/G * K), summed
  over images — the convolution of the input with grad_output, computed on the windows.

The window buffer is built for a chunk of images and output rows at a time: chunks aim at
``CHUNK_TARGET_BYTES`` (about the L3 cache, so the GEMM reads the columns while they are still
cached: 18 ms -> 11 ms on a 3x3 C64 56x56 N=8 float32 layer here) and never exceed
:func:`npconv.workspace.limit` (default 256 MiB) — C3D's 3x3x3 windows of one clip take
347 MB unchunked.
"""

from __future__ import annotations

import math

import numpy as np

from .. import workspace
from ..blas import gemm
from ..windows import col2im, im2col

CHUNK_TARGET_BYTES = 8 * 2**20


def chunks(n_images: int, out_spatial, bytes_per_row: int, target: int | None = None):
    """(images, rows) slices covering (N, out rows) with windows of at most the target size
    (default: CHUNK_TARGET_BYTES, never above the workspace cap).

    ``bytes_per_row`` is the window buffer of one image and one output row (first spatial dim).
    """
    rows = out_spatial[0]
    target = min(CHUNK_TARGET_BYTES if target is None else target, workspace.limit())
    per_image = bytes_per_row * rows
    if per_image <= target:
        step = max(1, min(n_images, target // max(per_image, 1)))
        return [(slice(i, min(i + step, n_images)), slice(0, rows)) for i in range(0, n_images, step)]
    row_step = max(1, target // max(bytes_per_row, 1))
    return [(slice(i, i + 1), slice(r, min(r + row_step, rows)))
            for i in range(n_images) for r in range(0, rows, row_step)]


def _windows(x, spec, pads, out_spatial, rows: slice, out=None):
    """im2col of the output rows ``rows`` only: shift the first dim's low pad by the rows skipped."""
    (lo, hi), rest = pads[0], tuple(pads[1:])
    shifted = ((lo - rows.start * spec.stride[0], hi),) + rest
    chunk_out = (rows.stop - rows.start,) + tuple(out_spatial[1:])
    return im2col(x, spec.kernel_size, spec.stride, spec.dilation, shifted, chunk_out, spec.padding_mode, out)


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    """x (N, C_in, *in), w (C_out, C_in/G, *k) -> (N, C_out, *out), no bias."""
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, k = w.shape[0], spec.kernel_volume
    rest = math.prod(out_spatial[1:])
    w_grouped = np.ascontiguousarray(w.reshape(g, c_out // g, (c_in // g) * k))
    out = np.empty((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    for images, rows in chunks(n, out_spatial, c_in * k * rest * x.itemsize):
        count, chunk_out = images.stop - images.start, (rows.stop - rows.start,) + tuple(out_spatial[1:])
        length = math.prod(chunk_out)
        buffer = workspace.scratch("im2col windows", (count, c_in) + spec.kernel_size + chunk_out, x.dtype)
        cols = _windows(x[images], spec, pads, out_spatial, rows, buffer).reshape(count, g, (c_in // g) * k, length)
        whole_rows = rows.stop - rows.start == out_spatial[0]
        target = workspace.scratch("im2col rows", (count, g, c_out // g, length), x.dtype) if not whole_rows else \
            out[images].reshape(count, g, c_out // g, length)
        for i in range(count):
            for j in range(g):
                gemm(w_grouped[j], cols[i, j], target[i, j])
        if not whole_rows:
            out[images, :, rows] = target.reshape((count, c_out, rows.stop - rows.start) + tuple(out_spatial[1:]))
    return out


def forward_transposed(x, w, spec, pads, out_spatial) -> np.ndarray:
    """x (N, C_in, *in), w (C_in, C_out/G, *k) -> (N, C_out, *out): transposed, no bias."""
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out_g, in_spatial = w.shape[1], x.shape[2:]
    k, length = spec.kernel_volume, math.prod(in_spatial)
    w_t = np.ascontiguousarray(w.reshape(g, c_in // g, c_out_g * k).transpose(0, 2, 1))  # (G, C_out/G*K, C_in/G)
    out = np.empty((n, c_out_g * g) + tuple(out_spatial), dtype=x.dtype)
    per_image = c_out_g * g * k * length * x.itemsize
    step = max(1, min(n, min(CHUNK_TARGET_BYTES, workspace.limit()) // per_image))
    for start in range(0, n, step):
        stop = min(start + step, n)
        x_g = np.ascontiguousarray(x[start:stop]).reshape(stop - start, g, c_in // g, length)
        cols = np.empty((stop - start, g, c_out_g * k, length), x.dtype)
        for i in range(stop - start):
            for j in range(g):
                gemm(w_t[j], x_g[i, j], cols[i, j])
        cols = cols.reshape((stop - start, c_out_g * g) + spec.kernel_size + tuple(in_spatial))
        out[start:stop] = col2im(cols, out_spatial, spec.stride, spec.dilation, pads, spec.padding_mode)
    return out


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    """d loss / d w of a conv: (C_out, C_in/G, *k) = sum over images of gy (C_out/G, L) cols^T."""
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, out_spatial, k = gy.shape[1], gy.shape[2:], spec.kernel_volume
    rest = math.prod(out_spatial[1:])
    gw = np.zeros((g, c_out // g, (c_in // g) * k), dtype=x.dtype)
    part = np.empty_like(gw[0])
    for images, rows in chunks(n, out_spatial, c_in * k * rest * x.itemsize):
        count, length = images.stop - images.start, (rows.stop - rows.start) * rest
        buffer = workspace.scratch("im2col windows", (count, c_in) + spec.kernel_size +
                                   ((rows.stop - rows.start),) + tuple(out_spatial[1:]), x.dtype)
        cols = _windows(x[images], spec, pads, out_spatial, rows, buffer).reshape(count, g, (c_in // g) * k, length)
        grads = np.ascontiguousarray(gy[images, :, rows]).reshape(count, g, c_out // g, length)
        for i in range(count):
            for j in range(g):
                np.matmul(grads[i, j], cols[i, j].T, out=part)
                gw[j] += part
    return gw.reshape((c_out, c_in // g) + spec.kernel_size)
