"""Memory format: channels-last inputs (PyTorch's channels_last / channels_last_3d) give
channels-last outputs with PyTorch's values, under every algorithm; npconv.keras hands the
engine its channels-last data as it is; npconv.nn.Sequential keeps one layout between layers."""

import numpy as np
import pytest
import torch

import npconv
from npconv import core, select
from npconv.arrays import as_channels_last, is_channels_last

from conftest import assert_matches

LAYERS = [  # (x shape, w shape, kwargs)
    ((2, 6, 9, 8), (8, 6, 1, 1), {}),
    ((2, 6, 9, 8), (8, 6, 3, 3), dict(padding=1)),
    ((2, 6, 9, 8), (8, 6, 3, 3), dict(stride=2, padding=1, dilation=2)),
    ((2, 8, 9, 8), (8, 2, 3, 3), dict(padding=1, groups=4)),
    ((2, 6, 9, 8), (6, 1, 5, 5), dict(padding=2, groups=6, padding_mode="reflect")),
    ((2, 4, 5, 6, 7), (5, 4, 3, 3, 3), dict(padding=1)),
    ((2, 6, 11), (4, 6, 3), dict(padding=1)),
]


def _torch_memory_format(ndim):
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)


@pytest.fixture
def forced():
    yield select.set_algorithm
    select.set_algorithm(None)


@pytest.mark.parametrize("algorithm", [None, *select.ALGORITHMS])
@pytest.mark.parametrize("x_shape,w_shape,kwargs", LAYERS)
def test_channels_last_input_gives_channels_last_output_with_torchs_values(x_shape, w_shape, kwargs, algorithm,
                                                                          forced):
    rng = np.random.default_rng(len(x_shape) + w_shape[1])
    x = as_channels_last(rng.standard_normal(x_shape).astype(np.float32))
    w = rng.standard_normal(w_shape).astype(np.float32)
    forced(algorithm)
    got = npconv.conv(x, w, **kwargs)
    torch_x = torch.from_numpy(np.ascontiguousarray(x))
    if _torch_memory_format(len(x_shape)) is not None:
        torch_x = torch_x.contiguous(memory_format=_torch_memory_format(len(x_shape)))
    mode = kwargs.pop("padding_mode", "zeros")
    if mode != "zeros":
        pad = kwargs.pop("padding")
        torch_x = torch.nn.functional.pad(torch_x, (pad,) * (2 * (len(x_shape) - 2)), mode=mode)
    want = getattr(torch.nn.functional, f"conv{len(x_shape) - 2}d")(torch_x, torch.from_numpy(w), **kwargs)
    assert_matches(got, want.numpy(), np.float32)
    if len(x_shape) > 3:  # torch keeps channels_last (1-D has no such format; npconv keeps it too)
        assert want.is_contiguous(memory_format=_torch_memory_format(len(x_shape)))
    assert is_channels_last(got)


def test_a_channels_first_input_stays_channels_first():
    x = np.ones((2, 3, 5, 5), np.float32)
    assert np.ascontiguousarray(npconv.conv(x, np.ones((4, 3, 3, 3), np.float32))).flags.c_contiguous
    assert npconv.conv(x, np.ones((4, 3, 3, 3), np.float32)).flags.c_contiguous


def test_pointwise_reads_channels_last_memory_in_place(monkeypatch):
    """A 1x1 layer on channels-last data is one GEMM: no copy of the input is made."""
    x = as_channels_last(np.random.default_rng(0).standard_normal((2, 16, 12, 12)).astype(np.float32))
    seen = []
    real = np.ascontiguousarray
    monkeypatch.setattr(np, "ascontiguousarray", lambda a, *args, **kw: seen.append(a.shape) or real(a, *args, **kw))
    y = npconv.conv(x, np.ones((8, 16, 1, 1), np.float32))
    assert is_channels_last(y) and x.shape[1:] not in [s[1:] for s in seen]


def test_keras_hands_the_engine_channels_last_memory_and_gets_it_back(monkeypatch):
    from npconv.keras import Conv2D

    layer = Conv2D(8, 3, padding="same")
    x = np.random.default_rng(0).standard_normal((2, 10, 10, 5)).astype(np.float32)
    layer(x)  # built
    layouts = []
    real = core.forward
    monkeypatch.setattr(core, "forward", lambda spec, x, *a: layouts.append(is_channels_last(x)) or real(spec, x, *a))
    y = layer(x)
    assert layouts == [True]
    assert y.flags.c_contiguous and y.shape == (2, 10, 10, 8)


def test_sequential_keeps_the_inputs_layout_by_default(monkeypatch):
    from npconv import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    layouts = []
    real = core.forward
    monkeypatch.setattr(core, "forward", lambda spec, x, *a: layouts.append(is_channels_last(x)) or real(spec, x, *a))
    x = np.ones((2, 3, 6, 6), np.float32)
    assert net(x).flags.c_contiguous and layouts == [False, False]
    channels_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    assert is_channels_last(net(channels_last)) and layouts[2:] == [True, True]
    with pytest.raises(ValueError, match="memory_format must be None or 'channels_last', got 'nhwc'"):
        nn.Sequential(memory_format="nhwc")


def test_sequential_converts_only_at_its_edges(monkeypatch):
    from npconv import nn

    rng = np.random.default_rng(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8, padding=1),
                        nn.Conv2d(8, 4, 1), memory_format="channels_last")
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    layouts = []
    real = core.forward
    monkeypatch.setattr(core, "forward", lambda spec, x, *a: layouts.append(is_channels_last(x)) or real(spec, x, *a))
    y = net(x)
    gx = net.backward(np.ones_like(y))
    assert layouts[:3] == [True, True, True]
    assert y.flags.c_contiguous and gx.flags.c_contiguous
    monkeypatch.setattr(core, "forward", real)
    layers = list(net)
    want = layers[3](layers[2](layers[1](layers[0](x))))
    assert_matches(y, want, np.float32)
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 3, groups=8, padding=1), torch.nn.Conv2d(8, 4, 1))
    for ours, theirs in zip([layers[0], layers[2], layers[3]], [tnet[0], tnet[2], tnet[3]]):
        theirs.weight.data = torch.from_numpy(np.array(ours.weight))
        theirs.bias.data = torch.from_numpy(np.array(ours.bias))
    tx = torch.from_numpy(x).requires_grad_()
    tnet(tx).sum().backward()
    assert_matches(gx, tx.grad.numpy(), np.float32)
