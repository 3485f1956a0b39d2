"""npconv.keras layers on their own: lazy build, weights, configs, losses, constraints through
npconv.optim, backward bookkeeping, dtypes, identifiers.  (Parity with Keras itself is in
test_keras_parity.py.)"""

import itertools
import threading

import numpy as np
import pytest

import npconv
import npconv.keras as K
import npconv.nn as nn
from npconv.keras import geometry
from npconv.keras.kernels import torch_weight

LAYERS = [
    ("Conv1D", (3, 3), dict(padding="causal", dilation_rate=2), (2, 9, 2)),
    ("Conv2D", (4, 3), dict(strides=2, padding="same", groups=2), (2, 6, 7, 2)),
    ("Conv3D", (2, 2), dict(data_format="channels_first"), (1, 3, 4, 4, 4)),
    ("Conv1DTranspose", (3, 3), dict(strides=2, output_padding=1), (2, 5, 2)),
    ("Conv2DTranspose", (2, 3), dict(strides=2, padding="same"), (1, 4, 5, 3)),
    ("Conv3DTranspose", (2, 2), dict(padding="same", use_bias=False), (1, 3, 3, 3, 2)),
    ("DepthwiseConv1D", (3,), dict(depth_multiplier=2), (2, 8, 3)),
    ("DepthwiseConv2D", (3,), dict(strides=2, padding="same", data_format="channels_first"), (1, 3, 6, 6)),
    ("SeparableConv1D", (4, 3), dict(depth_multiplier=2, activation="relu"), (2, 8, 3)),
    ("SeparableConv2D", (4, 3), dict(padding="same", use_bias=False), (1, 5, 5, 2)),
]
IDS = [entry[0] for entry in LAYERS]


@pytest.fixture(autouse=True)
def _fresh_layer_names():
    """Each test names its layers from 'conv2d' on, whatever ran before it."""
    with K.fresh_names():
        yield


def _layer(name, args, kwargs):
    return getattr(K, name)(*args, **kwargs)


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_lazy_build_on_first_call(name, args, kwargs, shape, rng):
    layer = _layer(name, args, kwargs)
    assert not layer.built and layer.weights == [] and layer.get_weights() == []
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    y = layer(rng.standard_normal(shape).astype(np.float32))
    assert layer.built and y.shape == layer.compute_output_shape(shape)
    assert layer.count_params() == sum(w.size for w in layer.get_weights())
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in layer.weights]


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_build_with_unknown_sizes_then_any_spatial_size(name, args, kwargs, shape, rng):
    layer = _layer(name, args, kwargs)
    channels_last = kwargs.get("data_format", "channels_last") == "channels_last"
    open_shape = tuple(None if i not in (0, len(shape) - 1 if channels_last else 1) else s
                       for i, s in enumerate(shape))
    open_shape = (None,) + open_shape[1:]
    layer.build(open_shape)
    assert layer.built
    out = layer.compute_output_shape(open_shape)
    assert out[0] is None and sum(v is None for v in out) == len(shape) - 1
    bigger = tuple(s + 2 if i not in (0, len(shape) - 1 if channels_last else 1) else s for i, s in enumerate(shape))
    for size in (shape, bigger):
        assert layer(rng.standard_normal(size).astype(np.float32)).shape == layer.compute_output_shape(size)


