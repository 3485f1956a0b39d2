"""Keras 3's convolution layers running on npconv's engine (``npconv.core.apply``).

One base class, :class:`KerasConv`, owns building, weights, the forward and the backward;
four small kinds say what differs (weights and the engine calls, "stages"), and the ten
public classes only fix the number of spatial dims.

Layouts (Keras's, exactly): inputs ``(N, *spatial, C)`` (channels_last, the default) or
``(N, C, *spatial)``; weights

- Conv:           ``kernel (*k, C_in/groups, filters)``, ``bias (filters,)``;
- Conv*Transpose: ``kernel (*k, filters, C_in)``, ``bias (filters,)``;
- Depthwise:      ``kernel (*k, C_in, depth_multiplier)``, ``bias (C_in*depth_multiplier,)``;
- Separable:      ``depthwise_kernel (*k, C_in, depth_multiplier)``,
  ``pointwise_kernel (1.., C_in*depth_multiplier, filters)``, ``bias (filters,)``.

At the boundary the input moves to channels_first and each Keras kernel to PyTorch's weight
layout (conv ``(C_out, C_in/groups, *k)``, transposed ``(C_in, C_out, *k)``; depthwise output
channel ``c*M + m`` comes from input channel ``c``), so every number is computed by the same
engine as ``npconv.nn``.  Output sizes are Keras's (``npconv.keras.geometry``).

>>> import numpy as np, npconv.keras as K
>>> layer = K.Conv2D(4, 3, strides=2, padding="same", activation="relu")
>>> layer(np.ones((1, 7, 7, 2), np.float32)).shape, [w.shape for w in layer.get_weights()]
((1, 4, 4, 4), [(3, 3, 2, 4), (4,)])
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .. import core, grad
from ..arrays import as_real_array
from ..nn.module import Module, Parameter, accumulate_grad
from ..spec import ConvSpec
from . import activations, constraints, geometry, initializers, regularizers

__all__ = ["KerasConv", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
           "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]

_NAMES_USED = collections.Counter()
DTYPES = ("float32", "float64")


def unique_name(prefix: str) -> str:
    """Keras's automatic names: 'conv2d', then 'conv2d_1', 'conv2d_2', ..."""
    count = _NAMES_USED[prefix]
    _NAMES_USED[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


@dataclass(frozen=True)
class Stage:
    """One call of the engine: its spec, the Keras kernel it uses and the bias it adds (or None);
    ``depthwise`` marks a ``(*k, C_in, M)`` kernel run as groups = C_in."""

    spec: ConvSpec
    kernel: str
    bias: str | None = None
    depthwise: bool = False


def torch_weight(kernel, depthwise: bool = False) -> np.ndarray:
    """Keras kernel -> PyTorch weight: conv ``(*k, C_in/g, F) -> (F, C_in/g, *k)``, transposed
    ``(*k, F, C_in) -> (C_in, F, *k)`` (the same axis order), depthwise ``(*k, C_in, M) ->
    (C_in*M, 1, *k)``."""
    kernel = np.asarray(kernel)
    if depthwise:
        kernel = kernel.reshape(kernel.shape[:-2] + (1, -1))
    n = kernel.ndim - 2
    return np.ascontiguousarray(kernel.transpose((n + 1, n) + tuple(range(n))))


def keras_kernel(weight, keras_shape) -> np.ndarray:
    """The inverse of :func:`torch_weight`: a PyTorch-layout array in the Keras kernel's shape."""
    weight = np.asarray(weight)
    n = weight.ndim - 2
    return np.ascontiguousarray(weight.transpose(tuple(range(2, n + 2)) + (1, 0))).reshape(keras_shape)


def _layer_dtype(dtype) -> str:
    """'float32' (Keras's default policy) or 'float64'; a Keras DTypePolicy config is read."""
    if isinstance(dtype, dict):  # a real Keras layer's get_config() holds a DTypePolicy dict
        dtype = dtype.get("config", {}).get("name")
    name = "float32" if dtype is None else np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (npconv.keras runs float32 and float64 layers), "
                         f"got dtype={dtype!r}")
    return name


