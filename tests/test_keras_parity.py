"""npconv.keras against Keras 3 itself (torch backend): outputs, gradients, shapes, weights,
parameter counts, configs, refusals, initializers, regularizers, constraints, activations.

Each case builds the Keras layer and the npconv layer with the same arguments, copies the
Keras weights across with ``set_weights`` and runs both on the same input.  Gradients are
torch autograd through the Keras layer (its torch backend) against npconv's ``backward``.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import itertools
import re
import warnings

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import npconv  # noqa: E402
import npconv.keras as K  # noqa: E402
from conftest import relative_error  # noqa: E402
from helpers import require  # noqa: E402

keras = require("keras", "npconv.keras against Keras itself")

warnings.filterwarnings("ignore", message=".*Consider using tensor.detach.*")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 6, 5)}  # odd and even sizes: 'same' at stride 2 pads (0, 1) on even
KERNEL = {1: 3, 2: (3, 2), 3: (2, 3, 2)}  # odd and even effective kernels in one case
ACTIVATIONS = [None, "relu", "tanh", "gelu", "softmax", "swish", "elu", "sigmoid", "selu", "softplus"]
GEOMETRIES = [(1, 1), (2, 1), (1, 2)]  # (strides, dilation_rate); Keras refuses 2 with 2 for Conv


def _case(name, args, kwargs):
    short = {"channels_last": "cl", "channels_first": "cf"}
    text = "-".join(f"{k}={short.get(v, v)}" for k, v in kwargs.items() if k not in ("activation",))
    return pytest.param(name, args, kwargs, id=f"{name}-{text}")


def _conv_cases():
    for index, (rank, (s, d), groups, fmt) in enumerate(itertools.product(
            (1, 2, 3), GEOMETRIES, (1, 2), ("channels_last", "channels_first"))):
        for padding in ("valid", "same", "causal") if rank == 1 else ("valid", "same"):
            kwargs = dict(strides=s, padding=padding, dilation_rate=d, groups=groups, data_format=fmt,
                          use_bias=index % 3 != 2, activation=ACTIVATIONS[index % len(ACTIVATIONS)])
            yield _case(f"Conv{rank}D", (4, KERNEL[rank]), kwargs)


def _transposed_cases():
    for index, (rank, (s, d), padding, given, fmt) in enumerate(itertools.product(
            (1, 2, 3), GEOMETRIES, ("valid", "same"), (False, True), ("channels_last", "channels_first"))):
        kernel = KERNEL[rank] if rank > 1 else 3 + index % 2
        kwargs = dict(strides=s, padding=padding, output_padding=s - 1 if given else None, dilation_rate=d,
                      data_format=fmt, use_bias=index % 3 != 1, activation=ACTIVATIONS[index % len(ACTIVATIONS)])
        yield _case(f"Conv{rank}DTranspose", (3, kernel), kwargs)


def _depthwise_and_separable_cases():
    geometries = GEOMETRIES + [(2, 2)]  # Keras allows strides > 1 with dilation > 1 here
    for index, (rank, (s, d), padding, multiplier, fmt) in enumerate(itertools.product(
            (1, 2), geometries, ("valid", "same"), (1, 2), ("channels_last", "channels_first"))):
        common = dict(strides=s, padding=padding, depth_multiplier=multiplier, dilation_rate=d, data_format=fmt,
                      use_bias=index % 3 != 0, activation=ACTIVATIONS[index % len(ACTIVATIONS)])
        yield _case(f"DepthwiseConv{rank}D", (KERNEL[rank],), common)
        yield _case(f"SeparableConv{rank}D", (3, KERNEL[rank]), common)


CASES = list(_conv_cases()) + list(_transposed_cases()) + list(_depthwise_and_separable_cases())


def _rank(name: str) -> int:
    return int(re.search(r"([123])D", name).group(1))


def _input(rank, data_format, rng, channels=4, batch=2):
    spatial = SPATIAL[rank]
    shape = (batch,) + spatial + (channels,) if data_format == "channels_last" else (batch, channels) + spatial
    return rng.standard_normal(shape).astype(np.float32)


def _pair(name, args, kwargs, input_shape):
    """The Keras layer (built, its own random weights) and the npconv layer holding the same weights."""
    theirs, ours = getattr(keras.layers, name)(*args, **kwargs), getattr(K, name)(*args, **kwargs)
    theirs.build(input_shape)
    ours.build(input_shape)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def _assert_close(got, want, tol=1e-5):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape}, Keras {want.shape}"
    assert relative_error(got, want) <= tol, f"relative error {relative_error(got, want):.2e}"


@pytest.mark.parametrize("name,args,kwargs", CASES)
def test_layer_matches_keras(name, args, kwargs):
    rng = np.random.default_rng(len(name) + len(kwargs))
    rank = _rank(name)
    x = _input(rank, kwargs["data_format"], rng)
    theirs, ours = _pair(name, args, kwargs, x.shape)
    assert [(w.name.split("/")[-1], tuple(w.shape)) for w in theirs.weights] == \
        [(option.weight, w.shape) for option, w in zip(ours.weight_options, ours.weights)]
    assert ours.count_params() == theirs.count_params()
    assert list(ours.get_config()) == list(theirs.get_config())
    tx = torch.from_numpy(x).requires_grad_()
    y_keras = theirs(tx)
    y = ours(x)
    assert y.dtype == np.float32
    _assert_close(y, y_keras)
    assert ours.compute_output_shape(x.shape) == tuple(theirs.compute_output_shape(x.shape)) == y.shape
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y_keras.backward(torch.from_numpy(gy))
    _assert_close(ours.backward(gy), tx.grad)
    for weight, variable in zip(ours.weights, theirs.weights):
        _assert_close(weight.grad, variable.value.grad)


# ---- refusals: Keras refuses <=> npconv refuses (ValueError naming the argument) -------------

REFUSALS = [
    ("Conv2D", (4, 3), dict(strides=2, dilation_rate=2), (1, 9, 9, 2), "dilation_rate"),
    ("Conv1DTranspose", (4, 3), dict(strides=2, dilation_rate=2), (1, 9, 2), "dilation_rate"),
    ("Conv2D", (3, 3), dict(groups=2), (1, 8, 8, 4), "groups"),
    ("Conv2D", (4, 3), dict(groups=2), (1, 8, 8, 3), "groups"),
    ("Conv1D", (4, 3), dict(groups=0), (1, 8, 4), "groups"),
    ("Conv2D", (4, 3), dict(padding="causal"), (1, 8, 8, 2), "padding"),
    ("DepthwiseConv1D", (3,), dict(padding="causal"), (1, 8, 2), "padding"),
    ("SeparableConv1D", (4, 3), dict(padding="causal"), (1, 8, 2), "padding"),
    ("Conv1DTranspose", (4, 3), dict(padding="causal"), (1, 8, 2), "padding"),
    ("Conv2D", (4, 3), dict(padding="full"), (1, 8, 8, 2), "padding"),
    ("Conv2D", (4, 3), dict(data_format="NHWC"), (1, 8, 8, 2), "data_format"),
    ("Conv2DTranspose", (4, 3), dict(strides=2, output_padding=2), (1, 5, 5, 2), "output_padding"),
    ("Conv1DTranspose", (4, 3), dict(output_padding=1), (1, 5, 2), "output_padding"),
    ("Conv2D", (0, 3), {}, (1, 8, 8, 2), "filters"),
    ("SeparableConv2D", (-1, 3), {}, (1, 8, 8, 2), "filters"),
    ("Conv2D", (4, 0), {}, (1, 8, 8, 2), "kernel_size"),
    ("Conv2D", (4, (3, 3, 3)), {}, (1, 8, 8, 2), "kernel_size"),
    ("Conv3D", (4, 3), dict(strides=0), (1, 5, 5, 5, 2), "strides"),
    ("DepthwiseConv2D", (3,), dict(depth_multiplier=0), (1, 8, 8, 2), "depth_multiplier"),
    ("Conv2D", (4, 5), {}, (1, 4, 8, 2), "output size"),
    ("Conv1D", (4, 3), dict(dilation_rate=3), (1, 6, 2), "output size"),
    ("DepthwiseConv2D", (4,), {}, (1, 3, 3, 2), "output size"),
    ("SeparableConv1D", (2, 5), dict(data_format="channels_first"), (1, 2, 4), "output size"),
    ("Conv2D", (4, 3), {}, (8, 8, 2), "ndim"),
    ("Conv1D", (4, 3), dict(kernel_initializer="no_such_init"), (1, 8, 2), "initializer"),
    ("Conv1D", (4, 3), dict(activation="no_such_activation"), (1, 8, 2), "activation"),
    ("Conv1D", (4, 3), dict(kernel_regularizer="l1_l2"), (1, 8, 2), None),  # npconv extension: accepted
]


def _outcome(make, shape):
    try:
        make()(np.zeros(shape, np.float32))
    except Exception as error:  # noqa: BLE001 - Keras refuses with ValueError or TypeError
        return error
    return None


@pytest.mark.parametrize("name,args,kwargs,shape,word", REFUSALS,
                         ids=[f"{r[0]}-{r[4] or 'extension'}-{i}" for i, r in enumerate(REFUSALS)])
def test_refusals_match_keras(name, args, kwargs, shape, word):
    theirs = _outcome(lambda: getattr(keras.layers, name)(*args, **kwargs), shape)
    ours = _outcome(lambda: getattr(K, name)(*args, **kwargs), shape)
    if word is None:  # the one name npconv accepts that Keras 3 refuses ('l1_l2', as Keras 2 had it)
        assert theirs is not None and ours is None
        return
    assert theirs is not None, "Keras accepts this case"
    assert isinstance(ours, ValueError), f"npconv gave {ours!r}"
    assert word.split()[0] in str(ours), str(ours)


def test_accepted_edge_cases_match_keras():
    """Uppercase padding, kernel exactly the input size, None data_format: both accept, same numbers."""
    rng = np.random.default_rng(3)
    for name, args, kwargs, shape in [("Conv2D", (2, 3), dict(padding="SAME"), (1, 5, 5, 2)),
                                      ("Conv1D", (2, 5), {}, (1, 5, 2)),
                                      ("Conv2D", (2, 7), dict(padding="same", strides=2), (1, 3, 3, 1))]:
        x = rng.standard_normal(shape).astype(np.float32)
        theirs, ours = _pair(name, args, kwargs, shape)
        _assert_close(ours(x), theirs(x))


# ---- initializers, regularizers, constraints, activations ----------------------------------

@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                                  "lecun_uniform", "random_normal", "random_uniform", "truncated_normal",
                                  "orthogonal", "zeros", "ones"])
def test_initializer_statistics_match_keras(name):
    _seed_both(name)
    shape = (3, 3, 48, 64)  # 27,648 values: std within ~1.5 % of the distribution's
    ours = K.initializers.get(name)(shape)
    theirs = keras.initializers.get(name)(shape).detach().numpy()
    assert ours.shape == shape and ours.dtype == np.float32
    scale = max(float(theirs.std()), 1e-12)
    assert abs(float(ours.mean()) - float(theirs.mean())) <= 0.03 * scale + 1e-12
    assert abs(float(ours.std()) - float(theirs.std())) <= 0.03 * scale
    if name in UNIFORM:  # the largest draw sits at the bound, U(+-limit)
        assert abs(float(np.abs(ours).max()) - float(np.abs(theirs).max())) <= 0.05 * scale + 1e-12
    if name in TRUNCATED:  # cut at 2 stddev of the untruncated normal, std = stddev * 0.8796...
        # Keras's torch backend keeps the first of 4 draws when all 4 fall outside, so its largest
        # value passes the cut about once per 230,000 draws; npconv redraws until inside.
        assert float(np.abs(ours).max()) <= 2 * float(theirs.std()) / 0.87962566103423978 * 1.03
    if name == "orthogonal":
        matrix = ours.reshape(-1, shape[-1])
        np.testing.assert_allclose(matrix.T @ matrix, np.eye(shape[-1]), atol=1e-5)


def _seed_both(text: str) -> None:
    """Seed Keras's and npconv's generators, so the statistics below are the same on every run."""
    keras.utils.set_random_seed(len(text))
    npconv.manual_seed(len(text))


UNIFORM = ("glorot_uniform", "he_uniform", "lecun_uniform", "random_uniform")
TRUNCATED = ("glorot_normal", "he_normal", "lecun_normal", "truncated_normal")


def test_initializers_give_layer_weights_with_keras_statistics():
    """Through the layers: the kernel's fans are Keras's for every layout (depthwise included), and
    an initializer of None means glorot_uniform, for the bias too (fans of a 1-D shape: its size)."""
    _seed_both("layers")
    for name, args, kwargs, shape in [("Conv2D", (64, 3), {}, (1, 5, 5, 48)),
                                      ("Conv2DTranspose", (48, 3), {}, (1, 5, 5, 64)),
                                      ("DepthwiseConv2D", (5,), {}, (1, 5, 5, 256)),
                                      ("SeparableConv1D", (96, 5), {}, (1, 9, 1024)),
                                      ("Conv1D", (4096, 1), dict(bias_initializer=None), (1, 3, 2))]:
        theirs, ours = getattr(keras.layers, name)(*args, **kwargs), getattr(K, name)(*args, **kwargs)
        theirs.build(shape)
        ours.build(shape)
        for w_ours, w_theirs in zip(ours.get_weights(), theirs.get_weights()):
            assert w_ours.shape == w_theirs.shape
            assert abs(w_ours.std() - w_theirs.std()) <= 0.05 * w_theirs.std() + 1e-12, name


REGULARIZED = [
    ("Conv2D", (3, 3), dict(kernel_regularizer=K.regularizers.L1(0.02), bias_regularizer="l2",
                            activity_regularizer="l1")),
    ("Conv1DTranspose", (3, 3), dict(strides=2, kernel_regularizer="l2",
                                     activity_regularizer=K.regularizers.L1L2(l1=0.01, l2=0.02))),
    ("DepthwiseConv2D", (3,), dict(depth_multiplier=2, depthwise_regularizer="l1", bias_regularizer="l1")),
    ("SeparableConv1D", (3, 3), dict(depthwise_regularizer="l2", pointwise_regularizer=K.regularizers.L1(0.05),
                                     bias_regularizer=K.regularizers.L2(0.1), activity_regularizer="l2")),
]


def _keras_options(kwargs):
    """The same options for Keras: our regularizer objects passed as their Keras configs."""
    return {k: K.regularizers.serialize(v) if isinstance(v, K.regularizers.Regularizer) else v
            for k, v in kwargs.items()}


@pytest.mark.parametrize("name,args,kwargs", REGULARIZED, ids=[r[0] for r in REGULARIZED])
def test_regularizer_losses_and_gradients_match_keras(name, args, kwargs):
    rng = np.random.default_rng(5)
    rank = _rank(name)
    x = _input(rank, "channels_last", rng, channels=2)
    theirs = getattr(keras.layers, name)(*args, bias_initializer="random_normal", **_keras_options(kwargs))
    ours = getattr(K, name)(*args, **kwargs)
    theirs.build(x.shape)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    tx = torch.from_numpy(x).requires_grad_()
    y_keras = theirs(tx)
    y = ours(x)
    losses = theirs.losses
    np.testing.assert_allclose(ours.losses, [float(v.detach()) for v in losses], rtol=1e-5)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    ((y_keras * torch.from_numpy(gy)).sum() + sum(losses)).backward()
    _assert_close(ours.backward(gy, include_regularization=True), tx.grad)
    for weight, variable in zip(ours.weights, theirs.weights):
        _assert_close(weight.grad, variable.value.grad)


CONSTRAINTS = [("max_norm", {}), ("MaxNorm", dict(max_value=0.5, axis=[0, 1, 2])), ("non_neg", {}),
               ("unit_norm", {}), ("UnitNorm", dict(axis=-1)), ("min_max_norm", {}),
               ("MinMaxNorm", dict(min_value=0.5, max_value=0.8, rate=0.5, axis=(0, 1)))]


@pytest.mark.parametrize("name,options", CONSTRAINTS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONSTRAINTS)])
def test_constraints_match_keras(name, options):
    w = np.random.default_rng(9).standard_normal((3, 3, 4, 5)).astype(np.float32)
    identifier = {"class_name": name, "config": options} if options else name
    ours = K.constraints.get(identifier)
    theirs = keras.constraints.get(identifier)
    _assert_close(ours(w), theirs(torch.from_numpy(w)))
    assert ours.get_config() == theirs.get_config()


@pytest.mark.parametrize("activation", sorted(set(K.activations.ACTIVATIONS)))
def test_activations_match_keras(activation):
    """Values and gradients of every named activation, through a Conv1D, against Keras + autograd."""
    rng = np.random.default_rng(11)
    x = (3 * rng.standard_normal((2, 8, 3))).astype(np.float32)
    theirs, ours = _pair("Conv1D", (4, 3), dict(activation=activation), x.shape)
    assert ours.get_config()["activation"] == theirs.get_config()["activation"]
    tx = torch.from_numpy(x).requires_grad_()
    y_keras = theirs(tx)
    y = ours(x)
    _assert_close(y, y_keras)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y_keras.backward(torch.from_numpy(gy))
    _assert_close(ours.backward(gy), tx.grad, tol=1e-4 if activation == "exponential" else 1e-5)


# ---- configs: Keras reads ours, we read Keras's ------------------------------------------

CONFIGURED = [
    ("Conv2D", (4, 3), dict(strides=2, padding="same", groups=2, activation="relu", kernel_initializer="he_normal",
                            kernel_regularizer="l2", kernel_constraint="max_norm", data_format="channels_first")),
    ("Conv3DTranspose", (2, 3), dict(strides=2, output_padding=1, use_bias=False, bias_initializer="ones")),
    ("DepthwiseConv1D", (3,), dict(depth_multiplier=3, depthwise_constraint="non_neg", activity_regularizer="l1")),
    ("SeparableConv2D", (5, 3), dict(pointwise_initializer="orthogonal", pointwise_regularizer="l1",
                                     bias_constraint=K.constraints.MinMaxNorm(0.1, 0.9))),
]


@pytest.mark.parametrize("name,args,kwargs", CONFIGURED, ids=[c[0] for c in CONFIGURED])
def test_configs_cross_between_keras_and_npconv(name, args, kwargs):
    ours = getattr(K, name)(*args, **kwargs)
    rebuilt_by_keras = getattr(keras.layers, name).from_config(ours.get_config())
    keras_config = rebuilt_by_keras.get_config()
    ours_config = ours.get_config()
    assert list(keras_config) == list(ours_config)
    for key, value in ours_config.items():
        if key != "dtype":
            assert _plain(keras_config[key]) == _plain(value), key
    again = getattr(K, name).from_config(keras_config)
    assert _plain(again.get_config()) == _plain(ours_config)  # Keras keeps L1's 0.01 as float32


def _plain(value):
    """Configs compared as Keras writes them: tuples as lists, floats rounded to float32."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return round(float(np.float32(value)), 6) if isinstance(value, float) else value


