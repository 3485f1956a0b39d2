"""What every Keras convolution layer shares: arguments, building, weights, the call and its
backward (the config is ``npconv.keras.config``, the training hooks ``npconv.keras.training``).

A layer kind (``npconv.keras.layers``) gives its Keras constructor and passes its arguments
by name to :class:`KerasConv`; it declares its weights (``weight_options``, see
``npconv.keras.training``) and says how to run (``_build_stages``: one engine call per stage).
The config keys are the kind's constructor arguments (``npconv.keras.config``).

Layouts (Keras's): inputs ``(N, *spatial, C)`` (channels_last, the default) or
``(N, C, *spatial)``; kernels as in ``npconv.keras.kernels``.  The input moves to
channels-first as a view and each kernel is read in the engine's layout, so every number is
computed by the same engine as ``npconv.nn``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .. import core, grad
from ..arrays import as_real_array
from ..nn.module import Module, Parameter, accumulate_grad
from ..spec import ConvSpec
from . import activations, geometry, initializers, regularizers
from .kernels import keras_kernel, keras_view_parameter, torch_weight
from .naming import unique_name
from .config import KerasConfig
from .registry import snake_case
from .training import TrainingHooks, WeightOptions

__all__ = ["KerasConv", "Stage", "DTYPES"]

DTYPES = ("float32", "float64")
NO_COMPLEX = "Keras has no complex convolution"  # why its face refuses complex (npconv.nn's conv modules take it)


@dataclass(frozen=True)
class Stage:
    """One call of the engine: its spec, the Keras kernel it uses and the bias it adds (or None).

    Attributes
    ----------
    spec : ConvSpec
        The engine call's settings.
    kernel : str
        The layer attribute holding the Keras kernel.
    bias : str or None
        The layer attribute holding the bias added, if any.
    depthwise : bool
        A ``(*k, C_in, M)`` kernel run as groups = C_in.
    """

    spec: ConvSpec
    kernel: str
    bias: str | None = None
    depthwise: bool = False


def _layer_dtype(dtype: Any) -> str:
    """'float32' (Keras's default policy) or 'float64'; a Keras DTypePolicy config is read."""
    if isinstance(dtype, dict):  # a real Keras layer's get_config() holds a DTypePolicy dict
        dtype = dtype.get("config", {}).get("name")
    name = "float32" if dtype is None else np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (npconv.keras runs float32 and float64 layers; "
                         f"{NO_COMPLEX}), got dtype={dtype!r}")
    return name


class KerasConv(KerasConfig, TrainingHooks, Module):
    """What every Keras convolution layer shares: building, weights, the call and its backward.

    A kind sets ``rank``, ``weight_options`` and the methods marked "kind", and calls
    ``super().__init__(locals())`` from its Keras constructor.

    Parameters
    ----------
    arguments : dict
        The kind's constructor arguments by name, ``kwargs`` among them (``name``,
        ``trainable``, ``dtype``; any other keyword is refused, as Keras does).

    Attributes
    ----------
    name : str
        The layer's name (automatic ones are counted per context, ``npconv.keras.naming``).
    trainable : bool
        False leaves the weights' gradients alone in backward.
    dtype : str
        'float32' or 'float64'.
    built : bool
        Whether the weights exist (after the first call or :meth:`build`).
    kernel_size, strides, dilation_rate : tuple of int
    padding, data_format : str
    activation : npconv.keras.activations.Activation

    Raises
    ------
    ValueError
        An unknown keyword, a dtype other than float32/float64, or an argument Keras refuses.
    """

    rank = 2
    filters: int

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__()
        extra = dict(arguments.get("kwargs") or {})
        name, trainable, dtype = extra.pop("name", None), extra.pop("trainable", True), extra.pop("dtype", None)
        if extra:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {extra}")
        self._take_geometry(arguments)
        self.activation = activations.get(arguments["activation"])
        self.use_bias = bool(arguments["use_bias"])
        self.activity_regularizer = regularizers.get(arguments["activity_regularizer"])
        self.name = name or unique_name(snake_case(type(self).__name__))  # Keras's auto_name
        self.trainable, self.dtype = bool(trainable), _layer_dtype(dtype)
        self.built = False
        self._stages: tuple[Stage, ...] = ()
        self._saved: tuple[list[np.ndarray], np.ndarray, np.ndarray] | None = None
        self._activity_losses = []
        self._take_kind_arguments(arguments)
        self._take_weight_options(arguments)

    def _take_geometry(self, arguments: Mapping[str, Any]) -> None:
        layer = type(self).__name__
        self.kernel_size = geometry.keras_ntuple(arguments["kernel_size"], self.rank, "kernel_size")
        self.strides = geometry.keras_ntuple(arguments["strides"], self.rank, "strides")
        self.dilation_rate = geometry.keras_ntuple(arguments["dilation_rate"], self.rank, "dilation_rate")
        self.padding = geometry.standardize_padding(arguments["padding"], self._allows_causal(), layer)
        self.data_format = geometry.standardize_data_format(arguments["data_format"], layer)

    # ---- kind: what differs between Conv, Conv*Transpose, Depthwise and Separable ----------
    @classmethod
    def _allows_causal(cls) -> bool:
        return False

    def _take_kind_arguments(self, arguments: Mapping[str, Any]) -> None:
        """Check and keep the arguments only this kind has (filters, groups, ...)."""

    def _check_channels(self, channels: int, input_shape: Sequence[int | None]) -> None:
        """Refuse input channels the layer cannot take (groups)."""

    def _kernel_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        """The kernels' names and shapes (the bias, when used, is ``(output channels,)``)."""
        raise NotImplementedError

    def _build_stages(self, channels: int) -> tuple[Stage, ...]:
        raise NotImplementedError

    def _output_channels(self, channels: int | None) -> int | None:
        return self.filters

    @property
    def _bias_name(self) -> str | None:
        return "bias" if self.use_bias else None

    def _output_spatial(self, in_spatial: Sequence[int | None]) -> tuple[int | None, ...]:
        return geometry.conv_output_spatial(in_spatial, self.kernel_size, self.strides, self.padding,
                                            self.dilation_rate, type(self).__name__)

    # ---- shapes and building -----------------------------------------------------------
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _check_rank(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        shape = tuple(input_shape)
        if len(shape) != self.rank + 2:
            layout = "(batch, *spatial, channels)" if self.data_format == "channels_last" else \
                "(batch, channels, *spatial)"
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                             f"ndim={self.rank + 2} {layout}, found ndim={len(shape)}. Full shape "
                             f"received: {shape}")
        return shape

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """Keras's output shape for an input shape (None sizes stay None).

        Parameters
        ----------
        input_shape : sequence of int or None
            ``(batch, *spatial, channels)`` (channels_last) or ``(batch, channels, *spatial)``.

        Returns
        -------
        tuple of int or None

        Raises
        ------
        ValueError
            What Keras refuses: another rank, or an output size below 1.
        """
        shape = self._check_rank(input_shape)
        axis = self._channel_axis()
        spatial = shape[1:-1] if axis == -1 else shape[2:]
        out_spatial = self._output_spatial(spatial)
        channels = self._output_channels(shape[axis])
        return (shape[0],) + (out_spatial + (channels,) if axis == -1 else (channels,) + out_spatial)

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create the weights for inputs of this shape (only the channel count must be known).

        Parameters
        ----------
        input_shape : sequence of int or None
            With the layer's rank + 2 dims.

        Raises
        ------
        ValueError
            An unknown channel count, another rank, or channels the layer cannot take.
        """
        shape = self._check_rank(input_shape)
        channels = shape[self._channel_axis()]
        if channels is None:
            raise ValueError(f"{type(self).__name__}: the channel dimension of the input must be known to "
                             f"build the layer, got input shape {shape}")
        channels = cast(int, channels)
        self._check_channels(channels, shape)
        self.compute_output_shape(shape)
        stages = self._build_stages(channels)
        shapes = self._kernel_shapes(channels)
        if self.use_bias:
            shapes["bias"] = (cast(int, self._output_channels(channels)),)
        depthwise = {stage.kernel for stage in stages if stage.depthwise}
        for option in self.weight_options:
            if option.weight in shapes:
                self._create_weight(option, shapes[option.weight], option.weight in depthwise)
        self._stages, self.input_channels, self.built = stages, channels, True

    def _create_weight(self, option: WeightOptions, shape: Sequence[int], depthwise: bool) -> None:
        """A weight drawn by its initializer; kernels are kept in the engine's layout."""
        shape = tuple(shape)
        initializer = getattr(self, option.initializer) or initializers.GlorotUniform()
        values = np.asarray(initializer(shape, dtype=self.dtype), dtype=self.dtype)
        if values.shape != shape:
            raise ValueError(f"{type(self).__name__}: {option.initializer} returned shape {values.shape} "
                             f"for weight {option.weight!r} of shape {shape}")
        param = Parameter(values) if values.ndim == 1 else keras_view_parameter(values, depthwise)
        param.constraint = getattr(self, option.constraint)  # npconv.optim applies it after a step
        setattr(self, option.weight, param)

    # ---- weights -----------------------------------------------------------------------
    @property
    def weights(self) -> list[Parameter]:
        """The weights in Keras's order (empty until built)."""
        return [cast(Parameter, self._parameters[o.weight]) for o in self.weight_options
                if o.weight in self._parameters]

    @property
    def trainable_weights(self) -> list[Parameter]:
        """:attr:`weights` when trainable, else empty."""
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        """:attr:`weights` when not trainable, else empty."""
        return [] if self.trainable else self.weights

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as C-ordered arrays, in Keras's order.

        Returns
        -------
        list of numpy.ndarray
            Kernels in Keras's layouts, then the bias.
        """
        return [np.array(w, order="C") for w in self.weights]

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None:
        """Copy arrays into the weights (Keras's order); counts and shapes checked first.

        Parameters
        ----------
        weights : sequence of array_like
            As :meth:`get_weights` gives them (a real Keras layer's work too).

        Raises
        ------
        ValueError
            An unbuilt layer, another number of arrays, or a shape that differs.
        """
        own = self.weights
        if not self.built:
            raise ValueError(f"You called `set_weights(weights)` on layer '{self.name}', which is not built "
                             f"yet: call it on an input or `build(input_shape)` first")
        if len(own) != len(weights):
            raise ValueError(f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                             f"of length {len(weights)}, but the layer was expecting {len(own)} weights.")
        for option, param, value in zip(self.weight_options, own, weights):
            if np.shape(value) != param.shape:
                raise ValueError(f"Layer {self.name} weight shape {param.shape} is not compatible with "
                                 f"provided weight shape {np.shape(value)} (weight {option.weight!r}).")
        for option, value in zip(self.weight_options, weights):
            as_real_array(value, f"weight {option.weight!r}", f"{type(self).__name__}.set_weights",
                          why="Keras has no complex convolution")
        for param, value in zip(own, weights):
            param[...] = np.asarray(value, dtype=param.dtype)

    def count_params(self) -> int:
        """The number of weight elements.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            An unbuilt layer.
        """
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                             f"built. You can build it manually via: `layer.build(input_shape)`.")
        return sum(int(w.size) for w in self.weights)

    # ---- the call and its backward ------------------------------------------------------
    def _to_engine(self, x: np.ndarray) -> np.ndarray:
        """(N, *s, C) -> (N, C, *s) for channels_last, as a view: the engine reads channels-last
        memory as it is and answers in it (npconv.core.forward); channels_first passes through."""
        return np.moveaxis(x, -1, 1) if self.data_format == "channels_last" else x

    def _from_engine(self, y: np.ndarray) -> np.ndarray:
        """(N, C, *s) -> (N, *s, C): no copy where the engine answered channels-last."""
        return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if self.data_format == "channels_last" else y

    def _prepare_input(self, inputs: npt.ArrayLike) -> np.ndarray:
        x = as_real_array(inputs, "inputs", type(self).__name__, why=NO_COMPLEX).astype(self.dtype, copy=False)
        if not self.built:
            self.build(x.shape)
        shape, axis = self._check_rank(x.shape), self._channel_axis()
        if shape[axis] != self.input_channels:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected axis "
                             f"{axis} of input shape to have value {self.input_channels}, but received "
                             f"input with shape {shape}")
        self.compute_output_shape(shape)  # Keras's refusals before any arithmetic
        return x

    def forward(self, inputs: npt.ArrayLike) -> np.ndarray:
        """activation(conv(inputs, kernel) + bias), built on the first call.

        Parameters
        ----------
        inputs : array_like
            ``(batch, *spatial, channels)`` (channels_last) or ``(batch, channels, *spatial)``.

        Returns
        -------
        numpy.ndarray
            In the same layout, with Keras's output sizes, in the layer's dtype.

        Raises
        ------
        ValueError
            Another rank or channel count than the layer was built for, or what Keras refuses.
        """
        x = self._to_engine(self._prepare_input(inputs))
        saved: list[np.ndarray] = []
        for stage in self._stages:
            saved.append(x)
            bias = None if stage.bias is None else getattr(self, stage.bias)
            x = core.apply(stage.spec, x, torch_weight(getattr(self, stage.kernel), stage.depthwise), bias)
        pre = self._from_engine(x)
        out = self.activation(pre)
        self._saved = (saved, pre, out)
        self._record_activity_penalty(out)
        return out

    def backward(self, grad_output: npt.ArrayLike, include_regularization: bool = False) -> np.ndarray:
        """d loss / d inputs of the last call; adds each weight's gradient into ``weight.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.
        include_regularization : bool, default False
            Add the gradients of ``sum(self.losses)`` too (the activity penalty through the
            output, the weight penalties onto the weights).

        Returns
        -------
        numpy.ndarray
            d loss / d inputs, in the last input's shape.

        Raises
        ------
        RuntimeError
            Called before the layer was called.
        ValueError
            ``grad_output`` not in the output's shape.
        """
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the layer was called")
        saved, pre, out = self._saved
        gy = as_real_array(grad_output, "grad_output", type(self).__name__, why=NO_COMPLEX)
        gy = gy.astype(self.dtype, copy=False)
        if gy.shape != out.shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {gy.shape}, the "
                             f"output had shape {out.shape}")
        if include_regularization:
            gy = self._with_activity_penalty_grad(gy, out)
        gy = self._to_engine(self.activation.backward(pre, gy, out).astype(self.dtype, copy=False))
        for stage, x in zip(reversed(self._stages), reversed(saved)):
            gy = self._stage_backward(stage, x, gy)
        if include_regularization:
            self._add_penalty_grads()
        return self._from_engine(gy)

    def _stage_backward(self, stage: Stage, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
        """Weight and bias gradients of one stage (added; none when the layer is not trainable,
        so optimizers leave frozen weights alone), and the gradient of its input."""
        kernel = getattr(self, stage.kernel)
        if self.trainable:
            gw = grad.weight_grad(stage.spec, x, gy, stage.spec.kernel_size)
            accumulate_grad(kernel, keras_kernel(gw, kernel.shape))
            if stage.bias is not None:
                accumulate_grad(getattr(self, stage.bias), grad.bias_grad(gy))
        w = torch_weight(kernel, stage.depthwise)
        return grad.input_grad(stage.spec, x.shape[2:], w, gy).astype(self.dtype, copy=False)
