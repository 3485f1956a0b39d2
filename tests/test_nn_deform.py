"""npconv.nn.DeformConv2d: torchvision's constructor, refusals, initialisation and repr; forward
and backward as npconv.ops computes them; state dicts and weight files; and a layer whose
gradients teach it the offset that undoes a known sub-pixel shift."""

import math

import numpy as np
import pytest

import npconv
import npconv.nn as nn
from npconv import functional as F
from npconv import ops
from npconv.optim import SGD

# (in, out, kernel), keywords, input (H, W), offset groups, masked
CONFIGS = {
    "k3": ((3, 4, 3), {}, (6, 5), 1, False),
    "k3-p1-mask": ((3, 4, 3), dict(padding=1), (5, 6), 1, True),
    "groups2-og2-s2": ((4, 6, 3), dict(stride=2, padding=1, groups=2), (7, 6), 2, True),
    "k32-d2-og4-nobias": ((4, 2, (3, 2)), dict(dilation=(2, 1), padding=(2, 0), bias=False), (6, 5), 4, False),
    "k1-s2-og2": ((2, 3, 1), dict(stride=(2, 1)), (5, 4), 2, True),
}


def _operands(layer, size, offset_groups, masked, rng, dtype=np.float32, batch=2):
    """An input, offsets that push some samples outside the image, and a mask (or None)."""
    (oh, ow), taps = layer.spec.out_spatial(size), math.prod(layer.kernel_size)
    x = rng.standard_normal((batch, layer.in_channels) + size).astype(dtype)
    offset = (2.5 * rng.standard_normal((batch, 2 * offset_groups * taps, oh, ow))).astype(dtype)
    mask = rng.random((batch, offset_groups * taps, oh, ow)).astype(dtype) if masked else None
    return x, offset, mask


def _ops_args(layer):
    return dict(bias=layer.bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)


# ---- constructor, repr, initialisation ---------------------------------------------------------
@pytest.mark.parametrize("call,fragment", [
    (lambda: nn.DeformConv2d(5, 6, 3, groups=2), "in_channels must be divisible by groups"),  # torchvision's
    (lambda: nn.DeformConv2d(4, 6, 3, groups=4), "out_channels must be divisible by groups"),  # words
    (lambda: nn.DeformConv2d(4, 8, 3, groups=0), "groups must be a positive integer"),
    (lambda: nn.DeformConv2d(4, 8, 3, groups=1.5), "groups must be a positive integer"),
    (lambda: nn.DeformConv2d(0, 8, 3), "in_channels must be a positive integer"),
    (lambda: nn.DeformConv2d(4, -1, 3), "out_channels must be a positive integer"),
    (lambda: nn.DeformConv2d(4, 8, 0), "kernel size should be greater than zero"),
    (lambda: nn.DeformConv2d(4, 8, (3, 3, 3)), "list of 2 values"),
    (lambda: nn.DeformConv2d(4, 8, 3, stride=0), "non-positive stride is not supported"),
    (lambda: nn.DeformConv2d(4, 8, 3, padding=-1), "negative padding is not supported"),
    (lambda: nn.DeformConv2d(4, 8, 3, padding="same"), "has no padding strings"),
    (lambda: nn.DeformConv2d(4, 8, 3, padding=((1, 2), (0, 0))), "same on both sides"),
    (lambda: nn.DeformConv2d(4, 8, 3, dtype=np.int32), "dtype must be float32 or float64"),
    (lambda: nn.DeformConv2d(4, 8, 3, device="cuda"), "npconv runs on the CPU only"),
])
def test_constructor_refusals(call, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment.replace("(", r"\(")):
        call()