class KerasConv(Module):
    """What every Keras convolution layer shares.  Subclasses set ``rank``, ``_config_keys``
    (Keras's config order), ``_weight_options`` (weight name -> option prefix, in Keras's
    weight order, the bias last) and the methods marked "kind"."""

    rank = 2
    prefix = "conv"
    _config_keys: tuple = ()
    _weight_options: dict = {"kernel": "kernel", "bias": "bias"}

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                 activity_regularizer, name=None, trainable=True, dtype=None, **kwargs):
        super().__init__()
        layer = type(self).__name__
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {layer}: {kwargs}")
        self.kernel_size = geometry.standardize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = geometry.standardize_tuple(strides, self.rank, "strides")
        self.dilation_rate = geometry.standardize_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = geometry.standardize_padding(padding, self._allows_causal(), layer)
        self.data_format = geometry.standardize_data_format(data_format, layer)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.name = name or unique_name(f"{self.prefix}{self.rank}d{self._name_suffix()}")
        self.trainable, self.dtype = bool(trainable), _layer_dtype(dtype)
        self.built, self._stages, self._saved, self._activity_losses = False, (), None, []

    @classmethod
    def _name_suffix(cls) -> str:
        return ""

    @classmethod
    def _allows_causal(cls) -> bool:
        return False

    def _set_weight_options(self, **options) -> None:
        """prefix=(initializer, regularizer, constraint) -> the Keras attributes of that name."""
        for prefix, (initializer, regularizer, constraint) in options.items():
            setattr(self, f"{prefix}_initializer", initializers.get(initializer))
            setattr(self, f"{prefix}_regularizer", regularizers.get(regularizer))
            setattr(self, f"{prefix}_constraint", constraints.get(constraint))

    # ---- kind: what differs between Conv, Conv*Transpose, Depthwise and Separable ----------
    def _check_channels(self, channels: int, input_shape) -> None:
        """Refuse input channels the layer cannot take (groups)."""

    def _kernel_shapes(self, channels: int) -> dict:
        """The kernels' names and shapes (the bias, when used, is ``(output channels,)``)."""
        raise NotImplementedError

    def _build_stages(self, channels: int) -> tuple:
        raise NotImplementedError

    def _output_channels(self, channels: int) -> int:
        return self.filters

    @property
    def _bias_name(self) -> str | None:
        return "bias" if self.use_bias else None

    def _output_spatial(self, in_spatial) -> tuple:
        return geometry.conv_output_spatial(in_spatial, self.kernel_size, self.strides, self.padding,
                                            self.dilation_rate, type(self).__name__)

    # ---- shapes and building -----------------------------------------------------------
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _check_rank(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        if len(shape) != self.rank + 2:
            layout = "(batch, *spatial, channels)" if self.data_format == "channels_last" else \
                "(batch, channels, *spatial)"
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                             f"ndim={self.rank + 2} {layout}, found ndim={len(shape)}. Full shape "
                             f"received: {shape}")
        return shape

    def compute_output_shape(self, input_shape) -> tuple:
        """Keras's output shape for an input shape (None sizes stay None); refuses what Keras refuses."""
        shape = self._check_rank(input_shape)
        axis = self._channel_axis()
        spatial = shape[1:-1] if axis == -1 else shape[2:]
        out_spatial = self._output_spatial(spatial)
        channels = self._output_channels(shape[axis])
        return (shape[0],) + (out_spatial + (channels,) if axis == -1 else (channels,) + out_spatial)

    def build(self, input_shape) -> None:
        """Create the weights for inputs of this shape (only the channel count must be known)."""
        shape = self._check_rank(input_shape)
        channels = shape[self._channel_axis()]
        if channels is None:
            raise ValueError(f"{type(self).__name__}: the channel dimension of the input must be known to "
                             f"build the layer, got input shape {shape}")
        self._check_channels(channels, shape)
        self.compute_output_shape(shape)
        shapes = self._kernel_shapes(channels)
        if self.use_bias:
            shapes["bias"] = (self._output_channels(channels),)
        for name, weight_shape in shapes.items():
            self._create_weight(name, weight_shape)
        self._stages, self.input_channels, self.built = self._build_stages(channels), channels, True

    def _create_weight(self, name: str, shape) -> None:
        prefix = self._weight_options[name]
        initializer = getattr(self, f"{prefix}_initializer") or initializers.GlorotUniform()
        param = Parameter(np.asarray(initializer(tuple(shape), dtype=self.dtype), dtype=self.dtype))
        if param.shape != tuple(shape):
            raise ValueError(f"{type(self).__name__}: {prefix}_initializer returned shape {param.shape} "
                             f"for weight {name!r} of shape {tuple(shape)}")
        param.constraint = getattr(self, f"{prefix}_constraint")  # npconv.optim applies it after a step
        setattr(self, name, param)

    # ---- weights -----------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """The weights in Keras's order (empty until built)."""
        return [self._parameters[n] for n in self._weight_options if n in self._parameters]

    @property
    def trainable_weights(self) -> list:
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        return [] if self.trainable else self.weights

    def get_weights(self) -> list:
        """Copies of the weights as arrays, in Keras's order."""
        return [np.array(w) for w in self.weights]

    def set_weights(self, weights) -> None:
        """Copy arrays into the weights (Keras's order); counts and shapes checked first."""
        own = self.weights
        if not self.built:
            raise ValueError(f"You called `set_weights(weights)` on layer '{self.name}', which is not built "
                             f"yet: call it on an input or `build(input_shape)` first")
        if len(own) != len(weights):
            raise ValueError(f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                             f"of length {len(weights)}, but the layer was expecting {len(own)} weights.")
        for name, param, value in zip(self._weight_options, own, weights):
            if np.shape(value) != param.shape:
                raise ValueError(f"Layer {self.name} weight shape {param.shape} is not compatible with "
                                 f"provided weight shape {np.shape(value)} (weight {name!r}).")
        for param, value in zip(own, weights):
            param[...] = np.asarray(value, dtype=param.dtype)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                             f"built. You can build it manually via: `layer.build(input_shape)`.")
        return sum(int(w.size) for w in self.weights)

    # ---- forward and backward -------------------------------------------------------------
    def _to_engine(self, x) -> np.ndarray:
        """(N, *s, C) -> (N, C, *s) for channels_last, as a view: the engine reads channels-last
        memory as it is and answers in it (npconv.core.forward); channels_first passes through."""
        return np.moveaxis(x, -1, 1) if self.data_format == "channels_last" else x

    def _from_engine(self, y) -> np.ndarray:
        """(N, C, *s) -> (N, *s, C): no copy where the engine answered channels-last."""
        return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if self.data_format == "channels_last" else y

    def _prepare_input(self, inputs) -> np.ndarray:
        x = as_real_array(inputs, "inputs", type(self).__name__).astype(self.dtype, copy=False)
        if not self.built:
            self.build(x.shape)
        shape, axis = self._check_rank(x.shape), self._channel_axis()
        if shape[axis] != self.input_channels:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected axis "
                             f"{axis} of input shape to have value {self.input_channels}, but received "
                             f"input with shape {shape}")
        self.compute_output_shape(shape)  # Keras's refusals before any arithmetic
        return x

    def forward(self, inputs) -> np.ndarray:
        """activation(conv(inputs, kernel) + bias), built on the first call."""
        x = self._to_engine(self._prepare_input(inputs))
        saved = []
        for stage in self._stages:
            saved.append(x)
            bias = None if stage.bias is None else getattr(self, stage.bias)
            x = core.apply(stage.spec, x, torch_weight(getattr(self, stage.kernel), stage.depthwise), bias)
        pre = self._from_engine(x)
        out = self.activation(pre)
        self._saved = (saved, pre, out)
        self._activity_losses = [] if self.activity_regularizer is None else \
            [regularizers.penalty(self.activity_regularizer, out) / out.shape[0]]
        return out

    def backward(self, grad_output, include_regularization: bool = False) -> np.ndarray:
        """d loss / d inputs of the last call; adds each weight's gradient into ``weight.grad``.

        With ``include_regularization`` the gradients of ``sum(self.losses)`` are added too
        (the activity penalty through the output, the weight penalties onto the weights)."""
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the layer was called")
        saved, pre, out = self._saved
        gy = as_real_array(grad_output, "grad_output", type(self).__name__).astype(self.dtype, copy=False)
        if gy.shape != out.shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {gy.shape}, the "
                             f"output had shape {out.shape}")
        if include_regularization and self.activity_regularizer is not None:
            gy = gy + regularizers.penalty_grad(self.activity_regularizer, out) / out.shape[0]
        gy = self._to_engine(self.activation.backward(pre, gy, out).astype(self.dtype, copy=False))
        for stage, x in zip(reversed(self._stages), reversed(saved)):
            gy = self._stage_backward(stage, x, gy)
        if include_regularization:
            self._add_penalty_grads()
        return self._from_engine(gy)

    def _stage_backward(self, stage: Stage, x, gy) -> np.ndarray:
        """Weight and bias gradients of one stage (added; none when the layer is not trainable,
        so optimizers leave frozen weights alone), and the gradient of its input."""
        kernel = getattr(self, stage.kernel)
        w = torch_weight(kernel, stage.depthwise)
        if self.trainable:
            gw = grad.weight_grad(stage.spec, x, gy, stage.spec.kernel_size)
            accumulate_grad(kernel, keras_kernel(gw, kernel.shape))
            if stage.bias is not None:
                accumulate_grad(getattr(self, stage.bias), grad.bias_grad(gy))
        return grad.input_grad(stage.spec, x.shape[2:], w, gy).astype(self.dtype, copy=False)

    def _regularized_weights(self):
        """(weight, its regularizer) for each trainable weight that has one, in Keras's order."""
        if not self.trainable:
            return
        for name, prefix in self._weight_options.items():
            regularizer = getattr(self, f"{prefix}_regularizer")
            if regularizer is not None and self._parameters.get(name) is not None:
                yield self._parameters[name], regularizer

    def _add_penalty_grads(self) -> None:
        for param, regularizer in self._regularized_weights():
            accumulate_grad(param, regularizers.penalty_grad(regularizer, np.asarray(param)))

    @property
    def losses(self) -> list:
        """The activity penalty of the last call (divided by its batch size), then each trainable
        weight's penalty, as floats (Keras's order)."""
        penalties = [regularizers.penalty(reg, np.asarray(param)) for param, reg in self._regularized_weights()]
        return list(self._activity_losses) + penalties

    # ---- config -------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Keras's keys in Keras's order; initializers, regularizers and constraints in Keras's
        dict form, so ``keras.layers.<Same>.from_config`` accepts it too.  As in Keras, a set
        activity_regularizer comes right after dtype (Keras's base Layer writes it there first)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = None  # the position; the value is written below
        for key in self._config_keys:
            config[key] = _serialize(key, getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config: dict):
        """A new, unbuilt layer from :meth:`get_config` (ours or a real Keras layer's)."""
        return cls(**config)

    def extra_repr(self) -> str:
        fields = [f"name={self.name!r}"] + [f"{key}={getattr(self, key)!r}" for key in
                                            ("filters", "depth_multiplier", "kernel_size", "strides", "padding")
                                            if key in self._config_keys]
        if self.data_format != "channels_last":
            fields.append(f"data_format={self.data_format!r}")
        return ", ".join(fields + [f"built={self.built}"])


def _serialize(key: str, value):
    for suffix, module in (("_initializer", initializers), ("_regularizer", regularizers),
                           ("_constraint", constraints)):
        if key.endswith(suffix):
            return module.serialize(value)
    return activations.serialize(value) if key == "activation" else value


# ---- the four kinds ------------------------------------------------------------------------

class _Conv(KerasConv):
    """Keras's Conv1D/2D/3D: kernel ``(*k, C_in/groups, filters)``, bias ``(filters,)``.

    out = floor((in - ek) / s) + 1 ('valid'), ceil(in / s) ('same'; 'causal' for Conv1D), with
    ek = dilation * (k - 1) + 1; strides > 1 with dilation > 1 is refused, as Keras refuses it.

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2D(8, 3, strides=2, padding="same", groups=2)
    >>> layer(np.zeros((1, 7, 6, 4), np.float32)).shape, layer.kernel.shape
    ((1, 4, 3, 8), (3, 3, 2, 8))
    """

    _config_keys = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                    "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint")
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        layer = type(self).__name__
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         activity_regularizer, **kwargs)
        self.filters = geometry.check_positive(filters, "filters", layer)
        self.groups = geometry.check_groups(groups, self.filters, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)
        self._set_weight_options(kernel=(kernel_initializer, kernel_regularizer, kernel_constraint),
                                 bias=(bias_initializer, bias_regularizer, bias_constraint))

    @classmethod
    def _allows_causal(cls) -> bool:
        return cls.rank == 1  # Conv1D only

    def _check_channels(self, channels, input_shape) -> None:
        geometry.check_input_channels(channels, self.groups, input_shape, type(self).__name__)

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (channels // self.groups, self.filters)}

    def _build_stages(self, channels) -> tuple:
        spec = ConvSpec.build(self.kernel_size, self.strides, self.padding, self.dilation_rate, self.groups,
                              ndim=self.rank, op=type(self).__name__)
        return (Stage(spec, "kernel", self._bias_name),)


class _ConvTranspose(KerasConv):
    """Keras's Conv1D/2D/3DTranspose (no groups): kernel ``(*k, filters, C_in)``, bias ``(filters,)``.

    out: 'valid' (in - 1) * s + max(ek, s), or (in - 1) * s + ek + output_padding when given;
    'same' in * s, or (in - 1) * s + ek % 2 + output_padding (``geometry.transposed_pads``).

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2DTranspose(3, 3, strides=2, padding="same")
    >>> layer(np.zeros((1, 4, 5, 2), np.float32)).shape, layer.kernel.shape
    ((1, 8, 10, 3), (3, 3, 3, 2))
    """

    prefix = "conv"
    _config_keys = ("filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
                    "dilation_rate", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                    "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                    "bias_constraint")
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        layer = type(self).__name__
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         activity_regularizer, **kwargs)
        self.filters = geometry.check_positive(filters, "filters", layer)
        self.output_padding = geometry.standardize_output_padding(output_padding, self.strides, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)
        self._set_weight_options(kernel=(kernel_initializer, kernel_regularizer, kernel_constraint),
                                 bias=(bias_initializer, bias_regularizer, bias_constraint))

    @classmethod
    def _name_suffix(cls) -> str:
        return "_transpose"

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (self.filters, channels)}

    def _build_stages(self, channels) -> tuple:
        pads, extra = geometry.transposed_pads(self.kernel_size, self.strides, self.padding,
                                               self.output_padding, self.dilation_rate)
        spec = ConvSpec.build(self.kernel_size, self.strides, pads, self.dilation_rate, 1, "zeros", True,
                              extra, ndim=self.rank, op=type(self).__name__)
        return (Stage(spec, "kernel", self._bias_name),)

    def _output_spatial(self, in_spatial) -> tuple:
        return geometry.transposed_output_spatial(in_spatial, self.kernel_size, self.strides, self.padding,
                                                  self.output_padding, self.dilation_rate)


