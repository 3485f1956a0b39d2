"""BatchNorm1d/2d/3d, LayerNorm and GroupNorm against torch.nn: forward, backward, running
statistics, state dicts, reprs, channels-last inputs and the refusals (in torch's words)."""

import re

import numpy as np
import pytest
import torch
from conftest import assert_matches

from npconv.nn.norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
BN_CASES = [(BatchNorm1d, (5, 3)), (BatchNorm1d, (4, 3, 6)), (BatchNorm2d, (3, 4, 5, 6)),
            (BatchNorm3d, (2, 3, 4, 3, 5))]


def torch_twin(ours, *args, dtype=np.float64, **kwargs):
    """The torch module of ours's class name, with random parameters copied into ours."""
    theirs = getattr(torch.nn, type(ours).__name__)(*args, dtype=TORCH_DTYPE[dtype], **kwargs)
    with torch.no_grad():
        for param in theirs.parameters():
            param.uniform_(0.5, 1.5)
    ours.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()})
    return theirs


def run_both(ours, theirs, x, gy, dtype, what):
    """Forward and backward on both; outputs, input gradients and parameter gradients agree."""
    ours.zero_grad()
    theirs.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(gy))
    assert_matches(ours(x), yt, dtype, f"{what} output")
    assert_matches(ours.backward(gy), xt.grad, dtype, f"{what} input grad")
    for name, param in theirs.named_parameters():
        assert_matches(getattr(ours, name).grad, param.grad, dtype, f"{what} {name}.grad")
    assert repr(ours) == repr(theirs)


def assert_same_state(ours, theirs, dtype):
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        if key == "num_batches_tracked":
            assert ours_state[key].dtype == np.int64 and ours_state[key].shape == ()
            assert int(ours_state[key]) == int(value)
        else:
            assert_matches(ours_state[key], value, dtype, key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, shape", BN_CASES)
def test_batchnorm_train_then_eval(cls, shape, dtype, rng):
    ours = cls(shape[1], dtype=dtype)
    theirs = torch_twin(ours, shape[1], dtype=dtype)
    for step in range(2):  # running stats after two training steps
        x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
        run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype, f"train step {step}")
        assert_same_state(ours, theirs, dtype)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype, "eval")
    assert_same_state(ours, theirs, dtype)


@pytest.mark.parametrize("kwargs", [dict(momentum=None), dict(affine=False), dict(bias=False),
                                    dict(track_running_stats=False), dict(eps=1e-3, momentum=0.3)])
def test_batchnorm_options(kwargs, rng):
    ours = BatchNorm2d(3, **kwargs, dtype=np.float64)
    theirs = torch_twin(ours, 3, **kwargs)
    shape = (4, 3, 2, 5)
    for _ in range(3):
        run_both(ours, theirs, rng.standard_normal(shape) + 1, rng.standard_normal(shape), np.float64, "train")
    assert_same_state(ours, theirs, np.float64)
    if not ours.track_running_stats:
        assert ours.running_mean is None and ours.num_batches_tracked is None
    ours.eval()
    theirs.eval()
    run_both(ours, theirs, rng.standard_normal(shape), rng.standard_normal(shape), np.float64, "eval")


def test_batchnorm_loads_a_trained_torch_state(rng):
    theirs = torch.nn.BatchNorm3d(2)
    for _ in range(3):
        theirs(torch.tensor(rng.standard_normal((2, 2, 3, 2, 2)) * 2 + 1, dtype=torch.float32))
    ours = BatchNorm3d(2)
    ours.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()})
    assert_same_state(ours, theirs, np.float32)
    assert int(ours.num_batches_tracked) == 3
    theirs.eval()
    ours.eval()
    x = rng.standard_normal((2, 2, 3, 2, 2)).astype(np.float32)
    assert_matches(ours(x), theirs(torch.tensor(x)), np.float32, "eval output")


def channels_last(array):
    """The same values with channels-last strides (``(N, C, *)`` logical shape)."""
    order = (0,) + tuple(range(2, array.ndim)) + (1,)
    back = (0, array.ndim - 1) + tuple(range(1, array.ndim - 1))
    return np.ascontiguousarray(array.transpose(order)).transpose(back)


def is_channels_last(array):
    return array.transpose((0,) + tuple(range(2, array.ndim)) + (1,)).flags.c_contiguous


@pytest.mark.parametrize("make, shape", [(lambda: BatchNorm2d(4), (2, 4, 3, 5)),
                                         (lambda: BatchNorm3d(4), (2, 4, 2, 3, 2)),
                                         (lambda: GroupNorm(2, 4), (2, 4, 3, 5))])
@pytest.mark.parametrize("training", [True, False])
def test_channels_last_input_keeps_values_and_layout(make, shape, training, rng):
    x, gy = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    results = []
    for layout in (np.ascontiguousarray, channels_last):
        layer = make().train(training)
        layer.weight[...] = np.arange(4) + 0.5
        if training is False and hasattr(layer, "running_mean"):
            layer.running_mean[...], layer.running_var[...] = [0.5, -1, 0, 2], [0.5, 2, 1, 3]
        y, dx = layer(layout(x)), layer.backward(layout(gy))
        results.append((y, dx, layer.weight.grad))
    (want_y, want_dx, want_dw), (got_y, got_dx, got_dw) = results
    assert_matches(got_y, want_y, np.float32, "output")
    assert_matches(got_dx, want_dx, np.float32, "input grad")
    assert_matches(got_dw, want_dw, np.float32, "weight grad")
    assert is_channels_last(got_y) and is_channels_last(got_dx)
    assert not is_channels_last(want_y) and not is_channels_last(want_dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalized_shape, kwargs", [(6, {}), ((5, 6), {}), ((5, 6), dict(bias=False)),
                                                      (6, dict(elementwise_affine=False, eps=1e-3))])