def test_a_built_layer_refuses_other_channel_counts(rng):
    layer = K.Conv2D(3, 3)
    layer(np.zeros((1, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 2"):
        layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected ndim=4"):
        layer(np.zeros((5, 5, 2), np.float32))


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_set_weights_round_trip_and_refusals(name, args, kwargs, shape, rng):
    layer = _layer(name, args, kwargs)
    with pytest.raises(ValueError, match="not built"):
        layer.set_weights([])
    layer.build(shape)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    layer.get_weights()[0][...] = 99  # get_weights gives copies
    assert not np.any(layer.get_weights()[0] == 99)
    with pytest.raises(ValueError, match=rf"length {len(new) - 1}, but the layer was expecting {len(new)}"):
        layer.set_weights(new[:-1])
    wrong = [np.zeros(w.shape + (1,), np.float32) for w in new]
    with pytest.raises(ValueError, match="is not compatible with provided weight shape"):
        layer.set_weights(wrong)


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_from_config_round_trip(name, args, kwargs, shape, rng):
    options = dict(kwargs, kernel_regularizer="l2") if name.startswith("Conv") else kwargs
    layer = _layer(name, args, options)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    config = layer.get_config()
    copy = type(layer).from_config(config)
    assert copy.get_config() == config and not copy.built
    copy.build(shape)
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(copy(x), y)


def test_keras_names_and_repr():
    first, second = K.Conv2D(2, 3), K.Conv2D(2, 3)
    assert (first.name, second.name) == ("conv2d", "conv2d_1")
    assert K.DepthwiseConv1D(3).name == "depthwise_conv1d"
    assert K.Conv3DTranspose(2, 3).name == "conv3d_transpose"
    assert K.SeparableConv2D(2, 3, name="sep").name == "sep"
    assert K.SeparableConv2D(2, 3).name == "separable_conv2d"  # a given name does not count
    assert repr(K.Conv1D(2, 3, name="c")) == "Conv1D(name='c', filters=2, kernel_size=(3,), strides=(1,), " \
                                              "padding='valid', built=False)"


def test_names_are_counted_per_scope_and_reset():
    K.Conv2D(2, 3)
    with K.fresh_names():
        assert K.Conv2D(2, 3).name == "conv2d"  # the outer count is not seen inside
    assert K.Conv2D(2, 3).name == "conv2d_1"  # nor the inner count outside
    K.reset_names()
    assert K.Conv2D(2, 3).name == "conv2d"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(K.Conv2D(2, 3).name))
    thread.start()
    thread.join()
    assert seen == ["conv2d"]  # another thread counts on its own, as Keras's per-thread state does


def test_unrecognised_keyword_and_dtypes():
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Conv2D"):
        K.Conv2D(2, 3, bias=False)
    with pytest.raises(ValueError, match="dtype must be one of"):
        K.Conv2D(2, 3, dtype="float16")
    layer64 = K.Conv1D(2, 3, dtype="float64")
    assert layer64(np.ones((1, 5, 1), np.float32)).dtype == np.float64
    assert layer64.get_weights()[0].dtype == np.float64
    layer32 = K.Conv1D(2, 3)
    assert layer32(np.ones((1, 5, 1))).dtype == np.float32  # Keras casts inputs to the layer's dtype
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}}
    assert K.Conv1D(2, 3, dtype=policy).dtype == "float64"  # a real Keras config's dtype


def test_losses_order_and_activity_penalty_per_call(rng):
    layer = K.Conv2D(2, 3, kernel_regularizer=K.regularizers.L1(0.1), bias_regularizer="l2",
                     activity_regularizer=K.regularizers.L2(0.5), bias_initializer="ones")
    assert layer.losses == []
    x = rng.standard_normal((4, 5, 5, 1)).astype(np.float32)
    y = layer(x)
    kernel, bias = layer.get_weights()
    expected = [0.5 * float(np.square(y).sum()) / 4, 0.1 * float(np.abs(kernel).sum()), 0.01 * 2.0]
    np.testing.assert_allclose(layer.losses, expected, rtol=1e-6)
    layer(x[:2])
    assert len(layer.losses) == 3  # the activity penalty is the last call's, not a running sum
    layer.trainable = False
    assert len(layer.losses) == 1  # weight penalties count trainable weights only, as in Keras


