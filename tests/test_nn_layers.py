"""The CNN companions, the loss and the optimisers against PyTorch."""

import numpy as np
import pytest
import torch

import npconv
import npconv.nn as nn
from conftest import assert_matches

POOLS = [
    ("MaxPool2d", dict(kernel_size=2), (2, 3, 8, 7)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 9, 8)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (1, 2, 8, 9)),
    ("MaxPool2d", dict(kernel_size=2, dilation=2, stride=1), (1, 2, 6, 6)),
    ("MaxPool1d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 11)),
    ("MaxPool3d", dict(kernel_size=2, stride=(1, 2, 2), ceil_mode=True), (1, 2, 4, 5, 5)),
    ("AvgPool2d", dict(kernel_size=2), (2, 3, 8, 7)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 9, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (1, 2, 8, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (1, 2, 8, 8)),
    ("AvgPool2d", dict(kernel_size=2, divisor_override=3), (1, 2, 6, 6)),
    ("AvgPool1d", dict(kernel_size=4, stride=3, padding=2), (2, 3, 13)),
    ("AvgPool3d", dict(kernel_size=2, padding=1), (1, 2, 4, 5, 3)),
]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("name,kwargs,shape", POOLS, ids=[f"{p[0]}-{i}" for i, p in enumerate(POOLS)])
def test_pooling_matches_torch(name, kwargs, shape, batched, rng):
    x = rng.standard_normal(shape)
    x = x if batched else x[0]
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    tx = torch.from_numpy(x).requires_grad_()
    y_t = theirs(tx)
    y = ours(x)
    assert_matches(y, y_t, np.float64)
    gy = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, np.float64)


def test_pool_padding_limit_is_refused():
    with pytest.raises(ValueError, match="pad should be at most half of effective kernel size"):
        nn.MaxPool2d(2, padding=2)(np.zeros((1, 1, 5, 5)))


def _torch_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(6 * 2 * 2, 10)).double()


def _npconv_cnn():
    f64 = dict(dtype=np.float64)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, **f64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect", **f64), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 2 * 2, 10, **f64))


def test_a_whole_cnn_matches_torch_forward_and_backward(rng):
    theirs, ours = _torch_cnn().eval(), _npconv_cnn().eval()
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 1, 8, 8))
    target = rng.integers(0, 10, 5)
    tx = torch.from_numpy(x).requires_grad_()
    loss_t = torch.nn.CrossEntropyLoss()(theirs(tx), torch.from_numpy(target))
    loss_t.backward()
    criterion = nn.CrossEntropyLoss()
    loss = criterion(ours(x), target)
    assert np.isclose(loss, loss_t.item(), rtol=1e-12)
    assert_matches(ours.backward(criterion.backward()), tx.grad, np.float64)
    grads = {name: p.grad for name, p in ours.named_parameters()}
    for name, p in theirs.named_parameters():
        assert_matches(grads[name], p.grad, np.float64)


def test_dropout_in_training(rng):
    npconv.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = np.ones((200, 100))
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01 and np.allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)  # same mask, same scale
    assert np.array_equal(layer.eval()(x), x)


@pytest.mark.parametrize("kwargs", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=2),
                                    dict(weight=[0.5, 1.0, 2.0, 1.5]), dict(label_smoothing=0.2),
                                    dict(weight=[0.5, 1.0, 2.0, 1.5], label_smoothing=0.1, ignore_index=0)])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_cross_entropy_matches_torch(kwargs, shape, rng):
    logits = rng.standard_normal(shape)
    target = rng.integers(0, 4, (shape[0],) + shape[2:])
    torch_kwargs = {k: torch.tensor(v, dtype=torch.float64) if k == "weight" else v for k, v in kwargs.items()}
    tx = torch.from_numpy(logits).requires_grad_()
    loss_t = torch.nn.CrossEntropyLoss(**torch_kwargs)(tx, torch.from_numpy(target))
    g = rng.standard_normal(loss_t.shape) if kwargs.get("reduction") == "none" else 1.0
    loss_t.backward(torch.tensor(g))
    criterion = nn.CrossEntropyLoss(**kwargs)
    assert_matches(np.asarray(criterion(logits, target)), loss_t, np.float64)
    assert_matches(criterion.backward(g), tx.grad, np.float64)