@pytest.mark.parametrize("args,kwargs,text", [
    ((3, 8, 3), {}, "DeformConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))"),
    ((3, 8, 3), dict(padding=1), "DeformConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"),
    ((4, 6, (3, 2)), dict(stride=2, padding=(1, 0), dilation=(2, 1), groups=2, bias=False),
     "DeformConv2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), dilation=(2, 1), groups=2, "
     "bias=False)"),
    ((2, 2, 1), dict(stride=(1, 3), padding=0, dilation=1, groups=1, bias=True),
     "DeformConv2d(2, 2, kernel_size=(1, 1), stride=(1, 3))"),
    ((6, 6, 5), dict(dilation=3, groups=3), "DeformConv2d(6, 6, kernel_size=(5, 5), stride=(1, 1), "
                                            "dilation=(3, 3), groups=3)"),
])
def test_repr_is_torchvisions(args, kwargs, text):
    layer = nn.DeformConv2d(*args, **kwargs)
    assert repr(layer) == text
    assert all(isinstance(v, tuple) and len(v) == 2 for v in (layer.kernel_size, layer.stride, layer.padding,
                                                               layer.dilation))
    names = ["weight", "bias"] if kwargs.get("bias", True) else ["weight"]
    assert [name for name, _ in layer.named_parameters()] == names


@pytest.mark.parametrize("args,kwargs", [((4, 8, 3), {}), ((16, 64, 3), dict(groups=4)),
                                         ((6, 256, (1, 2)), {}), ((2, 32, 3), dict(dtype=np.float64))])
