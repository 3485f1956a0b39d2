"""1x1 convolution as GEMM straight on the NC(spatial) data: no window buffer, no copy for
stride 1 (the input is already (C, L) per image); a strided 1x1 conv reads every s-th
element, which one slicing copy gathers."""

from __future__ import annotations

import math

import numpy as np

from ..blas import gemm


def applies(spec, x_shape, w_shape) -> bool:
    return (not spec.transposed and spec.kernel_volume == 1
            and all(lo == hi == 0 for lo, hi in spec.pads(x_shape[2:])))


def _grouped_input(x, spec):
    """(N, G, C_in/G, L) view (stride 1) or compact copy of every s-th position."""
    sampled = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in spec.stride)]
    sampled = np.ascontiguousarray(sampled)
    n, c = x.shape[:2]
    return sampled.reshape(n, spec.groups, c // spec.groups, math.prod(sampled.shape[2:])), sampled.shape[2:]


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    grouped, spatial = _grouped_input(x, spec)
    n, g = x.shape[0], spec.groups
    c_out = w.shape[0]
    w_grouped = np.ascontiguousarray(w.reshape(g, c_out // g, -1))
    out = np.empty((n, g, c_out // g, grouped.shape[-1]), x.dtype)
    for i in range(n):
        for j in range(g):
            gemm(w_grouped[j], grouped[i, j], out[i, j])
    return out.reshape((n, c_out) + tuple(spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    grouped, _ = _grouped_input(x, spec)
    n, g, c_out = x.shape[0], spec.groups, gy.shape[1]
    grads = np.ascontiguousarray(gy).reshape(n, g, c_out // g, -1)
    gw = np.zeros((g, c_out // g, grouped.shape[2]), x.dtype)
    for i in range(n):
        for j in range(g):
            gw[j] += grads[i, j] @ grouped[i, j].T
    return gw.reshape((c_out, x.shape[1] // g) + spec.kernel_size)
