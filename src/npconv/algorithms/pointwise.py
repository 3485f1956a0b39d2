"""1x1 convolution as GEMM straight on the NC(spatial) data: no window buffer, no copy for
stride 1 (the input is already (C, L) per image); a strided 1x1 conv reads every s-th
element, which one slicing copy per box of images and output positions gathers (the whole
batch at once unless the workspace cap says otherwise)."""

from __future__ import annotations

import numpy as np

from .. import workspace
from ..arrays import is_channels_last
from ..blas import gemm
from .chunks import add_product, matrix, part_rows


def applies(spec, x_shape, w_shape) -> bool:
    return spec.is_pointwise


def _sampled_bytes(spec, x_shape, itemsize) -> int:
    """The gathered input of one image and output position (stride 1: none, x is read in place)."""
    return 0 if spec.unit_stride else x_shape[1] * itemsize


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    return _sampled_bytes(spec, x_shape, itemsize)


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """The sample of one output position and one row of the partial sum."""
    return _sampled_bytes(spec, x_shape, itemsize) + w_shape[1] * itemsize


def _boxes(spec, x, out_spatial, fixed=0):
    """Boxes (images, *out runs): the whole batch at stride 1; samples under the cap otherwise."""
    cell = _sampled_bytes(spec, x.shape, x.itemsize)
    budget = workspace.limit() - fixed
    return workspace.boxes((x.shape[0],) + tuple(out_spatial), workspace.linear(cell, budget))


def _sample(x, spec, box) -> np.ndarray:
    """(count, C_in, *box) input positions read by a box of outputs: a view at stride 1, else a scratch copy."""
    source = x[(box[0], slice(None)) + tuple(slice(run.start * s, (run.stop - 1) * s + 1, s)
                                             for run, s in zip(box[1:], spec.stride))]
    if spec.unit_stride:
        return source
    sampled = workspace.scratch("pointwise sample", source.shape, x.dtype)
    sampled[...] = source
    return sampled


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    workspace.require({"pointwise": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    if is_channels_last(x) and spec.groups == 1 and spec.unit_stride:
        return _channels_last_forward(x, w)
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out = w.shape[0]
    x = np.ascontiguousarray(x)  # boxes of it are matrices (a copy only of a non-contiguous input)
    w_grouped = np.ascontiguousarray(w.reshape(g, c_out // g, -1))
    out = np.empty((n, c_out) + tuple(out_spatial), x.dtype)
    for box in _boxes(spec, x, out_spatial):
        sampled, target = _sample(x, spec, box), out[(box[0], slice(None)) + box[1:]]
        for i in range(box[0].stop - box[0].start):
            for j in range(g):
                gemm(w_grouped[j], matrix(sampled[i, j * (c_in // g):(j + 1) * (c_in // g)], c_in // g),
                     matrix(target[i, j * (c_out // g):(j + 1) * (c_out // g)], c_out // g))
    return out


def _channels_last_forward(x, w) -> np.ndarray:
    """Channels-last memory is one (N * positions, C_in) matrix: a single GEMM with the weight
    gives the (N * positions, C_out) output, channels-last too; nothing is copied."""
    rows = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    out = np.empty((rows.shape[0], w.shape[0]), x.dtype)
    gemm(rows, w.reshape(w.shape[0], -1).T, out)
    return np.moveaxis(out.reshape((x.shape[0],) + x.shape[2:] + (w.shape[0],)), -1, 1)


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    n, c_in, g, c_out = x.shape[0], x.shape[1], spec.groups, gy.shape[1]
    w_shape = (c_out, c_in // g) + spec.kernel_size
    workspace.require({"pointwise": weight_grad_min_workspace(spec, x.shape, w_shape, x.itemsize)})
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    row = (c_in // g) * x.itemsize
    rows = part_rows(c_out // g, row, (workspace.limit() - _sampled_bytes(spec, x.shape, x.itemsize)) // 2)
    gw = np.zeros((g, c_out // g, c_in // g), x.dtype)
    for number, box in enumerate(_boxes(spec, x, gy.shape[2:], fixed=rows * row)):
        sampled, grads = _sample(x, spec, box), gy[(box[0], slice(None)) + box[1:]]
        for i in range(box[0].stop - box[0].start):
            for j in range(g):
                a = matrix(grads[i, j * (c_out // g):(j + 1) * (c_out // g)], c_out // g)
                b = matrix(sampled[i, j * (c_in // g):(j + 1) * (c_in // g)], c_in // g).T
                add_product(gw[j], a, b, number == 0 and i == 0, rows)
    return gw.reshape((c_out, c_in // g) + spec.kernel_size)