def test_layernorm_matches_torch(normalized_shape, kwargs, dtype, rng):
    ours = LayerNorm(normalized_shape, dtype=dtype, **kwargs)
    theirs = torch_twin(ours, normalized_shape, dtype=dtype, **kwargs)
    shape = (2, 3, 5, 6)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype, "LayerNorm")
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, shape, kwargs", [(1, (2, 6, 4, 3), {}), (2, (3, 6, 5), {}), (6, (2, 6, 4, 3), {}),
                                                   (3, (2, 6, 4), {}), (1, (3, 6), dict(affine=False)),
                                                   (2, (2, 6, 3), dict(bias=False))])
def test_groupnorm_matches_torch(groups, shape, kwargs, dtype, rng):
    ours = GroupNorm(groups, shape[1], dtype=dtype, **kwargs)
    theirs = torch_twin(ours, groups, shape[1], dtype=dtype, **kwargs)
    x = (rng.standard_normal(shape) * 2 - 1).astype(dtype)
    run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype, "GroupNorm")
    assert list(ours.state_dict()) == list(theirs.state_dict())


def torch_message(make, shape):
    """The message torch raises for this module and input shape."""
    with pytest.raises(Exception) as info:
        make(torch.nn)(torch.zeros(shape))
    return str(info.value)


@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.BatchNorm2d(3), (2, 3, 4)),                  # rank
    (lambda nn: nn.BatchNorm1d(3), (2, 3, 4, 5)),
    (lambda nn: nn.BatchNorm3d(3), (2, 3, 4, 5)),
    (lambda nn: nn.BatchNorm2d(3), (2, 4, 3, 3)),               # channels vs running_mean
    (lambda nn: nn.BatchNorm2d(3, track_running_stats=False), (2, 4, 3, 3)),  # channels vs weight
    (lambda nn: nn.BatchNorm1d(3), (1, 3)),                     # one value per channel
    (lambda nn: nn.BatchNorm2d(3), (1, 3, 1, 1)),
    (lambda nn: nn.LayerNorm((3, 4)), (2, 4, 3)),
    (lambda nn: nn.LayerNorm(4), (3,)),
    (lambda nn: nn.GroupNorm(2, 4), (4,)),
    (lambda nn: nn.GroupNorm(2, 4), (2, 5, 3)),
    (lambda nn: nn.GroupNorm(2, 4), (2, 6, 3)),
    (lambda nn: nn.GroupNorm(1, 1), (1, 1)),
])
def test_refusals_in_torch_words(make, shape):
    from npconv.nn import norm
    message = torch_message(make, shape)
    with pytest.raises(ValueError, match=re.escape(message)):
        make(norm)(np.zeros(shape, np.float32))


def test_batchnorm_eval_takes_one_sample_and_groupnorm_refuses_bad_groups():
    layer = BatchNorm1d(3).eval()
    assert layer(np.ones((1, 3), np.float32)).shape == (1, 3)
    with pytest.raises(ValueError, match=re.escape("num_channels (4) must be divisible by num_groups (3)")):
        GroupNorm(3, 4)
    with pytest.raises(ValueError, match="num_features must be a non-negative integer, got -1"):
        BatchNorm2d(-1)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["rows", "permuted-nchw"])
def test_layer_norm_over_channels_of_large_maps_matches_torch(layout, dtype, training, rng):
    """4,096 elements and more run the compiled kernel, on C-contiguous rows and on an NCHW map
    permuted to (N, H, W, C) as ConvNeXt does; an evaluation-mode backward makes x-hat when asked."""
    nchw = rng.standard_normal((2, 24, 9, 10)).astype(dtype) * 3 + 1
    x = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)) if layout == "rows" else nchw.transpose(0, 2, 3, 1)
    ours = LayerNorm(24, eps=1e-6, dtype=dtype)
    theirs = torch_twin(ours, 24, eps=1e-6, dtype=dtype)
    ours.train(training)
    gy = rng.standard_normal(x.shape).astype(dtype)
    run_both(ours, theirs, x, gy, dtype, f"LayerNorm {layout}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,shape", [(BatchNorm2d, (4, 6, 20, 18)), (BatchNorm1d, (8, 5, 600)),
                                       (BatchNorm3d, (2, 3, 8, 9, 10))], ids=["2d", "1d", "3d"])
def test_batch_statistics_of_large_maps_match_torch(cls, shape, dtype, rng):
    """Maps of 4,096 elements and more take the compiled kernels (statistics, x-hat and output
    in one; the gradient in one): outputs, gradients and running statistics after two steps."""
    ours = cls(shape[1], momentum=None, dtype=dtype)
    theirs = torch_twin(ours, shape[1], momentum=None, dtype=dtype)
    for step in range(2):
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        run_both(ours, theirs, x, gy, dtype, f"{cls.__name__} step {step}")
    assert_same_state(ours, theirs, dtype)
