"""npconv.nn's convolution modules on Dask arrays: ``module(dask_array)`` is a lazy Dask array
whose ``.compute()`` is the module's NumPy forward; it is inference only (a backward after it
says so) and leaves the NumPy path's backward untouched."""

import subprocess
import sys

import numpy as np
import pytest

import npconv
import npconv.nn as nn
from conftest import assert_matches
from helpers import require

da = require("dask.array", "the convolution modules' Dask face")
dask = require("dask", "the convolution modules' Dask face")

CASES = [
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 23), (1, 3, 8)),
    ("Conv2d", (4, 6, 3), dict(stride=2, padding="same", dilation=(1, 2)), (3, 4, 17, 14), (2, 2, 6, 5)),
    ("Conv2d", (4, 8, 3), dict(padding=1, groups=2, padding_mode="reflect"), (2, 4, 12, 11), (1, 4, 5, 4)),
    ("Conv2d", (2, 3, (3, 2)), dict(padding=((2, 0), (1, 1)), padding_mode="circular", bias=False),
     (2, 9, 10), (2, 4, 4)),  # unbatched
    ("Conv3d", (2, 4, 3), dict(padding=1, stride=(1, 2, 1), padding_mode="replicate"), (2, 2, 7, 8, 6),
     (1, 2, 3, 4, 3)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 9), (1, 4, 4)),
    ("ConvTranspose2d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 7, 6), (1, 3, 3, 4)),
]


def _forbidden_scheduler(*args, **kwargs):
    raise AssertionError("the forward computed the Dask graph: it must stay lazy")


def _lazy_forward(module, x, *args, **kwargs):
    """module(x) with every compute refused: the result must be built without running the graph."""
    with dask.config.set(scheduler=_forbidden_scheduler):
        y = module(x, *args, **kwargs)
    assert isinstance(y, da.Array), type(y)
    return y


def _computed(y):
    with dask.config.set(scheduler="synchronous"):
        return y.compute()


