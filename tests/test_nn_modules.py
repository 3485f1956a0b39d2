"""Conv modules against torch.nn modules loaded with the same weights: outputs, gradients,
repr, state_dict, init, Lazy modules, output_size, refusals."""

import numpy as np
import pytest
import torch

import npconv
import npconv.nn as nn
from conftest import assert_matches

CONFIGS = [
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1)),
    ("Conv1d", (4, 6, 5), dict(padding="same", dilation=2, groups=2, padding_mode="circular")),
    ("Conv2d", (4, 8, 3), dict(padding=1, dilation=2, groups=2, bias=False, padding_mode="circular")),
    ("Conv2d", (3, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), padding_mode="reflect")),
    ("Conv2d", (4, 4, 3), dict(groups=4, padding="same", padding_mode="replicate")),
    ("Conv2d", (2, 5, 4), dict(padding="valid", stride=3)),
    ("Conv3d", (2, 4, 3), dict(padding=1, stride=(1, 2, 1))),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    ("ConvTranspose2d", (4, 8, 3), dict(stride=2, output_padding=1)),
    ("ConvTranspose2d", (6, 4, (3, 4)), dict(stride=(1, 2), dilation=(2, 1), output_padding=(1, 0), groups=2,
                                             bias=False)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=2, padding=(0, 1, 0))),
]
SPATIAL = {"1d": (9,), "2d": (8, 7), "3d": (5, 6, 4)}


def _pair(name, args, kwargs, dtype=np.float32):
    torch_module = getattr(torch.nn, name)(*args, **kwargs, dtype=torch.float64 if dtype == np.float64 else None)
    ours = getattr(nn, name)(*args, **kwargs, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return torch_module, ours


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("name,args,kwargs", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_module_matches_torch(name, args, kwargs, batched, dtype):
    torch_module, ours = _pair(name, args, kwargs, dtype)
    assert repr(ours) == repr(torch_module)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in torch_module.state_dict().items()]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(((2,) if batched else ()) + (args[0],) + SPATIAL[name[-2:]]).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    y_t = torch_module(tx)
    y = ours(x)
    assert_matches(y, y_t, dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, dtype)
    assert_matches(ours.weight.grad, torch_module.weight.grad, dtype)
    if ours.bias is not None:
        assert_matches(ours.bias.grad, torch_module.bias.grad, dtype)


def test_gradients_accumulate_until_zero_grad(rng):
    module = nn.Conv2d(2, 3, 3)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    gy = np.ones((1, 3, 3, 3), np.float32)
    module(x), module.backward(gy)
    first = module.weight.grad.copy()
    module(x), module.backward(gy)
    np.testing.assert_allclose(module.weight.grad, 2 * first, rtol=1e-6)
    module.zero_grad()
    assert module.weight.grad is None and module.bias.grad is None
    assert [name for name, _ in module.named_parameters()] == ["weight", "bias"]


@pytest.mark.parametrize("name,args,fan_in", [("Conv2d", (4, 8, 3), 4 * 9), ("Conv2d", (4, 8, 3, 1, 0, 1, 2), 2 * 9),
                                              ("ConvTranspose2d", (4, 8, 3), 8 * 9), ("Conv1d", (16, 2, 5), 80)])
def test_reset_parameters_uses_torch_bounds(name, args, fan_in):
    npconv.manual_seed(0)
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    bound = 1 / np.sqrt(fan_in)
    for mine, torchs in ((ours.weight, theirs.weight), (ours.bias, theirs.bias)):
        torchs = torchs.detach().numpy()
        assert np.abs(mine).max() <= bound and np.abs(torchs).max() <= bound
    assert np.abs(ours.weight).max() > 0.9 * bound  # the whole range is used, as torch uses it
    assert ours.weight.dtype == np.float32


def test_seeded_init_is_reproducible():
    npconv.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.copy()
    npconv.manual_seed(7)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight, a)


@pytest.mark.parametrize("name,kwargs,shape", [("LazyConv2d", dict(out_channels=8, kernel_size=3, padding=1), (2, 5, 6, 6)),
                                               ("LazyConv1d", dict(out_channels=4, kernel_size=3, bias=False), (5, 9)),
                                               ("LazyConvTranspose1d", dict(out_channels=8, kernel_size=3), (5, 6)),
                                               ("LazyConvTranspose3d", dict(out_channels=2, kernel_size=2, stride=2),
                                                (1, 3, 2, 3, 2)),
                                               ("LazyConv3d", dict(out_channels=4, kernel_size=2, groups=2), (1, 6, 3, 3, 3))])
