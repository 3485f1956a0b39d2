"""Gradients against torch autograd on the forward grid (>= 300 cases), and float64 finite
differences on a smaller grid."""

import numpy as np
import pytest
import torch

import npconv.grad as G
from conftest import assert_matches
from helpers import (CONV_GEOMETRIES, DTYPES, TRANSPOSED_GEOMETRIES, grid_operands, parity_grid, tensor_oracle,
                     torch_conv, torch_conv_transpose, torch_gradients)


def _common(params, n):
    keys = ("stride", "padding", "dilation")
    return {k: params[k] for k in keys if k in params}


@pytest.mark.parametrize(**parity_grid(CONV_GEOMETRIES))
def test_conv_gradients_match_autograd(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = grid_operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    gy, gx_t, gw_t, gb_t = torch_gradients(tensor_oracle(torch_conv), x, w, b, groups, params, n, index)
    mode = params.get("padding_mode", "zeros")
    kwargs = dict(_common(params, n), groups=groups, padding_mode=mode)
    assert_matches(G.conv_input(x.shape, w, gy, **kwargs), gx_t, dtype)
    assert_matches(G.conv_weight(x, w.shape, gy, **kwargs), gw_t, dtype)
    if b is not None:
        assert_matches(G.conv_bias(gy), gb_t, dtype)


@pytest.mark.parametrize(**parity_grid(TRANSPOSED_GEOMETRIES))
def test_conv_transpose_gradients_match_autograd(index, case):
    n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    x, w, b, groups, params = grid_operands(n, channels, TRANSPOSED_GEOMETRIES[geometry], dtype, True, index)
    gy, gx_t, gw_t, gb_t = torch_gradients(tensor_oracle(torch_conv_transpose), x, w, b, groups, params, n, index)
    kwargs = dict(_common(params, n), groups=groups, transposed=True,
                  output_padding=params.get("output_padding", 0))
    assert_matches(G.conv_input(x.shape, w, gy, **kwargs), gx_t, dtype)
    assert_matches(G.conv_weight(x, w.shape, gy, **kwargs), gw_t, dtype)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_per_dim_functions_have_torch_nn_grad_signatures(n, rng):
    x = rng.standard_normal((2, 4) + (6,) * n)
    w = rng.standard_normal((6, 2) + (3,) * n)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    y = getattr(torch.nn.functional, f"conv{n}d")(tx, tw, None, 2, 1, 1, 2)
    gy = rng.standard_normal(tuple(y.shape))
    want_x = getattr(torch.nn.grad, f"conv{n}d_input")(tx.shape, tw, torch.from_numpy(gy), 2, 1, 1, 2)
    want_w = getattr(torch.nn.grad, f"conv{n}d_weight")(tx, tw.shape, torch.from_numpy(gy), 2, 1, 1, 2)
    assert_matches(getattr(G, f"conv{n}d_input")(x.shape, w, gy, 2, 1, 1, 2), want_x, np.float64)
    assert_matches(getattr(G, f"conv{n}d_weight")(x, w.shape, gy, 2, 1, 1, 2), want_w, np.float64)
    wt = rng.standard_normal((4, 3) + (3,) * n)
    yt = getattr(torch.nn.functional, f"conv_transpose{n}d")(torch.from_numpy(x), torch.from_numpy(wt), None,
                                                              2, 1, 1, 1, 1)
    gyt = rng.standard_normal(tuple(yt.shape))
    gx = getattr(G, f"conv_transpose{n}d_input")(x.shape, wt, gyt, 2, 1, 1, 1, 1)
    gw = getattr(G, f"conv_transpose{n}d_weight")(x, wt.shape, gyt, 2, 1, 1, 1, 1)
    # finite check through the forward: <convT(x), gy> is linear in x and in w
    from npconv.functional import conv_transpose1d, conv_transpose2d, conv_transpose3d
    convt = (conv_transpose1d, conv_transpose2d, conv_transpose3d)[n - 1]
    probe = rng.standard_normal(x.shape)
    assert np.isclose(np.vdot(convt(probe, wt, None, 2, 1, 1), gyt), np.vdot(probe, gx), rtol=1e-10)
    probe_w = rng.standard_normal(wt.shape)
    assert np.isclose(np.vdot(convt(x, probe_w, None, 2, 1, 1), gyt), np.vdot(probe_w, gw), rtol=1e-10)


def test_unbatched_gradients(rng):
    x, w = rng.standard_normal((4, 7, 6)), rng.standard_normal((3, 4, 3, 2))
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    y = torch.nn.functional.conv2d(tx, tw, padding=1)
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    assert_matches(G.conv2d_input(x.shape, w, gy, padding=1), tx.grad, np.float64)
    assert_matches(G.conv2d_weight(x, w.shape, gy, padding=1), tw.grad, np.float64)


def test_grad_output_of_the_wrong_shape_is_refused(rng):
    with pytest.raises(ValueError, match=r"grad_output has shape \[1, 3, 4, 4\], but the convolution"):
        G.conv2d_input((1, 2, 6, 6), rng.standard_normal((3, 2, 3, 3)), np.zeros((1, 3, 4, 4)), padding=1)


FD_CASES = [
    dict(stride=2, padding=1, dilation=1, groups=1, padding_mode="zeros"),
    dict(stride=1, padding=2, dilation=2, groups=2, padding_mode="reflect"),
    dict(stride=(2, 1), padding=((2, 0), (1, 2)), dilation=1, groups=4, padding_mode="replicate"),
    dict(stride=3, padding="same", dilation=1, groups=1, padding_mode="circular"),
    dict(stride=2, padding=1, dilation=(1, 2), groups=2, transposed=True, output_padding=1),
    dict(stride=(3, 2), padding=0, dilation=1, groups=1, transposed=True, output_padding=(2, 1)),
]


@pytest.mark.parametrize("case", FD_CASES, ids=[str(i) for i in range(len(FD_CASES))])
def test_gradients_match_float64_finite_differences(case):
    """<grad, v> equals the central difference of <conv(.), gy> along a random v (the conv is
    linear, so the difference is exact up to rounding)."""
    import npconv

    rng = np.random.default_rng(3)
    groups, transposed = case["groups"], case.get("transposed", False)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((4, 8 // groups, 3, 3) if transposed else (8, 4 // groups, 3, 3))
    forward = lambda x_, w_: npconv.conv(x_, w_, **case)  # noqa: E731
    gy = rng.standard_normal(forward(x, w).shape)
    gx = G.conv_input(x.shape, w, gy, **case)
    gw = G.conv_weight(x, w.shape, gy, **case)
    h = 1e-3
    for array, gradient, which in ((x, gx, 0), (w, gw, 1)):
        v = rng.standard_normal(array.shape)
        plus = [x + h * v, w] if which == 0 else [x, w + h * v]
        minus = [x - h * v, w] if which == 0 else [x, w - h * v]
        numeric = (np.vdot(forward(*plus), gy) - np.vdot(forward(*minus), gy)) / (2 * h)
        assert np.isclose(numeric, np.vdot(gradient, v), rtol=1e-9), (which, numeric, np.vdot(gradient, v))


@pytest.mark.parametrize("case", FD_CASES[:4], ids=[str(i) for i in range(4)])
def test_fast_weight_gradient_equals_its_definition_as_a_convolution(case):
    """The im2col weight gradient against the primitive called with grad_output as the kernel."""
    import npconv
    from npconv.grad import weight_grad, weight_grad_as_convolution
    from npconv.spec import ConvSpec

    rng = np.random.default_rng(11)
    groups = case["groups"]
    x, w = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((8, 4 // groups, 3, 3))
    gy = rng.standard_normal(npconv.conv(x, w, **case).shape)
    spec = ConvSpec.build((3, 3), case["stride"], case["padding"], case["dilation"], groups, case["padding_mode"])
    np.testing.assert_allclose(weight_grad(spec, x, gy, (3, 3)), weight_grad_as_convolution(spec, x, gy, (3, 3)),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_row_chunks_leave_no_seams_in_forward_and_gradients(monkeypatch, mode):
    from npconv.algorithms import im2col_gemm

    monkeypatch.setattr(im2col_gemm, "CHUNK_TARGET_BYTES", 1)  # one image, one output row per chunk
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 2, 3, 2))
    kwargs = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    padded = torch.nn.functional.pad(tx, (1, 1, 2, 2), mode="constant" if mode == "zeros" else mode)
    y_t = torch.nn.functional.conv2d(padded, tw, stride=(2, 1), dilation=(1, 2), groups=2)
    gy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.from_numpy(gy))
    import npconv
    assert_matches(npconv.conv(x, w, padding_mode=mode, **kwargs), y_t, np.float64)
    assert_matches(G.conv_weight(x, w.shape, gy, padding_mode=mode, **kwargs), tw.grad, np.float64)
    assert_matches(G.conv_input(x.shape, w, gy, padding_mode=mode, **kwargs), tx.grad, np.float64)
