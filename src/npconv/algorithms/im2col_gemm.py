"""Strided windows + BLAS GEMM: the general algorithm (any dims, groups, stride, dilation,
padding mode) and the one every other algorithm is checked against after the reference.
Convolution unrolled into a matrix product: Chellapilla, Puri & Simard 2006, "High Performance
Convolutional Neural Networks for Document Processing" (Caffe's convolution layer does the same).

- forward: ``cols = im2col(x)`` viewed as (N, G, C_in/G * K, L), one GEMM per (image, group)
  with the weight viewed as (G, C_out/G, C_in/G * K) — the result is already NCHW;
- transposed: the weight's transpose times x gives every tap's contribution and ``col2im``
  adds them into place (no zeros inserted between input elements);
- weight gradient: ``grad_output`` (C_out/G, L) times ``cols``^T (L, C_in/G * K), summed
  over images — the convolution of the input with grad_output, computed on the windows.

The window buffer is built for a box of images and output positions at a time (whole images,
else runs of output rows, else runs of columns of one row, ...): boxes aim at
``CHUNK_TARGET_BYTES`` (about the L3 cache, so the GEMM reads the columns while they
are still cached: 18 ms -> 11 ms on a 3x3 C64 56x56 N=8 float32 layer here) and never exceed
:func:`npconv.workspace.limit` (default 256 MiB) — C3D's 3x3x3 windows of one clip take
347 MB unchunked.  The GEMM writes straight into the output (a box of whole rows or of part
of one row is a strided matrix BLAS writes in place), so the windows are the only scratch of
the forward; the transposed form's only scratch is the box's columns (C_out * K per input
position), added into the output by ``col2im``; the weight gradient adds the partial sum
of a box to the gradient through rows of a scratch, few enough to fit beside the windows.
"""

from __future__ import annotations

import math

import numpy as np

from .. import workspace
from ..blas import gemm
from ..windows import col2im, im2col
from .chunks import add_product, chunks, matrix, part_rows

CHUNK_TARGET_BYTES = 8 * 2**20


def _windows(x, spec, pads, box, out=None):
    """im2col of the output positions of ``box`` (images, *out runs) only: each dim's low pad
    shifted by the positions skipped."""
    shifted = tuple((lo - run.start * s, hi) for (lo, hi), run, s in zip(pads, box[1:], spec.stride))
    return im2col(x[box[0]], spec.kernel_size, spec.stride, spec.dilation, shifted,
                  workspace.extents(box[1:]), spec.padding_mode, out)