def _module(name, args, kwargs, dtype):
    return getattr(nn, name)(*args, **kwargs, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,args,kwargs,shape,chunks", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_module_on_dask_array_matches_numpy(name, args, kwargs, shape, chunks, dtype, rng):
    module = _module(name, args, kwargs, dtype)
    x = rng.standard_normal(shape).astype(dtype)
    want = module(x)
    y = _lazy_forward(module, da.from_array(x, chunks=chunks))
    assert y.shape == want.shape and y.dtype == want.dtype
    assert_matches(_computed(y), want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_output_size(dtype, rng):
    module = nn.ConvTranspose2d(4, 2, 3, stride=(2, 3), padding=1, dtype=dtype)
    x = rng.standard_normal((2, 4, 6, 5)).astype(dtype)
    for size in [(11, 13), (12, 15), (2, 2, 12, 14)]:  # each dim's min and max, and a full shape
        want = module(x, output_size=size)
        y = _lazy_forward(module, da.from_array(x, chunks=(1, 2, 3, 2)), output_size=size)
        assert y.shape == want.shape and y.dtype == want.dtype
        assert_matches(_computed(y), want, dtype)
    with pytest.raises(ValueError, match="valid sizes range"):
        module(da.from_array(x), output_size=(14, 13))


@pytest.mark.parametrize("name,dims", [("LazyConv2d", 2), ("LazyConvTranspose1d", 1)])
def test_lazy_module_initialises_from_dask_input(name, dims, rng):
    module = getattr(nn, name)(6, 3, stride=2, groups=3)
    x = rng.standard_normal((2, 3) + (9,) * dims).astype(np.float32)
    y = _lazy_forward(module, da.from_array(x, chunks=(1, 3) + (4,) * dims))
    assert module.in_channels == 3 and type(module).__name__ == name.removeprefix("Lazy")
    want = module(x)
    assert y.shape == want.shape and y.dtype == want.dtype == np.float32
    assert_matches(_computed(y), want, np.float32)


def test_lazy_transposed_with_output_size(rng):
    module = nn.LazyConvTranspose2d(4, 3, stride=2, dtype=np.float64)
    x = rng.standard_normal((1, 2, 5, 4))
    y = _lazy_forward(module, da.from_array(x, chunks=(1, 1, 2, 2)), output_size=(12, 10))
    assert y.shape == (1, 4, 12, 10)
    assert_matches(_computed(y), module(x, output_size=(12, 10)), np.float64)


def test_backward_after_dask_forward_is_refused(rng):
    module = nn.Conv2d(2, 3, 3, padding=1)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    module(x)  # a NumPy forward first: the Dask one must still forget it
    y = _lazy_forward(module, da.from_array(x, chunks=(1, 2, 3, 3)))
    with pytest.raises(RuntimeError, match="Dask array.*inference only"):
        module.backward(np.ones(y.shape, np.float32))
    fresh = nn.Conv2d(2, 3, 3)
    with pytest.raises(RuntimeError, match="before forward"):
        fresh.backward(np.ones((2, 3, 4, 4), np.float32))


def test_numpy_path_still_trains_after_dask_forward(rng):
    module = nn.ConvTranspose2d(3, 2, 3, stride=2, dtype=np.float64)
    twin = nn.ConvTranspose2d(3, 2, 3, stride=2, dtype=np.float64)
    twin.load_state_dict(module.state_dict())
    x = rng.standard_normal((2, 3, 4, 5))
    _lazy_forward(module, da.from_array(x, chunks=(1, 3, 2, 5)))
    y = module(x)
    grad_output = rng.standard_normal(y.shape)
    gx = module.backward(grad_output)
    twin(x)
    assert_matches(gx, twin.backward(grad_output), np.float64)
    assert_matches(module.weight.grad, twin.weight.grad, np.float64)
    assert_matches(module.bias.grad, twin.bias.grad, np.float64)


def test_graph_keeps_the_weights_of_its_forward(rng):
    """A later training step (an in-place update) does not change an already built graph."""
    module = nn.Conv1d(2, 2, 3, dtype=np.float64)
    x = rng.standard_normal((1, 2, 10))
    want = module(x)
    y = _lazy_forward(module, da.from_array(x, chunks=(1, 2, 5)))
    module.weight[...] += 1.0
    assert_matches(_computed(y), want, np.float64)


@pytest.mark.parametrize("shape,dtype", [((2, 5, 8, 8), np.float64), ((3, 2, 2), np.float32),
                                         ((1, 3, 2), np.float32), ((1, 3, 8, 8), np.clongdouble)],
                         ids=["channels", "too-small", "rank", "complex256"])
def test_refusals_at_call_time_in_the_numpy_words(shape, dtype):
    module = nn.Conv2d(3, 4, 3)
    x = np.ones(shape, dtype)
    with pytest.raises((ValueError, TypeError)) as numpy_refusal:
        module(x)
    with dask.config.set(scheduler=_forbidden_scheduler), pytest.raises(type(numpy_refusal.value)) as refusal:
        module(da.from_array(x, chunks=1))
    assert str(refusal.value) == str(numpy_refusal.value)


def test_numpy_forward_does_not_import_dask():
    code = ("import sys, numpy as np, npconv.nn as nn; m = nn.Conv2d(1, 2, 3); "
            "m.backward(np.ones_like(m(np.ones((1, 1, 5, 5), np.float32)))); "
            "assert not any(k == 'dask' or k.startswith('dask.') for k in sys.modules), 'dask imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sequential_of_convs_stays_lazy():
    """A Sequential of conv layers passes a Dask array through lazily (no channels-last conversion,
    which would load it); the result equals the NumPy network's.  (Other layers, ReLU included,
    take NumPy arrays: only the conv modules have a Dask face.)"""
    npconv.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 3, 3, stride=2, padding=1))
    x = np.random.default_rng(3).standard_normal((2, 2, 17, 13))
    y = net(da.from_array(x, chunks=(1, 1, 6, 5)))
    assert isinstance(y, da.Array) and y.shape == (2, 3, 9, 7)
    with dask.config.set(scheduler="synchronous"):
        got = y.compute()
    want = net(x)
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_relu_between_convs_stays_lazy():
    """ReLU takes a Dask array lazily (np.maximum), so a conv-ReLU-conv network never loads the
    input; its backward after such a forward is refused."""
    npconv.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 1, 2))
    x = np.random.default_rng(4).standard_normal((2, 2, 12, 11))
    y = net(da.from_array(x, chunks=(1, 2, 5, 5)))
    assert isinstance(y, da.Array)
    with dask.config.set(scheduler="synchronous"):
        got = y.compute()
    want = net(x)
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
    relu = nn.ReLU()
    relu(da.from_array(x))
    with pytest.raises(RuntimeError, match="inference only"):
        relu.backward(x)