def test_init_is_kaiming_uniform_a_sqrt5(args, kwargs):
    npconv.manual_seed(0)
    layer = nn.DeformConv2d(*args, **kwargs)
    in_channels, out_channels, _ = args
    fan_in = in_channels // kwargs.get("groups", 1) * math.prod(layer.kernel_size)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): sqrt(1/3) * sqrt(3 / fan_in)
    assert layer.weight.shape == (out_channels, fan_in // math.prod(layer.kernel_size)) + layer.kernel_size
    assert layer.weight.dtype == layer.bias.dtype == np.dtype(kwargs.get("dtype", np.float32))
    for param in (layer.weight, layer.bias):
        assert np.abs(param).max() <= bound
    assert np.abs(layer.weight).max() > 0.9 * bound  # the whole range is used
    w = np.asarray(layer.weight, np.float64)
    if w.size >= 4096:  # U(-b, b): mean 0, standard deviation b / sqrt(3)
        assert abs(w.mean()) < 0.05 * bound and abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.05


def test_seeded_init_is_reproducible_and_reset_draws_again():
    npconv.manual_seed(7)
    first = nn.DeformConv2d(3, 4, 3)
    npconv.manual_seed(7)
    second = nn.DeformConv2d(3, 4, 3)
    np.testing.assert_array_equal(first.weight, second.weight)
    np.testing.assert_array_equal(first.bias, second.bias)
    second.reset_parameters()
    assert not np.array_equal(first.weight, second.weight)


# ---- forward and backward ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", CONFIGS)
def test_forward_and_backward_are_the_ops(name, dtype):
    args, kwargs, size, offset_groups, masked = CONFIGS[name]
    layer = nn.DeformConv2d(*args, **kwargs, dtype=dtype)
    rng = np.random.default_rng(len(name))
    x, offset, mask = _operands(layer, size, offset_groups, masked, rng, dtype)
    y = layer(x, offset, mask)
    want = ops.deform_conv2d(x, offset, layer.weight, mask=mask, **_ops_args(layer))
    assert y.dtype == dtype and y.shape == (2, layer.out_channels) + layer.spec.out_spatial(size)
    np.testing.assert_array_equal(y, want)
    gy = rng.standard_normal(y.shape).astype(dtype)
    grad_input, grad_offset, grad_mask = layer.backward(gy)
    grads = ops.deform_conv2d_backward(gy, x, offset, layer.weight, mask=mask, **_ops_args(layer))
    np.testing.assert_array_equal(grad_input, grads.input)
    np.testing.assert_array_equal(grad_offset, grads.offset)
    assert grad_input.shape == x.shape and grad_offset.shape == offset.shape
    if masked:
        np.testing.assert_array_equal(grad_mask, grads.mask)
        assert grad_mask.shape == mask.shape
    else:
        assert grad_mask is None
    np.testing.assert_array_equal(layer.weight.grad, grads.weight)
    assert layer.weight.grad.dtype == dtype
    if layer.bias is not None:
        np.testing.assert_array_equal(layer.bias.grad, grads.bias)


def test_gradients_accumulate_until_zero_grad(rng):
    layer = nn.DeformConv2d(2, 3, 3, padding=1)
    x, offset, mask = _operands(layer, (5, 4), 2, True, rng)
    gy = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    layer(x, offset, mask), layer.backward(gy)
    first_w, first_b = layer.weight.grad.copy(), layer.bias.grad.copy()
    np.testing.assert_allclose(first_b, gy.sum(axis=(0, 2, 3)), rtol=1e-5)
    layer(x, offset, mask), layer.backward(gy)
    np.testing.assert_allclose(layer.weight.grad, 2 * first_w, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * first_b, rtol=1e-6)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_zero_offsets_are_conv2d_and_integer_offsets_shift(rng):
    layer = nn.DeformConv2d(4, 6, 3, stride=(1, 2), padding=1, dilation=(2, 1), groups=2, dtype=np.float64)
    x = rng.standard_normal((2, 4, 7, 8))
    (oh, ow) = layer.spec.out_spatial((7, 8))
    y = layer(x, np.zeros((2, 2 * 9, oh, ow)))
    want = F.conv2d(x, layer.weight, layer.bias, stride=(1, 2), padding=1, dilation=(2, 1), groups=2)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    # a 1x1 layer with every dy = 1 reads the next row: the last row falls outside (zero)
    point = nn.DeformConv2d(4, 3, 1, dtype=np.float64)
    offset = np.zeros((2, 2, 7, 8))
    offset[:, 0] = 1.0
    shifted = point(x, offset)
    rows = F.conv2d(x[:, :, 1:], point.weight, point.bias)
    np.testing.assert_allclose(shifted[:, :, :-1], rows, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shifted[:, :, -1], np.broadcast_to(point.bias[:, None], (2, 3, 8)), atol=1e-12)


def test_forward_and_backward_refusals(rng):
    layer = nn.DeformConv2d(4, 8, 3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 8, 3, 3)))
    with pytest.raises(ValueError, match="expected input.* to have 4 channels, but got 8 channels instead"):
        layer(np.zeros((1, 8, 5, 5), np.float32), np.zeros((1, 18, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"DeformConv2d: offset.shape\[1\] must be 2\*kh\*kw\*offset_groups"):
        layer(np.zeros((1, 4, 5, 5), np.float32), np.zeros((1, 17, 3, 3), np.float32))
    with pytest.raises(ValueError, match="offset's spatial size must be the output's 3x3, got 4x4"):
        layer(np.zeros((1, 4, 5, 5), np.float32), np.zeros((1, 18, 4, 4), np.float32))
    with pytest.raises(TypeError, match="torchvision's deform_conv2d has no complex kernel"):
        layer(np.zeros((1, 4, 5, 5), np.complex64), np.zeros((1, 18, 3, 3), np.float32))
    layer(np.zeros((1, 4, 5, 5), np.float32), np.zeros((1, 18, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad_output has shape \[1, 8, 3, 2\], but this deformable "
                                         r"convolution gives \[1, 8, 3, 3\]"):
        layer.backward(np.zeros((1, 8, 3, 2), np.float32))


def test_float64_layer_and_modes(rng):
    layer = nn.DeformConv2d(3, 2, 3, padding=1, dtype=np.float64)
    assert layer.weight.dtype == layer.bias.dtype == np.float64
    x, offset, mask = _operands(layer, (4, 5), 1, True, rng, np.float64)
    y = layer(x, offset, mask)
    grad_input, grad_offset, grad_mask = layer.backward(np.ones_like(y))
    assert {a.dtype for a in (y, grad_input, grad_offset, grad_mask, layer.weight.grad)} == {np.dtype(np.float64)}
    assert layer.eval() is layer and not layer.training  # no mode-dependent behaviour
    np.testing.assert_array_equal(layer(x, offset, mask), y)
    assert layer.train().training


# ---- state dicts and weight files --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_state_dict_and_weight_file_round_trip(tmp_path, rng, dtype):
    layer = nn.DeformConv2d(4, 6, (3, 2), padding=1, groups=2, dtype=dtype)
    state = layer.state_dict()
    assert [(k, v.shape, v.dtype) for k, v in state.items()] == [("weight", (6, 2, 3, 2), dtype), ("bias", (6,), dtype)]
    path = tmp_path / "deform.npz"
    npconv.save(state, path)
    other = nn.DeformConv2d(4, 6, (3, 2), padding=1, groups=2, dtype=dtype)
    assert not np.array_equal(other.weight, layer.weight)
    result = other.load_state_dict(npconv.load(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x, offset, mask = _operands(layer, (5, 5), 2, True, rng, dtype)
    np.testing.assert_array_equal(other(x, offset, mask), layer(x, offset, mask))
    with pytest.raises(ValueError, match=r"missing keys \['bias'\]"):
        other.load_state_dict({"weight": state["weight"]})
    with pytest.raises(ValueError, match="size mismatch for weight"):
        other.load_state_dict({"weight": np.zeros((6, 4, 3, 2)), "bias": np.zeros(6)})
    plain = nn.DeformConv2d(4, 6, (3, 2), bias=False)
    assert list(plain.state_dict()) == ["weight"]


# ---- the gradients are usable: learn the offset that undoes a shift ---------------------------
def _smooth(y, x):
    return np.sin(0.16 * y + 0.3) * np.cos(0.12 * x) + 0.5 * np.cos(0.1 * y - 0.15 * x + 1.0)


@pytest.mark.parametrize("kernel", [1, 3])
def test_learns_the_offset_that_undoes_a_shift(kernel):
    """The image moved by (0.4, -0.3) px; an identity-tap layer samples at (y + dy, x + dx), so
    (dy, dx) = the shift restores it.  One shared (dy, dx) is learned by plain gradient descent
    on the MSE over the interior (samples near the border fall outside the image)."""
    size, shift, margin = 24, np.array([0.4, -0.3]), 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    target = _smooth(rows, cols)[None, None]
    moved = _smooth(rows - shift[0], cols - shift[1])[None, None]
    layer = nn.DeformConv2d(1, 1, kernel, padding=kernel // 2, bias=False, dtype=np.float64)
    layer.weight[...] = 0
    layer.weight[0, 0, kernel // 2, kernel // 2] = 1  # the identity tap, kept fixed
    taps, inner = kernel * kernel, (Ellipsis, slice(margin, -margin), slice(margin, -margin))
    dydx = nn.Parameter(np.zeros(2))
    optimizer = SGD([dydx], lr=60.0)
    losses = []
    for _ in range(80):
        offset = np.broadcast_to(dydx.reshape(1, 1, 2, 1, 1), (1, taps, 2, size, size))
        out = layer(moved, offset.reshape(1, 2 * taps, size, size))
        error = np.zeros_like(out)
        error[inner] = (out - target)[inner]
        count = error[inner].size
        losses.append(float(np.sum(error ** 2) / count))
        _, grad_offset, _ = layer.backward(2 * error / count)
        dydx.grad = grad_offset.reshape(1, taps, 2, size, size).sum(axis=(0, 1, 3, 4))
        optimizer.step()
    assert losses[0] / losses[-1] > 100, (losses[0], losses[-1])
    np.testing.assert_allclose(dydx, shift, atol=0.05)