def test_linear_and_flatten_match_torch(rng):
    torch.manual_seed(1)
    theirs = torch.nn.Linear(6, 3).double()
    ours = nn.Linear(6, 3, dtype=np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs) and repr(nn.Flatten()) == repr(torch.nn.Flatten())
    x = rng.standard_normal((2, 5, 6))
    tx = torch.from_numpy(x).requires_grad_()
    theirs(tx).sum().backward()
    assert_matches(ours.backward(np.ones(ours(x).shape)), tx.grad, np.float64)
    assert_matches(ours.weight.grad, theirs.weight.grad, np.float64)


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)), ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)), ("SGD", dict(lr=0.1, maximize=True)), ("Adam", dict(lr=0.1, maximize=True)),
])
def test_optimisers_follow_torch(name, kwargs, rng):
    start = rng.standard_normal((3, 4))
    ours = nn.Parameter(start)
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt = getattr(npconv.optim, name)([ours], **kwargs)
    opt_t = getattr(torch.optim, name)([theirs], **kwargs)
    for step in range(6):
        g = rng.standard_normal((3, 4)) + np.asarray(ours)
        ours.grad, theirs.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step(), opt_t.step()
    assert_matches(np.asarray(ours), theirs.detach(), np.float64)
    opt.zero_grad()
    assert ours.grad is None


@pytest.mark.parametrize("layout", ["channels-first", "channels-last"])
@pytest.mark.parametrize("training", [True, False])
def test_max_pool_ties_nan_and_layouts_match_torch(training, layout, rng):
    """Ties and NaN pick torch's gradient route in both layouts (channels-first maps run the
    compiled plane loop, channels-last ones strided views and stay channels-last); an
    evaluation-mode forward still has a backward (its winners found when asked)."""
    x = rng.integers(0, 3, (2, 3, 9, 8)).astype(np.float64)  # many equal maxima
    x[0, 1, 4, 4] = x[1, 2, 0, 0] = np.nan
    given = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1) if layout == "channels-last" else x
    ours, theirs = nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)
    ours.train(training)
    tx = torch.from_numpy(x).requires_grad_()
    y_t = theirs(tx)
    y = ours(given)
    assert (np.moveaxis(y, 1, -1).flags.c_contiguous if layout == "channels-last" else y.flags.c_contiguous)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    gy = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, np.float64)


def test_max_pool_window_of_minus_infinity_sends_its_gradient_where_torch_does():
    x = np.full((1, 1, 4, 4), -np.inf)
    x[0, 0, 3, 3] = 1.0
    ours, theirs = nn.MaxPool2d(2, stride=2, padding=1), torch.nn.MaxPool2d(2, stride=2, padding=1)
    tx = torch.from_numpy(x).requires_grad_()
    y_t = theirs(tx)
    y = ours(x)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    gy = np.arange(1.0, 1.0 + y.size).reshape(y.shape)
    y_t.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(ours.backward(gy), tx.grad.numpy())


@pytest.mark.parametrize("name", ["ReLU", "ReLU6"])
def test_relu_backward_blocks_non_finite_gradients_where_torch_does(name):
    x = np.array([-1.0, 2.0, -3.0, 4.0, 7.0])
    gy = np.array([np.nan, np.inf, -np.inf, 1.0, np.nan])
    tx = torch.from_numpy(x).requires_grad_()
    getattr(torch.nn, name)()(tx).backward(torch.from_numpy(gy))
    ours = getattr(nn, name)()
    ours(x)
    np.testing.assert_array_equal(ours.backward(gy), tx.grad.numpy())
