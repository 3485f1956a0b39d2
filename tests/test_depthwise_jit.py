"""The compiled depthwise / few-channel grouped kernels (npconv.algorithms.depthwise_jit), called
directly: forward and weight gradient against PyTorch over 1-D and 2-D geometries, both
layouts (planes for wide rows, channels innermost for narrow ones), stride, dilation, every
padding mode, channel multipliers, groups of a few channels, float32 and float64."""

import numpy as np
import pytest
from helpers import on_ci
import torch

from npconv.algorithms import depthwise_jit
from npconv.spec import ConvSpec

from conftest import assert_matches

# Numba is a runtime dependency: without it these tests skip on a developer machine, and fail under CI
pytestmark = pytest.mark.skipif(not depthwise_jit.available() and not on_ci(), reason="Numba is not installed")

MODES = ("zeros", "reflect", "replicate", "circular")

# (input shape, C_out, groups, kernel, stride, padding, dilation)
GEOMETRIES = {
    "dw3-wide": ((2, 6, 19, 23), 6, 6, 3, 1, 1, 1),
    "dw3-narrow": ((2, 20, 9, 9), 20, 20, 3, 1, 1, 1),
    "dw3-s2-wide": ((2, 6, 35, 40), 6, 6, 3, 2, 1, 1),
    "dw3-s2-narrow": ((2, 18, 13, 12), 18, 18, 3, 2, 1, 1),
    "dw5-dil2": ((1, 4, 24, 27), 4, 4, 5, 1, 4, 2),
    "dw7": ((1, 3, 30, 33), 3, 3, 7, 1, 3, 1),
    "dw-mult2": ((2, 5, 17, 21), 10, 5, 3, 1, 1, 1),
    "dw-mult3-s2": ((1, 4, 9, 8), 12, 4, 3, 2, 1, 1),
    "grouped-4x4": ((2, 16, 18, 20), 16, 4, 3, 1, 1, 1),
    "grouped-2x6-s2": ((1, 8, 21, 19), 24, 4, 3, 2, 1, 1),
    "grouped-8-dil": ((1, 8, 20, 22), 4, 1, 3, 1, 2, 2),
    "rect-kernel": ((1, 6, 20, 25), 6, 6, (3, 5), (1, 2), (1, 2), (2, 1)),
    "dw3-1d": ((2, 6, 50), 6, 6, 3, 1, 1, 1),
    "dw5-1d-s2": ((2, 4, 41), 8, 4, 5, 2, 2, 1),
    "grouped-1d-dil": ((1, 8, 40), 8, 2, 3, 1, 3, 3),
    "dw-1d-narrow": ((2, 24, 9), 24, 24, 3, 1, 1, 1),
}


def _tuple(value, n):
    return value if isinstance(value, tuple) else (value,) * n


def _torch_reference(x, w, groups, stride, padding, dilation, mode, gy):
    """PyTorch's output and weight gradient (padding modes other than zeros as an explicit pad)."""
    n = x.ndim - 2
    tx, tw = torch.from_numpy(x), torch.from_numpy(w).requires_grad_()
    pads = sum(((p, p) for p in reversed(_tuple(padding, n))), ())
    conv = torch.nn.functional.conv1d if n == 1 else torch.nn.functional.conv2d
    if mode != "zeros":
        tx, padding = torch.nn.functional.pad(tx, pads, mode=mode), 0
    y = conv(tx, tw, None, stride, padding, dilation, groups)
    if gy is None:
        return y.detach().numpy(), None
    y.backward(torch.from_numpy(gy))
    return y.detach().numpy(), tw.grad.numpy()


def _run(name, mode, dtype):
    x_shape, c_out, groups, kernel, stride, padding, dilation = GEOMETRIES[name]
    n = len(x_shape) - 2
    rng = np.random.default_rng(len(name) + len(mode))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c_out, x_shape[1] // groups) + _tuple(kernel, n)).astype(dtype)
    spec = ConvSpec.build(_tuple(kernel, n), stride, padding, dilation, groups, mode)
    assert depthwise_jit.applies(spec, x.shape, w.shape)
    out_spatial = spec.out_spatial(x_shape[2:])
    gy = rng.standard_normal((x_shape[0], c_out) + out_spatial).astype(dtype)
    want_y, want_gw = _torch_reference(x, w, groups, stride, padding, dilation, mode, gy)
    got_y = depthwise_jit.forward(x, w, spec, spec.pads(x_shape[2:]), out_spatial)
    got_gw = depthwise_jit.weight_grad(x, gy, spec, spec.pads(x_shape[2:]))
    return (got_y, want_y), (got_gw, want_gw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_forward_and_weight_gradient_match_torch(name, mode, dtype):
    (got_y, want_y), (got_gw, want_gw) = _run(name, mode, dtype)
    assert_matches(got_y, want_y, dtype)
    assert_matches(got_gw, want_gw, dtype)


def test_both_layouts_are_exercised():
    layouts = {depthwise_jit._layout(ConvSpec.build(_tuple(g[3], len(g[0]) - 2), g[4], g[5], g[6], g[2]),
                                     g[0]).channels_inner for g in GEOMETRIES.values()}
    assert layouts == {True, False}


@pytest.mark.parametrize("group_channels,accepted", [(1, True), (depthwise_jit.MAX_GROUP_CHANNELS, True),
                                                     (depthwise_jit.MAX_GROUP_CHANNELS + 1, False)])
def test_applies_to_groups_of_few_channels(group_channels, accepted):
    spec = ConvSpec.build((3, 3), padding=1, groups=4)
    x_shape = (1, 4 * group_channels, 8, 8)
    assert depthwise_jit.applies(spec, x_shape, (8, group_channels, 3, 3)) is accepted
    assert not depthwise_jit.applies(ConvSpec.build((3, 3, 3), groups=4), (1, 4, 5, 5, 5), (4, 1, 3, 3, 3))


@pytest.mark.parametrize("layout", ["wide", "narrow"])
def test_nan_and_inf_land_where_torch_puts_them(layout):
    """Zero padding never multiplies an inf, and the columns computed and dropped between rows
    (stride 1 runs) never reach the output or the weight gradient."""
    size = 24 if layout == "wide" else 8
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, size, size)).astype(np.float32)
    x[0, 3, 2, size - 1], x[0, 5, 0, 0], x[0, 7, size // 2, 1] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    spec = ConvSpec.build((3, 3), padding=1, groups=16)
    gy = rng.standard_normal((1, 16, size, size)).astype(np.float32)
    want_y, want_gw = _torch_reference(x, w, 16, 1, 1, 1, "zeros", gy)
    got_y = depthwise_jit.forward(x, w, spec, spec.pads((size, size)), (size, size))
    got_gw = depthwise_jit.weight_grad(x, gy, spec, spec.pads((size, size)))
    for got, want in ((got_y, want_y), (got_gw, want_gw)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_index_tables_follow_the_padding_modes(mode):
    size, lo, count = 5, 3, 12
    got = depthwise_jit.source_index(size, lo, count, mode)
    source = torch.arange(size, dtype=torch.float64)[None, None]
    pads = (lo, count - size - lo)
    padded = (torch.nn.functional.pad(source, pads, value=-1) if mode == "zeros"
              else torch.nn.functional.pad(source, pads, mode=mode))
    want = padded[0, 0].numpy()
    assert got.tolist() == want.astype(int).tolist()
