"""NaN, inf and extreme values: every algorithm, forward and backward, against PyTorch.

PyTorch computes each output from its own window, so a NaN or inf reaches exactly the outputs
whose windows hold it, and finite data whose true outputs are finite never overflows.  npconv
must agree on where each NaN and each +-inf lands and on every finite value, whatever
algorithm is forced: transforms (FFT, Winograd) are planned around when the operands are not
safe for them (npconv.numerics).
"""

import numpy as np
import pytest
import torch

import npconv
from npconv import ConvSpec, select
from npconv.numerics import transform_safe

CASES = {  # name: (input shape, weight shape, conv kwargs)
    "dense3x3": ((1, 32, 26, 26), (32, 32, 3, 3), dict(padding=1)),
    "depthwise9x9": ((1, 4, 20, 20), (4, 1, 9, 9), dict(padding=4, groups=4)),
    "pointwise": ((2, 8, 10, 10), (16, 8, 1, 1), {}),
    "strided5x5": ((1, 6, 17, 17), (8, 6, 5, 5), dict(stride=2, padding=2)),
    "transposed": ((1, 8, 9, 9), (8, 4, 4, 4), dict(stride=2, padding=1, transposed=True)),
    "transposed_s1": ((1, 8, 9, 9), (8, 8, 3, 3), dict(padding=1, transposed=True)),
}
POISONS = ("nan", "inf", "-inf", "nan_and_inf")


def _algorithms(case):
    x_shape, w_shape, kwargs = CASES[case]
    spec = ConvSpec.build(w_shape[2:], **kwargs)
    if spec.transposed:  # stride 1 runs as a forward conv: every forward algorithm may serve
        return [None]
    return select.candidates(spec, x_shape, w_shape)


def _torch_conv(x, w, kwargs):
    fn = torch.nn.functional.conv_transpose2d if kwargs.get("transposed") else torch.nn.functional.conv2d
    return fn(x, w, **{k: v for k, v in kwargs.items() if k != "transposed"})


def _poisoned(shape, poison, rng, dtype=np.float64):
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    spots = rng.choice(flat.size, size=3, replace=False)
    values = {"nan": [np.nan] * 3, "inf": [np.inf] * 3, "-inf": [-np.inf] * 3,
              "nan_and_inf": [np.nan, np.inf, -np.inf]}[poison]
    flat[spots] = values
    return a


def assert_same_placement(got, want):
    """NaN where PyTorch has NaN, the same infinities, and the finite values within 1e-9."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN placement")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg="+inf placement")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg="-inf placement")
    finite = np.isfinite(want)
    scale = max(np.abs(want[finite]).max(initial=0), 1e-300)
    assert np.abs(got[finite] - want[finite]).max(initial=0) <= 1e-9 * scale


@pytest.fixture
def forced():
    def force(name):
        select.set_algorithm(name)
    yield force
    select.set_algorithm(None)


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("case", CASES)
def test_forward_places_nonfinite_as_pytorch(case, poison, forced):
    x_shape, w_shape, kwargs = CASES[case]
    rng = np.random.default_rng(len(case) + len(poison))
    x, w = _poisoned(x_shape, poison, rng), rng.standard_normal(w_shape)
    want = _torch_conv(torch.from_numpy(x), torch.from_numpy(w), kwargs).numpy()
    for name in _algorithms(case):
        forced(name)
        assert_same_placement(npconv.conv(x, w, **kwargs), want)


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("case", CASES)
def test_gradients_place_nonfinite_as_pytorch(case, poison, forced):
    """A poisoned grad_output (input gradient) and a poisoned input (weight gradient)."""
    x_shape, w_shape, kwargs = CASES[case]
    rng = np.random.default_rng(7 * len(case) + len(poison))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = _torch_conv(xt, wt, kwargs)
    gy = _poisoned(tuple(y.shape), poison, rng)
    y.backward(torch.from_numpy(gy))
    x_bad = _poisoned(x_shape, poison, rng)
    xt2, wt2 = torch.tensor(x_bad), torch.tensor(w, requires_grad=True)
    _torch_conv(xt2, wt2, kwargs).backward(torch.from_numpy(np.ones(tuple(y.shape))))
    for name in _algorithms(case):
        forced(name)
        assert_same_placement(npconv.grad.conv_input(x_shape, w, gy, **kwargs), xt.grad.numpy())
        assert_same_placement(npconv.grad.conv_weight(x_bad, w_shape, np.ones(tuple(y.shape)), **kwargs),
                              wt2.grad.numpy())


EXTREMES = {  # name: (dtype, input scale, weight scale)
    "float32_near_max": (np.float32, 1e36, 1e-3),
    "float32_3e37": (np.float32, 3e37, 1e-4),
    "float64_near_max": (np.float64, 1e305, 1e-3),
}


@pytest.mark.parametrize("extreme", EXTREMES)
@pytest.mark.parametrize("case", ["dense3x3", "depthwise9x9", "strided5x5"])
def test_extreme_finite_values_do_not_overflow(case, extreme, forced):
    dtype, x_scale, w_scale = EXTREMES[extreme]
    x_shape, w_shape, kwargs = CASES[case]
    rng = np.random.default_rng(3)
    x = (rng.uniform(0.5, 1, x_shape) * x_scale).astype(dtype)
    w = (rng.uniform(0.5, 1, w_shape) * w_scale).astype(dtype)
    want = _torch_conv(torch.from_numpy(x), torch.from_numpy(w), kwargs).numpy()
    assert np.isfinite(want).all()
    for name in _algorithms(case):
        forced(name)
        got = npconv.conv(x, w, **kwargs)
        assert np.isfinite(got).all(), name
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), name


@pytest.mark.parametrize("case", ["dense3x3", "depthwise9x9"])
def test_subnormal_inputs_keep_the_float32_promise(case, forced):
    """F(4, 3) on inputs of 1e-40 erred 7.3e-5 of the largest output; the promise is 1e-5."""
    x_shape, w_shape, kwargs = CASES[case]
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(x_shape) * 1e-40).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    want = _torch_conv(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), kwargs)
    want = want.numpy()
    for name in _algorithms(case):
        forced(name)
        got = npconv.conv(x, w, **kwargs)
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), name


def test_transform_safety_rule():
    ones = np.ones(10, np.float32)
    assert transform_safe(ones, ones, 100)
    assert not transform_safe(np.zeros(10, np.float32), np.full(10, np.inf, np.float32), 100)
    assert not transform_safe(np.array([1, np.inf], np.float32), ones, 100)
    assert not transform_safe(ones, np.array([np.nan], np.float32), 100)
    assert not transform_safe(np.full(10, 1e-40, np.float32), ones, 100)
    assert not transform_safe(np.full(10, 1e36, np.float32), np.full(10, 1e-3, np.float32), 400 * 81)
    assert transform_safe(np.full(10, 1e300), np.full(10, 1e-300), 100)
    assert transform_safe(np.zeros(10), np.ones(3), 100)
