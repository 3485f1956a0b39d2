"""The forward grid: npconv.functional (and the reference) against PyTorch, >= 500 cases.

Where PyTorch has the feature the oracle is PyTorch's own call; for npconv's extensions
(per-side pads, 'same' at stride > 1, padding_mode on the functional) it is PyTorch's
F.pad with pads worked out here from the documented rule, then PyTorch's convolution.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv.functional as F
from npconv.algorithms.reference import conv_reference, conv_transpose_reference

from conftest import assert_matches

SPATIAL = {1: (11,), 2: (7, 6), 3: (5, 4, 5)}
CHANNELS = {"dense": (3, 4, 1), "grouped": (4, 6, 2), "depthwise": (4, 4, 4), "depthwise-x2": (3, 6, 3)}
DTYPES = {"f32": np.float32, "f64": np.float64}

CONV_GEOMETRIES = {
    "k3": dict(k=3),
    "k3-s2": dict(k=3, stride=2),
    "k2-p1-d2": dict(k=2, padding=1, dilation=2),
    "k3-same": dict(k=3, padding="same"),
    "k4-same-d2": dict(k=4, padding="same", dilation=2),
    "k3-valid-s3": dict(k=3, padding="valid", stride=3),
    "k3-pairs-s2": dict(k=3, padding=((2, 0), (0, 1), (1, 2)), stride=2),
    "k3-same-s2": dict(k=3, padding="same", stride=2),
    "k3-p1-reflect": dict(k=3, padding=1, padding_mode="reflect"),
    "k3-p2-replicate-s2": dict(k=3, padding=2, padding_mode="replicate", stride=2),
    "k2-circular-d2": dict(k=2, padding=(1, 2, 1), padding_mode="circular", dilation=2),
    "k3-same-reflect": dict(k=3, padding="same", padding_mode="reflect"),
    "mixed": dict(k=(3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 2), dilation=(2, 1, 1)),
    "k3-same-s213-circular": dict(k=3, padding="same", stride=(2, 1, 3), padding_mode="circular"),
    "k1": dict(k=1),
    "k1-s2": dict(k=1, stride=2, dilation=3),
}
TRANSPOSED_GEOMETRIES = {
    "k3": dict(k=3),
    "k3-s2": dict(k=3, stride=2),
    "k4-s2-p1": dict(k=4, stride=2, padding=1),
    "k3-s2-p1-op1": dict(k=3, stride=2, padding=1, output_padding=1),
    "k3-d2-op1": dict(k=3, dilation=2, output_padding=1),
    "k2-s3-op2": dict(k=2, stride=3, output_padding=2),
    "mixed": dict(k=(3, 2, 1), stride=(2, 1, 3), padding=(1, 0, 0), dilation=(1, 2, 1),
                  output_padding=(1, 1, 2)),
    "pairs": dict(k=3, stride=2, padding=((1, 0), (0, 2), (2, 1))),
}


def _first(value, n):
    return tuple(value[:n]) if isinstance(value, tuple) else value


def _per_dim(value, n):
    return _first(value, n) if isinstance(value, tuple) else (value,) * n


def _cases(geometries):
    return [(n, channels, geometry, dtype)
            for n in SPATIAL for channels in CHANNELS for geometry in geometries for dtype in DTYPES]


def _grid(geometries):
    cases = list(enumerate(_cases(geometries)))
    return dict(argnames="index,case", argvalues=cases,
                ids=[f"{n}d-{c}-{g}-{d}" for _, (n, c, g, d) in cases])


def _operands(n, channels, geometry, dtype, transposed, index):
    c_in, c_out, groups = CHANNELS[channels]
    kernel = _per_dim(geometry["k"], n)
    rng = np.random.default_rng(index)
    w_shape = (c_in, c_out // groups) if transposed else (c_out, c_in // groups)
    x = rng.standard_normal((2, c_in) + SPATIAL[n]).astype(dtype)
    w = rng.standard_normal(w_shape + kernel).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if index % 2 == 0 else None
    params = {key: _first(value, n) for key, value in geometry.items() if key != "k"}
    return x, w, b, groups, params


def _explicit_pads(padding, n, kernel, stride, dilation, spatial):
    """Pads by the documented rules, written out independently of npconv's spec."""
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        pads = []
        for i, k, s, d in zip(spatial, kernel, stride, dilation):
            out = math.ceil(i / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - i, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(padding, int):
        return [(padding, padding)] * n
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


def _torch_conv(x, w, b, groups, params, n):
    conv = getattr(TF, f"conv{n}d")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    mode = params.get("padding_mode", "zeros")
    padding = params.get("padding", 0)
    stride = _per_dim(params.get("stride", 1), n)
    dilation = _per_dim(params.get("dilation", 1), n)
    native = mode == "zeros" and not (padding == "same" and max(stride) > 1) and not (
        isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding))
    if native:
        return conv(tx, tw, tb, stride, padding, dilation, groups)
    pads = _explicit_pads(padding, n, w.shape[2:], stride, dilation, x.shape[2:])
    flat = [p for pair in reversed(pads) for p in pair]
    padded = TF.pad(tx, flat, mode="constant" if mode == "zeros" else mode)
    return conv(padded, tw, tb, stride, 0, dilation, groups)


@pytest.mark.parametrize(**_grid(CONV_GEOMETRIES))
def test_conv_matches_torch(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = _operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    want = _torch_conv(x, w, b, groups, params, n)
    batched = index % 3 != 0
    conv = getattr(F, f"conv{n}d")
    got = conv(x if batched else x[0], w, b, groups=groups, **params)
    assert_matches(got, want if batched else want[0], dtype)
    if dtype == np.float64:  # the reference oracle is itself held to PyTorch
        stride = _per_dim(params.get("stride", 1), n)
        dilation = _per_dim(params.get("dilation", 1), n)
        pads = _explicit_pads(params.get("padding", 0), n, w.shape[2:], stride, dilation, x.shape[2:])
        ref = conv_reference(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups,
                             padding_mode=params.get("padding_mode", "zeros"))
        assert_matches(ref, want, np.float64)


def _torch_conv_transpose(x, w, b, groups, params, n):
    conv_t = getattr(TF, f"conv_transpose{n}d")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    padding = params.get("padding", 0)
    stride, dilation = params.get("stride", 1), params.get("dilation", 1)
    op = params.get("output_padding", 0)
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):  # per-side pairs: crop
        full = conv_t(tx, tw, tb, stride, 0, op, groups, dilation)
        crop = tuple(slice(lo, full.shape[2 + d] - hi) for d, (lo, hi) in enumerate(padding))
        return full[(slice(None), slice(None)) + crop]
    return conv_t(tx, tw, tb, stride, padding, op, groups, dilation)


@pytest.mark.parametrize(**_grid(TRANSPOSED_GEOMETRIES))
def test_conv_transpose_matches_torch(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = _operands(n, channels, TRANSPOSED_GEOMETRIES[geometry], dtype, True, index)
    want = _torch_conv_transpose(x, w, b, groups, params, n)
    batched = index % 3 != 1
    conv_t = getattr(F, f"conv_transpose{n}d")
    got = conv_t(x if batched else x[0], w, b, groups=groups, **params)
    assert_matches(got, want if batched else want[0], dtype)
    if dtype == np.float64:
        padding = params.get("padding", 0)
        ref = conv_transpose_reference(
            x, w, b, stride=_per_dim(params.get("stride", 1), n),
            pads=_explicit_pads(padding, n, None, None, None, None),
            dilation=_per_dim(params.get("dilation", 1), n), groups=groups,
            output_padding=_per_dim(params.get("output_padding", 0), n))
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