class _DepthwiseConv(KerasConv):
    """Keras's DepthwiseConv1D/2D: kernel ``(*k, C_in, M)``, bias ``(C_in*M,)``; input channel c
    convolved with its own M = depth_multiplier filters gives output channels c*M .. c*M + M - 1
    (PyTorch's groups = C_in).  Sizes as Conv; Keras allows strides > 1 with dilation > 1 here.

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> layer(np.zeros((1, 5, 5, 3), np.float32)).shape, layer.kernel.shape
    ((1, 5, 5, 6), (3, 3, 3, 2))
    """

    prefix = "depthwise_conv"
    _config_keys = ("depth_multiplier", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                    "activation", "use_bias", "depthwise_initializer", "bias_initializer",
                    "depthwise_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_constraint",
                    "bias_constraint")
    _weight_options = {"kernel": "depthwise", "bias": "bias"}

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         activity_regularizer, **kwargs)
        self.depth_multiplier = geometry.check_positive(depth_multiplier, "depth_multiplier",
                                                        type(self).__name__)
        self._set_weight_options(depthwise=(depthwise_initializer, depthwise_regularizer, depthwise_constraint),
                                 bias=(bias_initializer, bias_regularizer, bias_constraint))

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (channels, self.depth_multiplier)}

    def _build_stages(self, channels) -> tuple:
        spec = ConvSpec.build(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                              ndim=self.rank, op=type(self).__name__)
        return (Stage(spec, "kernel", self._bias_name, depthwise=True),)

    def _output_channels(self, channels) -> int:
        return None if channels is None else channels * self.depth_multiplier