def test_include_regularization_adds_penalty_gradients(rng):
    x = rng.standard_normal((2, 6, 1)).astype(np.float64)
    layer = K.Conv1D(2, 3, dtype="float64", kernel_regularizer=K.regularizers.L1L2(l1=0.1, l2=0.2),
                     activity_regularizer=K.regularizers.L1(0.3))
    y = layer(x)
    gy = np.ones_like(y)
    plain = layer.backward(gy)
    plain_kernel_grad = layer.kernel.grad.copy()
    layer.zero_grad()
    with_penalty = layer.backward(gy, include_regularization=True)
    kernel = np.asarray(layer.kernel)
    np.testing.assert_allclose(layer.kernel.grad - plain_kernel_grad,
                               _kernel_grad_of(layer, x, 0.3 * np.sign(y) / 2) + 0.1 * np.sign(kernel) + 0.4 * kernel)
    assert not np.allclose(with_penalty, plain)


def _kernel_grad_of(layer, x, gy):
    """The kernel gradient a grad_output gy alone gives (a fresh backward on a copy)."""
    copy = type(layer).from_config(dict(layer.get_config(), kernel_regularizer=None, activity_regularizer=None))
    copy.build(x.shape)
    copy.set_weights(layer.get_weights())
    copy(x)
    copy.backward(gy)
    return copy.kernel.grad


def test_custom_regularizer_without_gradient(rng):
    layer = K.Conv1D(2, 3, kernel_regularizer=lambda w: 2.0 * float(np.sum(w)))
    y = layer(rng.standard_normal((1, 5, 1)).astype(np.float32))
    assert layer.losses == [pytest.approx(2.0 * layer.get_weights()[0].sum(), rel=1e-5)]
    layer.backward(np.ones_like(y))
    with pytest.raises(TypeError, match="no grad"):
        layer.backward(np.ones_like(y), include_regularization=True)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("constraint", ["max_norm", "non_neg", "unit_norm", "min_max_norm"])
def test_constraints_apply_after_each_optimizer_step(optimizer, constraint, rng):
    layer = K.Conv2D(3, 2, kernel_constraint=constraint, bias_constraint=K.constraints.NonNeg())
    x = rng.standard_normal((2, 4, 4, 2)).astype(np.float32)
    y = layer(x)
    layer.set_weights([w * 5 for w in layer.get_weights()])  # norms well above 1: constraints bite
    kernel_before = layer.get_weights()[0]
    opt = getattr(npconv.optim, optimizer)(layer.parameters(), lr=0.1)
    layer(x)
    layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    update = _plain_update(optimizer, kernel_before, layer.kernel.grad)
    opt.step()
    np.testing.assert_allclose(layer.get_weights()[0], K.constraints.get(constraint)(update), rtol=1e-5, atol=1e-6)
    assert (layer.get_weights()[1] >= 0).all()


def _plain_update(optimizer, weight, gradient):
    """The first step of SGD (lr * g) or Adam (bias-corrected m / sqrt(v) = g / |g|), unconstrained."""
    if optimizer == "SGD":
        return weight - 0.1 * gradient
    return weight - 0.1 * gradient / (np.abs(gradient) + 1e-8)


def test_parameters_without_constraint_are_untouched_by_the_hook(rng):
    module = nn.Conv2d(1, 1, 2)
    before = np.array(module.weight)
    module.weight.grad = np.ones_like(before)
    npconv.optim.SGD(module.parameters(), lr=0.5).step()
    np.testing.assert_array_equal(module.weight, before - 0.5)


def test_backward_bookkeeping(rng):
    layer = K.SeparableConv1D(2, 3)
    with pytest.raises(RuntimeError, match="before the layer was called"):
        layer.backward(np.ones((1, 3, 2)))
    x = rng.standard_normal((1, 5, 2)).astype(np.float32)
    y = layer(x)
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer.backward(np.ones(y.shape[:-1] + (3,)))
    layer.backward(np.ones_like(y))
    first = layer.pointwise_kernel.grad.copy()
    layer.backward(np.ones_like(y))
    np.testing.assert_allclose(layer.pointwise_kernel.grad, 2 * first, rtol=1e-6)  # gradients accumulate
    layer.zero_grad()
    assert all(w.grad is None for w in layer.weights)
    layer.trainable = False  # frozen: the input gradient only, so optimizers skip the weights
    gx = layer.backward(np.ones_like(y))
    assert gx.shape == x.shape and all(w.grad is None for w in layer.weights)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3


