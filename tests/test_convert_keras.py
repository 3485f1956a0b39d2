"""Keras layers <-> npconv.nn modules: every layer kind round-trips with bit-identical outputs, from
npconv.keras layers and from real Keras layers (torch backend), channels_last and
channels_first, 'same' at stride 2 (asymmetric pads) included; refusals name the setting."""

import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import npconv.keras as K  # noqa: E402
import npconv.nn as nn  # noqa: E402
from conftest import relative_error  # noqa: E402
from helpers import require  # noqa: E402
from npconv.convert.keras import keras_to_torch, torch_to_keras  # noqa: E402

keras = require("keras", "the round trips from real Keras layers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

LAYERS = [
    ("Conv1D", (4, 3), dict(padding="causal", dilation_rate=2), (9,)),
    ("Conv1D", (4, 4), dict(strides=2, padding="same", groups=2), (10,)),
    ("Conv2D", (4, 3), dict(strides=2, padding="same"), (6, 7)),
    ("Conv2D", (6, (3, 2)), dict(padding="same", dilation_rate=2, groups=2, activation="relu"), (7, 6)),
    ("Conv3D", (2, 3), dict(strides=(2, 1, 2), padding="same", use_bias=False), (4, 5, 6)),
    ("Conv3D", (3, 2), dict(), (4, 4, 3)),
    ("Conv1DTranspose", (3, 4), dict(strides=2, padding="same"), (5,)),
    ("Conv1DTranspose", (3, 3), dict(strides=3, output_padding=2), (4,)),
    ("Conv2DTranspose", (3, 3), dict(strides=2, padding="same", output_padding=1), (4, 5)),
    ("Conv2DTranspose", (2, (2, 3)), dict(dilation_rate=2, padding="same"), (4, 4)),
    ("Conv3DTranspose", (2, 3), dict(strides=2, padding="valid", use_bias=False), (3, 2, 3)),
    ("DepthwiseConv1D", (3,), dict(depth_multiplier=2, strides=2, padding="same"), (8,)),
    ("DepthwiseConv2D", (3,), dict(strides=2, dilation_rate=2, padding="same"), (9, 8)),
    ("DepthwiseConv2D", ((2, 3),), dict(depth_multiplier=3, activation="relu"), (5, 6)),
    ("SeparableConv1D", (5, 3), dict(strides=2, padding="same", depth_multiplier=2), (8,)),
    ("SeparableConv2D", (3, 3), dict(padding="same", use_bias=False), (6, 5)),
    ("SeparableConv2D", (4, 2), dict(strides=2, padding="valid", activation="relu"), (7, 7)),
]
FORMATS = ["channels_last", "channels_first"]


def _ids():
    return [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, _, kw, _ in LAYERS]


def _input(spatial, data_format, rng, channels=4):
    shape = (2,) + spatial + (channels,) if data_format == "channels_last" else (2, channels) + spatial
    return rng.standard_normal(shape).astype(np.float32)


def _channels_first(x, data_format):
    return np.moveaxis(x, -1, 1) if data_format == "channels_last" else x


def _built(module_or_layer, x):
    module_or_layer(x)
    return module_or_layer


def _assert_same(got, want):
    """Bit-identical: both sides run npconv's engine with the same spec and weights."""
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("name,args,kwargs,spatial", LAYERS, ids=_ids())
def test_npconv_keras_round_trip(name, args, kwargs, spatial, data_format, rng):
    """npconv.keras layer -> module -> layer: the same outputs at every step, the same weights back."""
    x = _input(spatial, data_format, rng)
    layer = _built(getattr(K, name)(*args, data_format=data_format, **kwargs), x)
    y = layer(x)
    for input_shape in (x.shape, None):  # explicit pads, or 'same' left to npconv's engine
        module = keras_to_torch(layer, input_shape=input_shape)
        _assert_same(module(_channels_first(x, data_format)), _channels_first(y, data_format))
    back = torch_to_keras(keras_to_torch(layer, input_shape=x.shape), data_format, input_shape=x.shape)
    assert type(back).__name__ == name and back.padding == layer.padding
    for got, want in zip(back.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(got, want)
    _assert_same(back(x), y)


@pytest.mark.parametrize("name,args,kwargs,spatial", LAYERS, ids=_ids())
def test_real_keras_layers_convert(name, args, kwargs, spatial, rng):
    """A real Keras layer -> npconv module (same numbers as Keras) -> npconv.keras layer -> real Keras."""
    data_format = "channels_first" if len(spatial) == 2 else "channels_last"
    x = _input(spatial, data_format, rng)
    theirs = _built(getattr(keras.layers, name)(*args, data_format=data_format, **kwargs), x)
    y_keras = theirs(x)
    module = keras_to_torch(theirs, input_shape=x.shape)
    _assert_close_to_keras(module(_channels_first(x, data_format)), _channels_first(y_keras.detach().numpy(),
                                                                                   data_format))
    ours = torch_to_keras(module, data_format, input_shape=x.shape)
    again = getattr(keras.layers, name).from_config(ours.get_config())
    again.build(x.shape)
    again.set_weights(ours.get_weights())
    _assert_close_to_keras(ours(x), again(x).detach().numpy())
    _assert_close_to_keras(ours(x), y_keras.detach().numpy())


def _assert_close_to_keras(got, want):
    """Against Keras or torch (another engine): float32 within 1e-5 of max |ref|."""
    assert got.shape == want.shape and relative_error(got, want) <= 1e-5


def test_same_at_stride_two_gives_asymmetric_pads(rng):
    layer = _built(K.Conv2D(3, 3, strides=2, padding="same"), np.zeros((1, 6, 7, 2), np.float32))
    assert keras_to_torch(layer, input_shape=(6, 7)).padding == ((0, 1), (1, 1))
    assert keras_to_torch(layer).padding == "same"  # no size given: the SAME_UPPER rule per input
    assert keras_to_torch(_built(K.Conv1D(2, 4, padding="same"), np.zeros((1, 5, 1)))).padding == ((1, 2),)
    transposed = _built(K.Conv1DTranspose(2, 3, strides=2, padding="same"), np.zeros((1, 5, 1)))
    module = keras_to_torch(transposed)
    assert (module.padding, module.output_padding) == (((0, 1),), (0,))


def test_torch_modules_convert_too(rng):
    """torch.nn modules are read like npconv.nn ones (weights as tensors)."""
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    theirs = torch.nn.Conv2d(3, 4, 3, padding=1)
    layer = torch_to_keras(theirs, "channels_first")
    assert layer.padding == "same"
    _assert_close_to_keras(layer(x), theirs(torch.from_numpy(x)).detach().numpy())
    separable = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, groups=3, bias=False), torch.nn.Conv2d(6, 2, 1),
                                    torch.nn.ReLU())
    layer = torch_to_keras(separable, "channels_first")
    assert type(layer).__name__ == "SeparableConv2D" and layer.get_config()["activation"] == "relu"
    _assert_close_to_keras(layer(x), separable(torch.from_numpy(x)).detach().numpy())


