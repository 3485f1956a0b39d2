"""Keras 3's convolution layers on npconv's engine: the four kinds and the ten public classes.

Each kind gives Keras's constructor (same arguments, order and defaults), its weights
(``weight_options``: ``npconv.keras.training``), its kernels' shapes and the engine calls
("stages"); :class:`~npconv.keras.base.KerasConv` does the rest.  The public classes only fix
the number of spatial dims.

- Conv:           ``kernel (*k, C_in/groups, filters)``, ``bias (filters,)``;
- Conv*Transpose: ``kernel (*k, filters, C_in)``, ``bias (filters,)``;
- Depthwise:      ``kernel (*k, C_in, depth_multiplier)``, ``bias (C_in*depth_multiplier,)``;
- Separable:      ``depthwise_kernel (*k, C_in, depth_multiplier)``,
  ``pointwise_kernel (1.., C_in*depth_multiplier, filters)``, ``bias (filters,)``.

Output sizes are Keras's (``npconv.keras.geometry``).

>>> import numpy as np, npconv.keras as K
>>> layer = K.Conv2D(4, 3, strides=2, padding="same", activation="relu")
>>> layer(np.ones((1, 7, 7, 2), np.float32)).shape, [w.shape for w in layer.get_weights()]
((1, 4, 4, 4), [(3, 3, 2, 4), (4,)])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..spec import ConvSpec
from . import geometry
from .base import KerasConv, Stage
from .kernels import keras_kernel, torch_weight  # noqa: F401 - the old import path
from .naming import unique_name  # noqa: F401 - the old import path
from .training import BIAS, DEPTHWISE_KERNEL, KERNEL, SEPARABLE_DEPTHWISE, SEPARABLE_POINTWISE

__all__ = ["KerasConv", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
           "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]
# also importable from here, as before the split: Stage, keras_kernel, torch_weight, unique_name


# ---- the four kinds ------------------------------------------------------------------------

class _Conv(KerasConv):
    """Keras's Conv1D/2D/3D: kernel ``(*k, C_in/groups, filters)``, bias ``(filters,)``.

    out = floor((in - ek) / s) + 1 ('valid'), ceil(in / s) ('same'; 'causal' for Conv1D), with
    ek the spec's effective kernel; strides > 1 with dilation > 1 is refused, as Keras refuses it.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or sequence of int
        The window's size (an int for every dim).
    strides : int or sequence of int, default 1
        Step between windows.
    padding : {'valid', 'same', 'causal'}, default 'valid'
        'valid' none; 'same' out = ceil(in / s), the odd pad after; 'causal' (Conv1D only)
        every pad before.
    data_format : {'channels_last', 'channels_first'} or None, default None
        Inputs ``(batch, *spatial, channels)`` (None: channels_last) or
        ``(batch, channels, *spatial)``.
    dilation_rate : int or sequence of int, default 1
        Spacing between kernel elements.
    groups : int, default 1
        Channel groups; must divide filters and the input's channels.
    activation : str, callable or None, default None
        A Keras activation name or callable (None: linear); :mod:`npconv.keras.activations`.
    use_bias : bool, default True
        Add a bias after the convolution.
    kernel_initializer, bias_initializer : str, dict or callable
        How the weights are drawn (defaults 'glorot_uniform' and 'zeros');
        :mod:`npconv.keras.initializers`.
    kernel_regularizer, bias_regularizer, activity_regularizer : str, dict, callable or None
        Penalties reported in ``losses`` (:mod:`npconv.keras.regularizers`); the activity
        one is on the output, divided by the batch size.
    kernel_constraint, bias_constraint : str, dict, callable or None
        Projections applied after each optimizer step (:mod:`npconv.keras.constraints`).
    **kwargs
        ``name``, ``trainable`` and ``dtype`` ('float32' or 'float64'); any other is refused.

    Raises
    ------
    ValueError
        What Keras refuses, in Keras's words: bad sizes, padding or data_format, filters <= 0,
        groups not dividing filters or the input's channels, strides > 1 with dilation_rate > 1.

    Examples
    --------
    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2D(8, 3, strides=2, padding="same", groups=2)
    >>> layer(np.zeros((1, 7, 6, 4), np.float32)).shape, layer.kernel.shape
    ((1, 4, 3, 8), (3, 3, 2, 8))
    """

    weight_options = (KERNEL, BIAS)

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: int | Sequence[int] = 1,
                 groups: int = 1, activation: str | Callable[..., Any] | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(locals())  # the arguments by name: the config keys are this signature's

    def _take_kind_arguments(self, arguments: Mapping[str, Any]) -> None:
        layer = type(self).__name__
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)
        self.groups = geometry.check_groups(arguments["groups"], self.filters, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)

    @classmethod
    def _allows_causal(cls) -> bool:
        return cls.rank == 1  # Conv1D only

    def _check_channels(self, channels: int, input_shape: Sequence[int | None]) -> None:
        geometry.check_input_channels(self._conv_spec(), channels, self.filters, input_shape)

    def _kernel_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        return {"kernel": self.kernel_size + (channels // self.groups, self.filters)}

    def _conv_spec(self) -> ConvSpec:
        return geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, self.groups,
                                  type(self).__name__)

    def _build_stages(self, channels: int) -> tuple[Stage, ...]:
        return (Stage(self._conv_spec(), "kernel", self._bias_name),)


class _ConvTranspose(KerasConv):
    """Keras's Conv1D/2D/3DTranspose (no groups): kernel ``(*k, filters, C_in)``, bias ``(filters,)``.

    out: 'valid' (in - 1) * s + max(ek, s), or (in - 1) * s + ek + output_padding when given;
    'same' in * s, or (in - 1) * s + ek % 2 + output_padding (``geometry.transposed_pads``).

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or sequence of int
        The window's size (an int for every dim).
    strides : int or sequence of int, default 1
        Step between windows.
    padding : {'valid', 'same'}, default 'valid'
        Sets the output size (above).
    output_padding : int, sequence of int or None, default None
        Each below its stride; None lets Keras's rule choose.
    data_format : {'channels_last', 'channels_first'} or None, default None
        Inputs ``(batch, *spatial, channels)`` (None: channels_last) or
        ``(batch, channels, *spatial)``.
    dilation_rate : int or sequence of int, default 1
        Spacing between kernel elements.
    activation : str, callable or None, default None
        A Keras activation name or callable (None: linear); :mod:`npconv.keras.activations`.
    use_bias : bool, default True
        Add a bias after the convolution.
    kernel_initializer, bias_initializer : str, dict or callable
        How the weights are drawn (defaults 'glorot_uniform' and 'zeros');
        :mod:`npconv.keras.initializers`.
    kernel_regularizer, bias_regularizer, activity_regularizer : str, dict, callable or None
        Penalties reported in ``losses`` (:mod:`npconv.keras.regularizers`); the activity
        one is on the output, divided by the batch size.
    kernel_constraint, bias_constraint : str, dict, callable or None
        Projections applied after each optimizer step (:mod:`npconv.keras.constraints`).
    **kwargs
        ``name``, ``trainable`` and ``dtype`` ('float32' or 'float64'); any other is refused.

    Raises
    ------
    ValueError
        What Keras refuses, in Keras's words: bad sizes, padding or data_format, filters <= 0,
        output_padding >= strides, strides > 1 with dilation_rate > 1.

    Examples
    --------
    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2DTranspose(3, 3, strides=2, padding="same")
    >>> layer(np.zeros((1, 4, 5, 2), np.float32)).shape, layer.kernel.shape
    ((1, 8, 10, 3), (3, 3, 3, 2))
    """

    weight_options = (KERNEL, BIAS)

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", output_padding: int | Sequence[int] | None = None,
                 data_format: str | None = None, dilation_rate: int | Sequence[int] = 1,
                 activation: str | Callable[..., Any] | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(locals())

    def _take_kind_arguments(self, arguments: Mapping[str, Any]) -> None:
        layer = type(self).__name__
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)
        self.output_padding = geometry.standardize_output_padding(arguments["output_padding"], self.strides, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)

    def _kernel_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        return {"kernel": self.kernel_size + (self.filters, channels)}

    def _transposed_spec(self) -> ConvSpec:
        return geometry.transposed_spec(self.kernel_size, self.strides, self.padding, self.output_padding,
                                        self.dilation_rate, type(self).__name__)

    def _build_stages(self, channels: int) -> tuple[Stage, ...]:
        return (Stage(self._transposed_spec(), "kernel", self._bias_name),)

    def _output_spatial(self, in_spatial: Sequence[int | None]) -> tuple[int | None, ...]:
        return geometry.spec_output_spatial(self._transposed_spec(), in_spatial)


class _DepthwiseConv(KerasConv):
    """Keras's DepthwiseConv1D/2D: kernel ``(*k, C_in, M)``, bias ``(C_in*M,)``.

    Input channel c convolved with its own M = depth_multiplier filters gives output channels
    c*M .. c*M + M - 1 (PyTorch's groups = C_in).  Sizes as Conv; Keras allows strides > 1
    with dilation > 1 here.

    Parameters
    ----------
    kernel_size : int or sequence of int
        The window's size (an int for every dim).
    strides : int or sequence of int, default 1
        Step between windows.
    padding : {'valid', 'same'}, default 'valid'
        'valid' none; 'same' out = ceil(in / s), the odd pad after.
    depth_multiplier : int, default 1
        M: depthwise outputs per input channel.
    data_format : {'channels_last', 'channels_first'} or None, default None
        Inputs ``(batch, *spatial, channels)`` (None: channels_last) or
        ``(batch, channels, *spatial)``.
    dilation_rate : int or sequence of int, default 1
        Spacing between kernel elements.
    activation : str, callable or None, default None
        A Keras activation name or callable (None: linear); :mod:`npconv.keras.activations`.
    use_bias : bool, default True
        Add a bias after the convolution.
    depthwise_initializer, bias_initializer : str, dict or callable
        How the weights are drawn (defaults 'glorot_uniform' and 'zeros');
        :mod:`npconv.keras.initializers`.
    depthwise_regularizer, bias_regularizer, activity_regularizer : str, dict, callable or None
        Penalties reported in ``losses`` (:mod:`npconv.keras.regularizers`); the activity
        one is on the output, divided by the batch size.
    depthwise_constraint, bias_constraint : str, dict, callable or None
        Projections applied after each optimizer step (:mod:`npconv.keras.constraints`).
    **kwargs
        ``name``, ``trainable`` and ``dtype`` ('float32' or 'float64'); any other is refused.

    Raises
    ------
    ValueError
        What Keras refuses, in Keras's words: bad sizes, padding or data_format, depth_multiplier <= 0.

    Examples
    --------
    >>> import numpy as np, npconv.keras as K
    >>> layer = K.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> layer(np.zeros((1, 5, 5, 3), np.float32)).shape, layer.kernel.shape
    ((1, 5, 5, 6), (3, 3, 3, 2))
    """

    weight_options = (DEPTHWISE_KERNEL, BIAS)
    config_leads = ("depth_multiplier",)  # Keras's config lists it first

    def __init__(self, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None, dilation_rate: int | Sequence[int] = 1,
                 activation: str | Callable[..., Any] | None = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 depthwise_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(locals())

    def _take_kind_arguments(self, arguments: Mapping[str, Any]) -> None:
        self.depth_multiplier = geometry.check_positive(arguments["depth_multiplier"], "depth_multiplier",
                                                        type(self).__name__)

    def _kernel_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        return {"kernel": self.kernel_size + (channels, self.depth_multiplier)}

    def _build_stages(self, channels: int) -> tuple[Stage, ...]:
        spec = geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                                  type(self).__name__)
        return (Stage(spec, "kernel", self._bias_name, depthwise=True),)

    def _output_channels(self, channels: int | None) -> int | None:
        return None if channels is None else channels * self.depth_multiplier


class _SeparableConv(KerasConv):
    """Keras's SeparableConv1D/2D: a depthwise conv (no bias), then a 1x1 conv to ``filters``.

    depthwise_kernel ``(*k, C_in, M)``, pointwise_kernel ``(1.., C_in*M, filters)``, bias
    ``(filters,)`` (added after the pointwise conv).

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or sequence of int
        The window's size (an int for every dim).
    strides : int or sequence of int, default 1
        Step between windows.
    padding : {'valid', 'same'}, default 'valid'
        The depthwise conv's: 'valid' none; 'same' out = ceil(in / s), the odd pad after.
    data_format : {'channels_last', 'channels_first'} or None, default None
        Inputs ``(batch, *spatial, channels)`` (None: channels_last) or
        ``(batch, channels, *spatial)``.
    dilation_rate : int or sequence of int, default 1
        Spacing between kernel elements.
    depth_multiplier : int, default 1
        M: depthwise outputs per input channel.
    activation : str, callable or None, default None
        A Keras activation name or callable (None: linear); :mod:`npconv.keras.activations`.
    use_bias : bool, default True
        Add a bias after the convolution.
    depthwise_initializer, pointwise_initializer, bias_initializer : str, dict or callable
        How the weights are drawn (defaults 'glorot_uniform', 'glorot_uniform', 'zeros').
    depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer : callable
        (or a name, a config dict or None)
        Penalties reported in ``losses`` (:mod:`npconv.keras.regularizers`).
    depthwise_constraint, pointwise_constraint, bias_constraint : optional
        Projections applied after each optimizer step (:mod:`npconv.keras.constraints`).
    **kwargs
        ``name``, ``trainable`` and ``dtype`` ('float32' or 'float64'); any other is refused.

    Raises
    ------
    ValueError
        What Keras refuses, in Keras's words: bad sizes, padding or data_format, filters or depth_multiplier <= 0.

    Examples
    --------
    >>> import numpy as np, npconv.keras as K
    >>> layer = K.SeparableConv1D(4, 3, depth_multiplier=2)
    >>> layer(np.zeros((2, 9, 3), np.float32)).shape, [w.shape for w in layer.get_weights()]
    ((2, 7, 4), [(3, 3, 2), (1, 6, 4), (4,)])
    """

    weight_options = (SEPARABLE_DEPTHWISE, SEPARABLE_POINTWISE, BIAS)
    config_leads = ("depth_multiplier",)  # Keras's config lists it first

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: int | Sequence[int] = 1,
                 depth_multiplier: int = 1, activation: str | Callable[..., Any] | None = None,
                 use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None,
                 pointwise_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(locals())

    def _take_kind_arguments(self, arguments: Mapping[str, Any]) -> None:
        layer = type(self).__name__
        self.depth_multiplier = geometry.check_positive(arguments["depth_multiplier"], "depth_multiplier", layer)
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)

    def _kernel_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        return {"depthwise_kernel": self.kernel_size + (channels, self.depth_multiplier),
                "pointwise_kernel": (1,) * self.rank + (channels * self.depth_multiplier, self.filters)}

    def _build_stages(self, channels: int) -> tuple[Stage, ...]:
        layer, ones = type(self).__name__, (1,) * self.rank
        depthwise = geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                                       layer)
        pointwise = geometry.conv_spec(ones, ones, "valid", ones, 1, layer)
        return (Stage(depthwise, "depthwise_kernel", None, depthwise=True),
                Stage(pointwise, "pointwise_kernel", self._bias_name))


# ---- the public classes: a kind and its number of spatial dims -------------------------------

def _layer_doc(kind: type[KerasConv], name: str) -> str:
    """A public class's docstring: what it is, then its kind's constructor and example."""
    return (f"``keras.layers.{name}`` on npconv's engine, with Keras 3's constructor arguments, order and "
            f"defaults.\n\n    {kind.__doc__}")


class Conv1D(_Conv):
    __doc__ = _layer_doc(_Conv, "Conv1D")
    rank = 1


class Conv2D(_Conv):
    __doc__ = _layer_doc(_Conv, "Conv2D")
    rank = 2


class Conv3D(_Conv):
    __doc__ = _layer_doc(_Conv, "Conv3D")
    rank = 3


class Conv1DTranspose(_ConvTranspose):
    __doc__ = _layer_doc(_ConvTranspose, "Conv1DTranspose")
    rank = 1


class Conv2DTranspose(_ConvTranspose):
    __doc__ = _layer_doc(_ConvTranspose, "Conv2DTranspose")
    rank = 2


class DepthwiseConv1D(_DepthwiseConv):
    __doc__ = _layer_doc(_DepthwiseConv, "DepthwiseConv1D")
    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    __doc__ = _layer_doc(_DepthwiseConv, "DepthwiseConv2D")
    rank = 2


class SeparableConv1D(_SeparableConv):
    __doc__ = _layer_doc(_SeparableConv, "SeparableConv1D")
    rank = 1


class SeparableConv2D(_SeparableConv):
    __doc__ = _layer_doc(_SeparableConv, "SeparableConv2D")
    rank = 2


class Conv3DTranspose(_ConvTranspose):
    __doc__ = _layer_doc(_ConvTranspose, "Conv3DTranspose").replace(
        "None lets Keras's rule choose.", "None lets Keras's rule choose.  In this class's\n        constructor "
        "only it comes after ``data_format``, as in Keras (whose config keeps the other order).", 1)
    rank = 3

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", data_format: str | None = None,
                 output_padding: int | Sequence[int] | None = None, dilation_rate: int | Sequence[int] = 1,
                 activation: str | Callable[..., Any] | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        KerasConv.__init__(self, locals())

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """As Conv1D/2DTranspose: Keras's config keeps output_padding before data_format."""
        return _ConvTranspose.config_keys()