def test_layers_train_inside_npconv_sequential(rng):
    """A Keras layer is an npconv Module: Sequential, parameters(), optimizers and losses work."""
    x = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    target = rng.standard_normal((8, 3, 3, 2)).astype(np.float32)
    model = nn.Sequential(K.Conv2D(4, 3, padding="same", activation="relu"), K.Conv2D(2, 2, strides=2))
    model(x)
    opt = npconv.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        y = model(x)
        losses.append(float(np.square(y - target).mean()))
        model.zero_grad()
        model.backward(2 * (y - target) / y.size)
        opt.step()
    assert losses[-1] < 0.8 * losses[0]


def test_identifiers(rng):
    assert isinstance(K.initializers.get("glorot_uniform"), K.initializers.GlorotUniform)
    assert isinstance(K.initializers.get("HeNormal"), K.initializers.HeNormal)
    seeded = K.initializers.get({"class_name": "RandomNormal", "config": {"seed": 3}})
    np.testing.assert_array_equal(seeded((4, 4)), seeded((4, 4)))  # a seed repeats its values
    assert K.regularizers.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}  # Keras 3's defaults
    assert K.regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}  # Keras 2's l1_l2()
    assert K.constraints.get("non_neg")(np.array([-1.0, 1.0])).tolist() == [0.0, 1.0]
    for module, bad in ((K.initializers, "glorot"), (K.regularizers, "l3"), (K.constraints, "nonneg"),
                        (K.activations, "Relu")):
        with pytest.raises(ValueError, match="Could not interpret"):
            module.get(bad)
    layer = K.Conv1D(2, 3, kernel_initializer=lambda shape, dtype=None: np.full(shape, 0.5, dtype),
                     bias_initializer=K.initializers.Constant(0.25))
    layer.build((1, 4, 2))
    assert (layer.get_weights()[0] == 0.5).all() and (layer.get_weights()[1] == 0.25).all()


def test_custom_activations(rng):
    x = rng.standard_normal((1, 5, 1)).astype(np.float32)
    forward_only = K.Conv1D(2, 3, activation=np.abs)
    y = forward_only(x)
    assert (y >= 0).all()
    with pytest.raises(TypeError, match="has no gradient"):
        forward_only.backward(np.ones_like(y))
    square = K.activations.Activation("square", np.square, lambda x, y, gy: 2 * x * gy)
    layer = K.Conv1D(2, 3, activation=square)
    layer.build(x.shape)
    layer.set_weights(forward_only.get_weights())
    pre = K.Conv1D.from_config(dict(layer.get_config(), activation=None))
    pre.build(x.shape)
    pre.set_weights(forward_only.get_weights())
    z = pre(x)
    np.testing.assert_allclose(layer(x), z ** 2, rtol=1e-6)
    gx = layer.backward(np.ones_like(z))
    np.testing.assert_allclose(gx, pre.backward(2 * z), rtol=1e-5)


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=IDS)
def test_kernels_are_read_in_place_and_writes_are_seen(name, args, kwargs, shape, rng):
    """The engine reads each kernel where it lies (no per-call re-layout), so a value written
    into a kernel in place is the value the next call uses."""
    layer = _layer(name, args, kwargs)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    for stage in layer._stages:
        kernel = getattr(layer, stage.kernel)
        assert np.shares_memory(torch_weight(kernel, stage.depthwise), kernel)
    fresh = type(layer).from_config(layer.get_config())
    fresh.build(shape)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
    fresh.set_weights(new)
    for weight, value in zip(layer.weights, new):
        weight[...] = value  # in place, as a user or an optimizer writes
    np.testing.assert_array_equal(layer(x), fresh(x))
    assert not np.array_equal(layer(x), y)
    first = layer.weights[0]
    first *= 0  # an in-place product too
    assert not np.array_equal(layer(x), fresh(x))


