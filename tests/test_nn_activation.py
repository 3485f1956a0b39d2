"""The elementwise activations (npconv.nn.activation) against torch.nn: values, gradients,
the derivative at the kinks, in-place, memory layout, repr and refusals."""

import numpy as np
import pytest
import torch

from conftest import assert_matches
from npconv.nn.activation import GELU, SiLU, Hardsigmoid, Hardswish, Identity, ReLU6, Sigmoid, Tanh

ACTIVATIONS = [
    (ReLU6, {}), (ReLU6, {"inplace": True}), (SiLU, {}), (SiLU, {"inplace": True}), (GELU, {}),
    (GELU, {"approximate": "tanh"}), (Hardswish, {}), (Hardswish, {"inplace": True}), (Hardsigmoid, {}),
    (Hardsigmoid, {"inplace": True}), (Sigmoid, {}), (Tanh, {}),
]
IDS = [cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) for cls, kwargs in ACTIVATIONS]
KINKS = np.array([-40.0, -7.0, -6.0, -3.0, -1.5, -0.0, 0.0, 1.5, 3.0, 6.0, 7.0, 40.0, np.nan])


def _torch_pair(cls, kwargs, x):
    """torch's output and input gradient for ``x`` with upstream gradient ``gy`` (a copy: torch
    may run in place)."""
    module = getattr(torch.nn, cls.__name__)(**kwargs)
    tx = torch.from_numpy(np.array(x)).requires_grad_()
    y = module(tx.clone() if kwargs.get("inplace") else tx)
    return module, tx, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,kwargs", ACTIVATIONS, ids=IDS)
def test_activation_matches_torch(cls, kwargs, dtype, rng):
    x = (4 * rng.standard_normal((2, 3, 5, 4))).astype(dtype)
    x[0, 0, 0, :] = [-3.0, 0.0, 3.0, 6.0]  # the kinks, among ordinary values
    theirs, tx, y_t = _torch_pair(cls, kwargs, x)
    gy = rng.standard_normal(x.shape).astype(dtype)
    y_t.backward(torch.from_numpy(gy))
    ours = cls(**kwargs)
    assert repr(ours) == repr(theirs)
    given = x.copy()
    y = ours(given)
    assert (y is given) == bool(kwargs.get("inplace"))
    assert_matches(y, y_t, dtype, "output")
    assert_matches(ours.backward(gy), tx.grad, dtype, "input gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,kwargs", ACTIVATIONS, ids=IDS)
def test_kinks_and_non_finite_match_torch(cls, kwargs, dtype):
    x = KINKS.astype(dtype)
    theirs, tx, y_t = _torch_pair(cls, kwargs, x)
    y_t.backward(torch.ones_like(y_t))
    ours = cls(**kwargs)
    y = ours(x.copy())
    gx = ours.backward(np.ones_like(x))
    for got, want, what in ((y, y_t.detach().numpy(), "output"), (gx, tx.grad.numpy(), "gradient")):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN places")
        finite = ~np.isnan(want)
        assert_matches(got[finite], want[finite], dtype, what)


def test_kink_derivatives_are_torchs():
    """The conventions spelled out (a regression would show here first)."""
    relu6, hswish, hsigmoid = ReLU6(), Hardswish(), Hardsigmoid()
    points = np.array([-3.0, 0.0, 3.0, 6.0, np.nan])
    for module in (relu6, hswish, hsigmoid):
        module(points)
    ones = np.ones(5)
    np.testing.assert_array_equal(relu6.backward(ones), [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(hswish.backward(ones), [0, 0.5, 1, 1, 1])
    np.testing.assert_array_equal(hsigmoid.backward(ones), [0, np.float32(1 / 6), 0, 0, 0])  # torch: 1/6 in float32


@pytest.mark.parametrize("cls,kwargs", ACTIVATIONS, ids=IDS)
def test_channels_last_layout_is_kept(cls, kwargs, rng):
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32).transpose(0, 3, 1, 2)  # NCHW, NHWC strides
    ours = cls(**kwargs)
    y = ours(x)
    gx = ours.backward(np.ones((2, 5, 4, 3), np.float32).transpose(0, 3, 1, 2))
    for array in (y, gx):
        assert array.dtype == np.float32 and array.shape == (2, 3, 5, 4)
        assert array.transpose(0, 2, 3, 1).flags.c_contiguous


def test_inplace_backward_uses_the_input_before_it_was_overwritten():
    x = np.array([-4.0, -1.0, 1.0, 4.0])
    want = Hardswish()
    want(x.copy())
    ours = Hardswish(inplace=True)
    y = ours(x)
    assert y is x
    np.testing.assert_array_equal(ours.backward(np.ones(4)), want.backward(np.ones(4)))


def test_float16_is_kept():
    y = GELU()(np.array([-1.0, 0.5, 2.0], np.float16))
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, torch.nn.GELU()(torch.tensor([-1.0, 0.5, 2.0])).numpy(), rtol=2e-3)


def test_reprs_match_torch():
    pairs = [(GELU(), torch.nn.GELU()), (GELU("tanh"), torch.nn.GELU("tanh")),
             (Identity(3, key="x"), torch.nn.Identity(3, key="x")), (ReLU6(True), torch.nn.ReLU6(True)),
             (SiLU(inplace=True), torch.nn.SiLU(inplace=True)), (Hardswish(True), torch.nn.Hardswish(True)),
             (Hardsigmoid(True), torch.nn.Hardsigmoid(True)), (Sigmoid(), torch.nn.Sigmoid())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == []


def test_identity_passes_through():
    x = np.arange(3.0)
    layer = Identity(1, 2, anything=None)
    assert layer(x) is x
    g = np.ones(3)
    assert layer.backward(g) is g


def test_refusals():
    with pytest.raises(ValueError, match="approximate argument must be either none or tanh"):
        GELU("fast")
    for module in (ReLU6(), GELU(), Sigmoid(), Hardswish()):
        with pytest.raises(TypeError, match="complex"):
            module(np.array([1 + 1j]))
    with pytest.raises(RuntimeError, match="run forward first"):
        Tanh().backward(np.ones(2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["channels-first", "channels-last"])
def test_exact_gelu_on_large_maps_matches_torch_in_any_layout(dtype, layout, rng):
    """Maps of 4,096 elements and more take the compiled kernel (erf per element, split among
    threads): its values and gradients, and the gradient given in another layout."""
    x = (3 * rng.standard_normal((2, 16, 12, 14))).astype(dtype)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    given = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1) if layout == "channels-last" else x
    theirs, tx, y_t = _torch_pair(GELU, {}, x)
    gy = rng.standard_normal(x.shape).astype(dtype)
    y_t.backward(torch.from_numpy(gy))
    ours = GELU()
    y = ours(given)
    assert y.strides == given.strides
    finite = np.isfinite(x)  # torch's float32 GELU gives NaN at +inf; the finite values are the test
    assert_matches(np.where(finite, y, 0), np.where(finite, y_t.detach().numpy(), 0), dtype, "output")
    grad = ours.backward(gy)
    assert_matches(np.where(finite, grad, 0), np.where(finite, tx.grad.numpy(), 0), dtype, "input gradient")
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == np.inf and np.isnan(y[0, 0, 0, 2])  # -inf * 0, as torch