def test_grouped_conv_and_depthwise_choices(rng):
    assert type(torch_to_keras(nn.Conv2d(4, 8, 3, groups=4))).__name__ == "DepthwiseConv2D"
    assert type(torch_to_keras(nn.Conv3d(4, 8, 3, groups=4))).__name__ == "Conv3D"  # no DepthwiseConv3D
    assert type(torch_to_keras(nn.Conv1d(4, 4, 3, groups=4, padding=((2, 0),)))).__name__ == "Conv1D"
    assert torch_to_keras(nn.Conv1d(4, 4, 3, groups=4, padding=((2, 0),))).padding == "causal"
    assert torch_to_keras(nn.Conv2d(4, 6, 3, groups=2)).groups == 2


REFUSED = [
    (lambda: nn.Conv2d(2, 2, 3, padding=2), {}, "padding=(2, 2)"),
    (lambda: nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), {}, "padding_mode='reflect'"),
    (lambda: nn.Conv2d(2, 2, 3, stride=2, padding=1), {}, "pass input_shape"),
    (lambda: nn.Conv2d(2, 2, 3, stride=2, padding=1), dict(input_shape=(6, 6)), "'same' ((0, 1), (0, 1))"),
    (lambda: nn.Conv2d(2, 2, 3, padding="same_lower"), {}, "same_lower"),
    (lambda: nn.Conv2d(2, 2, 3, stride=2, dilation=2), {}, "dilation_rate"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, groups=2), {}, "groups=2"),
    (lambda: nn.ConvTranspose1d(2, 2, 3, padding=2), {}, "no Keras Conv1DTranspose equivalent"),
    (lambda: nn.Sequential(nn.Conv1d(2, 2, 3, groups=2), nn.Conv1d(2, 3, 1)), {}, "without bias"),
    (lambda: nn.Sequential(nn.Conv1d(2, 2, 3, groups=2, bias=False), nn.Conv1d(2, 3, 2)), {}, "1x1"),
    (lambda: nn.Linear(2, 3), {}, "not a convolution module"),
]


@pytest.mark.parametrize("make,kwargs,words", REFUSED, ids=[r[2] for r in REFUSED])
def test_torch_to_keras_refusals_name_the_setting(make, kwargs, words):
    with pytest.raises(ValueError) as error:
        torch_to_keras(make(), **kwargs)
    assert words in str(error.value)


def test_keras_to_torch_refusals():
    with pytest.raises(ValueError, match="not built"):
        keras_to_torch(K.Conv2D(2, 3))
    with pytest.raises(ValueError, match="activation='tanh'"):
        keras_to_torch(_built(K.Conv2D(2, 3, activation="tanh"), np.zeros((1, 4, 4, 1))))
    with pytest.raises(ValueError, match="not a Keras convolution layer"):
        keras_to_torch(nn.Conv2d(1, 1, 1))