class _SeparableConv(KerasConv):
    """Keras's SeparableConv1D/2D: a depthwise conv (no bias), then a 1x1 conv to ``filters`` (with
    bias).  depthwise_kernel ``(*k, C_in, M)``, pointwise_kernel ``(1.., C_in*M, filters)``.

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.SeparableConv1D(4, 3, depth_multiplier=2)
    >>> layer(np.zeros((2, 9, 3), np.float32)).shape, [w.shape for w in layer.get_weights()]
    ((2, 7, 4), [(3, 3, 2), (1, 6, 4), (4,)])
    """

    prefix = "separable_conv"
    _config_keys = ("depth_multiplier", "filters", "kernel_size", "strides", "padding", "data_format",
                    "dilation_rate", "activation", "use_bias", "depthwise_initializer", "pointwise_initializer",
                    "bias_initializer", "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
                    "activity_regularizer", "depthwise_constraint", "pointwise_constraint", "bias_constraint")
    _weight_options = {"depthwise_kernel": "depthwise", "pointwise_kernel": "pointwise", "bias": "bias"}

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        layer = type(self).__name__
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         activity_regularizer, **kwargs)
        self.depth_multiplier = geometry.check_positive(depth_multiplier, "depth_multiplier", layer)
        self.filters = geometry.check_positive(filters, "filters", layer)
        self._set_weight_options(depthwise=(depthwise_initializer, depthwise_regularizer, depthwise_constraint),
                                 pointwise=(pointwise_initializer, pointwise_regularizer, pointwise_constraint),
                                 bias=(bias_initializer, bias_regularizer, bias_constraint))

    def _kernel_shapes(self, channels) -> dict:
        return {"depthwise_kernel": self.kernel_size + (channels, self.depth_multiplier),
                "pointwise_kernel": (1,) * self.rank + (channels * self.depth_multiplier, self.filters)}

    def _build_stages(self, channels) -> tuple:
        layer = type(self).__name__
        depthwise = ConvSpec.build(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                                   ndim=self.rank, op=layer)
        pointwise = ConvSpec.build((1,) * self.rank, 1, 0, 1, 1, ndim=self.rank, op=layer)
        return (Stage(depthwise, "depthwise_kernel", None, depthwise=True),
                Stage(pointwise, "pointwise_kernel", self._bias_name))