def _translate_cases():
    for size, k, padding in itertools.product((4, 5), (1, 2, 3, 4, 5), ("same", "valid")):
        for s, d in ((1, 1), (2, 1), (3, 1), (1, 2)):
            for op in (None, *range(s)):
                yield size, k, s, d, padding, op


@pytest.mark.parametrize("size,k,s,d,padding,op", list(_translate_cases()))
def test_explain_translate_says_keras_transposed_padding_as_keras_computes_it(size, k, s, d, padding, op):
    """npconv.explain.translate's PyTorch statement of a Keras Conv1DTranspose (lopsided
    'same' crops, output_padding None or given) reproduces Keras's output, and its Keras
    statement, built as a Keras layer again, gives that output too."""
    from npconv.explain import translate
    import torch.nn.functional as TF
    x = np.random.default_rng(size * 100 + k).standard_normal((1, size, 1)).astype(np.float32)
    layer = keras.layers.Conv1DTranspose(1, k, strides=s, padding=padding, output_padding=op, dilation_rate=d,
                                         use_bias=False)
    want = keras.ops.convert_to_numpy(layer(x))[0, :, 0]
    kernel = layer.get_weights()[0]  # (k, filters, C_in)
    solution = translate(size, k, stride=s, dilation=d, keras=padding, transposed=True, output_padding=op)
    said = solution.pytorch
    got = TF.conv_transpose1d(torch.from_numpy(x.transpose(0, 2, 1)), torch.from_numpy(kernel.transpose(2, 1, 0)),
                              stride=s, dilation=d, padding=said["padding"], output_padding=said["output_padding"])
    if "then_crop" in said:
        (lo, hi), = said["then_crop"]
        got = got[..., lo:got.shape[-1] - hi]
    assert solution.out_size == want.shape
    np.testing.assert_allclose(got.numpy()[0, 0], want, rtol=1e-5, atol=1e-6)
    again = keras.layers.Conv1DTranspose(1, k, strides=s, dilation_rate=d, use_bias=False,
                                         **{"output_padding": None, **solution.keras})
    again.build((1, size, 1))
    again.set_weights([kernel])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x))[0, :, 0], want, rtol=1e-5, atol=1e-6)