def test_lazy_modules_infer_in_channels_and_become_plain(name, kwargs, shape):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    theirs(torch.from_numpy(x))
    ours(x)
    assert type(ours).__name__ == type(theirs).__name__ and repr(ours) == repr(theirs)
    assert ours.in_channels == theirs.in_channels and ours.weight.shape == tuple(theirs.weight.shape)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert_matches(ours(x), theirs(torch.from_numpy(x)), np.float32)


@pytest.mark.parametrize("output_size", [(11, 11), (12, 12), (1, 8, 12, 11), (11, 12)])
def test_conv_transpose_output_size(output_size):
    torch_module, ours = _pair("ConvTranspose2d", (4, 8, 3), dict(stride=2, padding=1))
    x = np.random.default_rng(1).standard_normal((1, 4, 6, 6)).astype(np.float32)
    want = torch_module(torch.from_numpy(x), output_size=list(output_size))
    got = ours(x, output_size=output_size)
    assert_matches(got, want, np.float32)
    gy = np.ones(got.shape, np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    torch_module(tx, output_size=list(output_size)).backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, np.float32)


def test_conv_transpose_output_size_out_of_range():
    module, x = nn.ConvTranspose2d(4, 8, 3), np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"requested an output size of \(20, 20\), but valid sizes range from "
                                         r"\[7, 7\] to \[7, 7\] \(for an input of \(5, 5\)\)"):
        module(x, output_size=(20, 20))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        module(x, output_size=(7, 7, 7))


@pytest.mark.parametrize("call,fragment", [
    (lambda: nn.Conv2d(5, 6, 3, groups=2), "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 8, 3, groups=0), "groups must be a positive integer"),
    (lambda: nn.Conv2d(4, 8, 3, padding_mode="foo"), "padding_mode must be one of"),
    (lambda: nn.ConvTranspose2d(4, 8, 3, padding_mode="reflect"),
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
    (lambda: nn.Conv2d(4, 8, 3, padding="SAME"), "Invalid padding string 'SAME', should be one of {'same', 'valid'}"),
    (lambda: nn.Conv2d(4, 8, 3, dtype=np.int32), "dtype must be float32 or float64"),
    (lambda: nn.Conv2d(4, 8, 3, device="cuda"), "npconv runs on the CPU only"),
])
def test_constructor_refusals(call, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment.replace("(", r"\(").replace("{", r"\{")):
        call()


def test_load_state_dict_refusals():
    module = nn.Conv2d(4, 8, 3)
    with pytest.raises(ValueError, match=r"missing keys \['bias'\]"):
        module.load_state_dict({"weight": np.zeros((8, 4, 3, 3))})
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        module.load_state_dict({"weight": np.zeros((8, 4, 3, 3)), "bias": np.zeros(8), "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"size mismatch for weight: copying a param with shape \[8, 4, 3, 2\]"):
        module.load_state_dict({"weight": np.zeros((8, 4, 3, 2)), "bias": np.zeros(8)})
    result = module.load_state_dict({"weight": np.ones((8, 4, 3, 3))}, strict=False)
    assert result.missing_keys == ["bias"] and np.all(module.weight == 1)


def test_backward_before_forward_is_refused():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_unfold_and_fold_modules(n, rng):
    kernel, spatial = (2,) * n, (5, 4, 6)[:n]
    unfold, fold = nn.Unfold(kernel, padding=(1,) * n), nn.Fold(spatial, kernel, padding=(1,) * n)
    x = rng.standard_normal((2, 3) + spatial)
    cols = unfold(x)
    assert np.allclose(fold(cols), x * fold(unfold(np.ones_like(x))))  # fold(unfold(x)) = x * overlap count
    g = rng.standard_normal(cols.shape)
    assert np.isclose(np.vdot(cols, g), np.vdot(x, unfold.backward(g)))
    assert np.isclose(np.vdot(fold(g), x), np.vdot(g, fold.backward(x)))
    if n == 2:
        assert repr(unfold) == repr(torch.nn.Unfold(kernel, padding=(1,) * n))
        assert repr(fold) == repr(torch.nn.Fold(spatial, kernel, padding=(1,) * n))


def test_parameter_is_an_array_with_grad():
    p = nn.Parameter([1.0, 2.0])
    p.grad = np.ones(2)
    assert type(p * 2) is np.ndarray and isinstance(p, np.ndarray)
    p -= 0.5 * p.grad
    assert isinstance(p, nn.Parameter) and p.grad is not None and np.allclose(p, [0.5, 1.5])
    with pytest.raises(TypeError, match="not pickled"):
        import pickle
        pickle.dumps(p)
