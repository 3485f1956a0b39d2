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

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2D(8, 3, strides=2, padding="same", groups=2)
    >>> layer(np.zeros((1, 7, 6, 4), np.float32)).shape, layer.kernel.shape
    ((1, 4, 3, 8), (3, 3, 2, 8))
    """

    weight_options = (KERNEL, BIAS)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(locals())  # the arguments by name: the config keys are this signature's

    def _take_kind_arguments(self, arguments) -> None:
        layer = type(self).__name__
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)
        self.groups = geometry.check_groups(arguments["groups"], self.filters, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)

    @classmethod
    def _allows_causal(cls) -> bool:
        return cls.rank == 1  # Conv1D only

    def _check_channels(self, channels, input_shape) -> None:
        geometry.check_input_channels(self._conv_spec(), channels, self.filters, input_shape)

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (channels // self.groups, self.filters)}

    def _conv_spec(self) -> ConvSpec:
        return geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, self.groups,
                                  type(self).__name__)

    def _build_stages(self, channels) -> tuple:
        return (Stage(self._conv_spec(), "kernel", self._bias_name),)


class _ConvTranspose(KerasConv):
    """Keras's Conv1D/2D/3DTranspose (no groups): kernel ``(*k, filters, C_in)``, bias ``(filters,)``.

    out: 'valid' (in - 1) * s + max(ek, s), or (in - 1) * s + ek + output_padding when given;
    'same' in * s, or (in - 1) * s + ek % 2 + output_padding (``geometry.transposed_pads``).

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.Conv2DTranspose(3, 3, strides=2, padding="same")
    >>> layer(np.zeros((1, 4, 5, 2), np.float32)).shape, layer.kernel.shape
    ((1, 8, 10, 3), (3, 3, 3, 2))
    """

    weight_options = (KERNEL, BIAS)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(locals())

    def _take_kind_arguments(self, arguments) -> None:
        layer = type(self).__name__
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)
        self.output_padding = geometry.standardize_output_padding(arguments["output_padding"], self.strides, layer)
        geometry.check_strides_with_dilation(self.strides, self.dilation_rate, layer)

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (self.filters, channels)}

    def _transposed_spec(self) -> ConvSpec:
        return geometry.transposed_spec(self.kernel_size, self.strides, self.padding, self.output_padding,
                                        self.dilation_rate, type(self).__name__)

    def _build_stages(self, channels) -> tuple:
        return (Stage(self._transposed_spec(), "kernel", self._bias_name),)

    def _output_spatial(self, in_spatial) -> tuple:
        return geometry.spec_output_spatial(self._transposed_spec(), in_spatial)


class _DepthwiseConv(KerasConv):
    """Keras's DepthwiseConv1D/2D: kernel ``(*k, C_in, M)``, bias ``(C_in*M,)``; input channel c
    convolved with its own M = depth_multiplier filters gives output channels c*M .. c*M + M - 1
    (PyTorch's groups = C_in).  Sizes as Conv; Keras allows strides > 1 with dilation > 1 here.

    >>> import numpy as np, npconv.keras as K
    >>> layer = K.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> layer(np.zeros((1, 5, 5, 3), np.float32)).shape, layer.kernel.shape
    ((1, 5, 5, 6), (3, 3, 3, 2))
    """

    weight_options = (DEPTHWISE_KERNEL, BIAS)
    config_leads = ("depth_multiplier",)  # Keras's config lists it first

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(locals())

    def _take_kind_arguments(self, arguments) -> None:
        self.depth_multiplier = geometry.check_positive(arguments["depth_multiplier"], "depth_multiplier",
                                                        type(self).__name__)

    def _kernel_shapes(self, channels) -> dict:
        return {"kernel": self.kernel_size + (channels, self.depth_multiplier)}

    def _build_stages(self, channels) -> tuple:
        spec = geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                                  type(self).__name__)
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

    weight_options = (SEPARABLE_DEPTHWISE, SEPARABLE_POINTWISE, BIAS)
    config_leads = ("depth_multiplier",)  # Keras's config lists it first

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(locals())

    def _take_kind_arguments(self, arguments) -> None:
        layer = type(self).__name__
        self.depth_multiplier = geometry.check_positive(arguments["depth_multiplier"], "depth_multiplier", layer)
        self.filters = geometry.check_positive(arguments["filters"], "filters", layer)

    def _kernel_shapes(self, channels) -> dict:
        return {"depthwise_kernel": self.kernel_size + (channels, self.depth_multiplier),
                "pointwise_kernel": (1,) * self.rank + (channels * self.depth_multiplier, self.filters)}

    def _build_stages(self, channels) -> tuple:
        layer, ones = type(self).__name__, (1,) * self.rank
        depthwise = geometry.conv_spec(self.kernel_size, self.strides, self.padding, self.dilation_rate, channels,
                                       layer)
        pointwise = geometry.conv_spec(ones, ones, "valid", ones, 1, layer)
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
    ``data_format`` before ``output_padding`` in this class's constructor only (its config keeps
    the other order), and so does npconv."""

    rank = 3

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, output_padding=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        KerasConv.__init__(self, locals())

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        return _ConvTranspose.config_keys()