def _layer_class(kind, rank: int, name: str):
    """A public class: the kind with its number of spatial dims, documented by the kind's doc."""
    doc = (f"``keras.layers.{name}`` on npconv's engine, with Keras 3's constructor arguments, order and "
           f"defaults.\n\n    {kind.__doc__}")
    return type(name, (kind,), {"rank": rank, "__module__": __name__, "__doc__": doc})


Conv1D, Conv2D, Conv3D = (_layer_class(_Conv, n, f"Conv{n}D") for n in (1, 2, 3))
Conv1DTranspose, Conv2DTranspose = (_layer_class(_ConvTranspose, n, f"Conv{n}DTranspose") for n in (1, 2))
DepthwiseConv1D, DepthwiseConv2D = (_layer_class(_DepthwiseConv, n, f"DepthwiseConv{n}D") for n in (1, 2))
SeparableConv1D, SeparableConv2D = (_layer_class(_SeparableConv, n, f"SeparableConv{n}D") for n in (1, 2))


class Conv3DTranspose(_ConvTranspose):
    """``keras.layers.Conv3DTranspose`` on npconv's engine; kernel (*k, filters, C_in).  Keras puts
    ``data_format`` before ``output_padding`` in this class only, and so does npconv."""

    rank = 3

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, output_padding=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
