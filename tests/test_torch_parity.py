"""The forward grid: npconv.functional (and the reference) against PyTorch, >= 500 cases.

Where PyTorch has the feature the oracle is PyTorch's own call; for npconv's extensions
(per-side pads, 'same' at stride > 1, padding_mode on the functional) it is PyTorch's
F.pad with pads worked out from the documented rule, then PyTorch's convolution (the grids and
these oracles live in tests/helpers.py, shared with the gradient and algorithm grids).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv.functional as F
from npconv.algorithms.reference import conv_reference, conv_transpose_reference

from conftest import assert_matches
from helpers import (CONV_GEOMETRIES, DTYPES, TRANSPOSED_GEOMETRIES, documented_pads, grid_operands, parity_grid,
                     per_dim, torch_conv, torch_conv_transpose)


@pytest.mark.parametrize(**parity_grid(CONV_GEOMETRIES))
def test_conv_matches_torch(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = grid_operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    want = torch_conv(x, w, b, groups, params, n)
    batched = index % 3 != 0
    conv = getattr(F, f"conv{n}d")
    got = conv(x if batched else x[0], w, b, groups=groups, **params)
    assert_matches(got, want if batched else want[0], dtype)
    if dtype == np.float64:  # the reference oracle is itself held to PyTorch
        stride = per_dim(params.get("stride", 1), n)
        dilation = per_dim(params.get("dilation", 1), n)
        pads = documented_pads(params.get("padding", 0), n, w.shape[2:], stride, dilation, x.shape[2:])
        ref = conv_reference(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups,
                             padding_mode=params.get("padding_mode", "zeros"))
        assert_matches(ref, want, np.float64)


@pytest.mark.parametrize(**parity_grid(TRANSPOSED_GEOMETRIES))
def test_conv_transpose_matches_torch(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = grid_operands(n, channels, TRANSPOSED_GEOMETRIES[geometry], dtype, True, index)
    want = torch_conv_transpose(x, w, b, groups, params, n)
    batched = index % 3 != 1
    conv_t = getattr(F, f"conv_transpose{n}d")
    got = conv_t(x if batched else x[0], w, b, groups=groups, **params)
    assert_matches(got, want if batched else want[0], dtype)
    if dtype == np.float64:
        padding = params.get("padding", 0)
        ref = conv_transpose_reference(
            x, w, b, stride=per_dim(params.get("stride", 1), n),
            pads=documented_pads(padding, n, None, None, None, None),
            dilation=per_dim(params.get("dilation", 1), n), groups=groups,
            output_padding=per_dim(params.get("output_padding", 0), n))
        assert_matches(ref, want, np.float64)


@pytest.mark.parametrize("transposed", [False, True])
def test_chunked_over_images_and_rows_matches_torch(monkeypatch, transposed):
    """A tiny chunk target forces one image and one output row per chunk: no seams."""
    from npconv.algorithms import im2col_gemm

    monkeypatch.setattr(im2col_gemm, "CHUNK_TARGET_BYTES", 1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 6, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    if transposed:
        got = F.conv_transpose2d(x, w, stride=2, padding=1, groups=2)
        want = TF.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1, groups=2)
    else:
        w = w[:, :2]  # (C_out, C_in/groups, kH, kW)
        got = F.conv2d(x, w, stride=(1, 2), padding=1, groups=2)
        want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(1, 2), padding=1, groups=2)
    assert_matches(got, want, np.float64)


@pytest.mark.parametrize("stride,padding,dilation,output_padding", [(1, 0, 1, 0), (2, 1, 1, 1), (3, 2, 2, 2), (2, 0, 3, 0)])
def test_transposed_is_a_convolution_of_the_dilated_input_with_the_flipped_swapped_kernel(
        stride, padding, dilation, output_padding):
    """conv_transpose(x, w) = conv(x with stride-1 zeros between elements, w flipped and with
    in/out channels swapped per group, padding d*(k-1) - p before and that + output_padding after)."""
    rng = np.random.default_rng(stride * 10 + padding)
    x, w, groups, k = rng.standard_normal((2, 4, 5, 4)), rng.standard_normal((4, 3, 3, 3)), 2, 3
    dilated = np.zeros(x.shape[:2] + tuple((s - 1) * stride + 1 for s in x.shape[2:]))
    dilated[:, :, ::stride, ::stride] = x
    flipped = w[:, :, ::-1, ::-1].reshape(groups, 2, 3, k, k).transpose(0, 2, 1, 3, 4).reshape(6, 2, k, k)
    edge = dilation * (k - 1) - padding
    via_conv = F.conv2d(dilated, flipped, padding=((edge, edge + output_padding),) * 2, dilation=dilation,
                        groups=groups)
    direct = F.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding,
                                groups=groups, dilation=dilation)
    assert_matches(direct, via_conv, np.float64)