def test_an_assigned_kernel_is_used():
    """A kernel replaced by a new Parameter (contiguous, Keras's layout) is read as it is."""
    layer = K.Conv1D(1, 2, use_bias=False)
    layer.build((1, 4, 1))
    layer.kernel = nn.Parameter(np.ones((2, 1, 1), np.float32))
    np.testing.assert_array_equal(layer(np.arange(4, dtype=np.float32).reshape(1, 4, 1)).ravel(), [1, 3, 5])


def test_spec_refusals_in_keras_words():
    """The spec owns the shape rules; the Keras face says its refusals as Keras does (the same
    structured error: rule, dim, numbers)."""
    with pytest.raises(npconv.spec_errors.ConvRuleError, match=r"Computed output size would be zero") as info:
        K.Conv2D(4, 5)(np.zeros((1, 4, 8, 2), np.float32))
    assert (info.value.rule, info.value.dim, info.value.numbers["effective"]) == ("kernel_fits", 0, 5)
    assert K.Conv2D(4, 5).compute_output_shape((None, None, 8, 2)) == (None, None, 4, 4)
    with pytest.raises(ValueError, match=r"The `kernel_size` argument must be a tuple of 2 integers") as info:
        K.Conv2D(4, 3.0)  # the spec's type refusal, a ValueError as in Keras
    assert info.value.rule == "tuple_type"
    with pytest.raises(ValueError, match=r"including values \[0\] that do not satisfy `value > 0`"):
        K.Conv2D(4, (3, 0))
    with pytest.raises(ValueError, match=r"tuple of 2 integers. Received kernel_size=\(3,\)"):
        K.Conv2D(4, (3,))  # Keras broadcasts a bare int only
    with pytest.raises(ValueError, match=r"input channels must be evenly divisible .* \(full input shape is"):
        K.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3), np.float32))


def test_geometry_shape_rules():
    """The docstring's rules, as invariants over a small grid."""
    for size, k, s, d in [(7, 3, 2, 1), (6, 3, 2, 1), (5, 4, 3, 1), (9, 3, 1, 2), (1, 5, 2, 1)]:
        ek = d * (k - 1) + 1
        assert geometry.conv_output_spatial((size,), (k,), (s,), "same", (d,)) == (-(-size // s),)
        assert geometry.conv_output_spatial((size,), (k,), (s,), "causal", (d,)) == (-(-size // s),)
        if size >= ek:
            assert geometry.conv_output_spatial((size,), (k,), (s,), "valid", (d,)) == ((size - ek) // s + 1,)
        for padding, op in itertools.product(("valid", "same"), (None,) + tuple(range(s))):
            pads, extra = geometry.transposed_pads((k,), (s,), padding, None if op is None else (op,), (d,))
            (lo, hi), = pads
            out = (size - 1) * s - lo - hi + ek + extra[0]
            assert (out,) == geometry.transposed_output_spatial((size,), (k,), (s,), padding,
                                                                None if op is None else (op,), (d,))
            assert lo >= 0 and hi >= 0 and 0 <= extra[0] < max(s, d)



def test_empty_spatial_sizes_give_empty_outputs_with_same_padding():
    """Keras's compute_output_shape: ceil(0 / stride) = 0 for 'same' and 'causal'; 'valid' refuses."""
    assert K.Conv2D(4, 3, padding="same", strides=2).compute_output_shape((1, 0, 5, 3)) == (1, 0, 3, 4)
    assert K.Conv1D(4, 3, padding="causal").compute_output_shape((2, 0, 3)) == (2, 0, 4)
    with pytest.raises(ValueError, match="zero or negative"):
        K.Conv2D(4, 3).compute_output_shape((1, 0, 5, 3))


def test_asyncio_tasks_share_the_count_and_get_distinct_names():
    import asyncio

    async def make():
        return K.Conv2D(2, 3).name

    async def three():
        return await asyncio.gather(make(), make(), make())

    assert sorted(asyncio.run(three())) == ["conv2d", "conv2d_1", "conv2d_2"]