def _window_bytes(spec, x_shape, itemsize) -> int:
    """The window buffer of one image and output position: C_in * K values."""
    return x_shape[1] * spec.kernel_volume * itemsize


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """Forward: the windows of one output position."""
    return _window_bytes(spec, x_shape, itemsize)


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    """x (N, C_in, *in), w (C_out, C_in/G, *k) -> (N, C_out, *out), no bias."""
    workspace.require({"im2col_gemm": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, k = w.shape[0], spec.kernel_volume
    w_grouped = np.ascontiguousarray(w.reshape(g, c_out // g, (c_in // g) * k))
    out = np.empty((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    for box in chunks(n, out_spatial, _window_bytes(spec, x.shape, x.itemsize), CHUNK_TARGET_BYTES):
        count, chunk_out = box[0].stop - box[0].start, workspace.extents(box[1:])
        buffer = workspace.scratch("im2col windows", (count, c_in) + spec.kernel_size + chunk_out, x.dtype)
        cols = _windows(x, spec, pads, box, buffer).reshape(count, g, (c_in // g) * k, math.prod(chunk_out))
        target = out[(box[0], slice(None)) + box[1:]]  # (count, C_out, *chunk_out), strided unless whole images
        for i in range(count):
            for j in range(g):
                gemm(w_grouped[j], cols[i, j], matrix(target[i, j * (c_out // g):(j + 1) * (c_out // g)], c_out // g))
    return out


# ---- transposed ------------------------------------------------------------------------

def transposed_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """Transposed: the columns of one input position, C_out * K values."""
    return w_shape[1] * spec.groups * spec.kernel_volume * itemsize


def forward_transposed(x, w, spec, pads, out_spatial) -> np.ndarray:
    """x (N, C_in, *in), w (C_in, C_out/G, *k) -> (N, C_out, *out): transposed, no bias.

    Boxes of input positions: their columns (C_out/G * K, L) = w^T x per group, added into
    the output by col2im with the pads shifted as the forward's windows are."""
    cell = transposed_min_workspace(spec, x.shape, w.shape, x.itemsize)
    workspace.require({"gemm_col2im": cell})
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out_g, k = w.shape[1], spec.kernel_volume
    x = np.ascontiguousarray(x)  # boxes of it are matrices (a copy only of a non-contiguous input)
    w_t = w.reshape(g, c_in // g, c_out_g * k).transpose(0, 2, 1)  # (G, C_out/G*K, C_in/G): BLAS reads it transposed
    out = np.zeros((n, c_out_g * g) + tuple(out_spatial), dtype=x.dtype)
    for box in chunks(n, x.shape[2:], cell, CHUNK_TARGET_BYTES):
        count, grid = box[0].stop - box[0].start, workspace.extents(box[1:])
        cols = workspace.scratch("col2im columns", (count, g, c_out_g * k, math.prod(grid)), x.dtype)
        source = x[(box[0], slice(None)) + box[1:]]
        for i in range(count):
            for j in range(g):
                np.matmul(w_t[j], matrix(source[i, j * (c_in // g):(j + 1) * (c_in // g)], c_in // g), out=cols[i, j])
        shifted = tuple((lo - run.start * s, hi) for (lo, hi), run, s in zip(pads, box[1:], spec.stride))
        col2im(cols.reshape((count, c_out_g * g) + spec.kernel_size + grid), out_spatial, spec.stride,
               spec.dilation, shifted, spec.padding_mode, out=out[box[0]])
    return out


# ---- weight gradient -------------------------------------------------------------------

def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """Weight gradient: the windows of one output position and one row of the partial sum."""
    return _window_bytes(spec, x_shape, itemsize) + w_shape[1] * spec.kernel_volume * itemsize


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    """d loss / d w of a conv: (C_out, C_in/G, *k) = sum over images of gy (C_out/G, L) cols^T."""
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, out_spatial, k = gy.shape[1], gy.shape[2:], spec.kernel_volume
    w_shape = (c_out, c_in // g) + spec.kernel_size
    workspace.require({"im2col_gemm": weight_grad_min_workspace(spec, x.shape, w_shape, x.itemsize)})
    gy = np.ascontiguousarray(gy)  # boxes of it are matrices (a copy only of a non-contiguous input)
    cell, row = _window_bytes(spec, x.shape, x.itemsize), (c_in // g) * k * x.itemsize
    boxes = chunks(n, out_spatial, cell, CHUNK_TARGET_BYTES)
    rows = c_out // g
    if len(boxes) > 1:  # partial sums after the first box: their scratch shares the cap with the windows
        rows = part_rows(c_out // g, row, (workspace.limit() - cell) // 2)
        boxes = chunks(n, out_spatial, cell, CHUNK_TARGET_BYTES, fixed=rows * row)
    gw = (np.empty if boxes else np.zeros)((g, c_out // g, (c_in // g) * k), dtype=x.dtype)  # no images: zero
    for number, box in enumerate(boxes):
        count, chunk_out = box[0].stop - box[0].start, workspace.extents(box[1:])
        buffer = workspace.scratch("im2col windows", (count, c_in) + spec.kernel_size + chunk_out, x.dtype)
        cols = _windows(x, spec, pads, box, buffer).reshape(count, g, (c_in // g) * k, math.prod(chunk_out))
        grads = gy[(box[0], slice(None)) + box[1:]]
        for i in range(count):
            for j in range(g):
                a = matrix(grads[i, j * (c_out // g):(j + 1) * (c_out // g)], c_out // g)
                add_product(gw[j], a, cols[i, j].T, number == 0 and i == 0, rows)
    return gw.reshape((c_out, c_in // g) + spec.kernel_size)
