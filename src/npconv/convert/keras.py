"""Keras convolution layers as npconv.nn's PyTorch-style modules, and back.

:func:`keras_to_torch` reads any layer with Keras's ``get_config()`` / ``get_weights()`` (an
``npconv.keras`` layer or a real ``keras.layers`` one) and returns the module computing the
same numbers on channels_first input:

- Conv*D -> ``Conv*d`` (groups kept); Conv*DTranspose -> ``ConvTranspose*d`` with Keras's crop
  said as per-side pads and output_padding (``npconv.keras.geometry.transposed_pads``);
- DepthwiseConv*D -> ``Conv*d(C, C*M, groups=C)``; SeparableConv*D -> ``Sequential(depthwise,
  pointwise 1x1)``; ``activation='relu'`` adds ``nn.ReLU()`` (other activations are refused);
- padding: 'valid' -> 0, 'causal' -> ``((ek - 1, 0),)``, 'same' -> explicit per-side pads
  (SAME_UPPER: the odd pad after, so stride 2 gives ``(0, 1)`` on even sizes).  At stride 1
  those pads do not depend on the input size; at a larger stride they do, so give
  ``input_shape`` to get explicit pads, or the module keeps ``padding='same'``, which npconv's
  engine (not PyTorch's) resolves with the same rule for every input size.

:func:`torch_to_keras` goes back from ``npconv.nn`` (or ``torch.nn``) modules to an
``npconv.keras`` layer.  Keras only pads 'valid', 'same' and (Conv1D) 'causal', so explicit
pads must equal one of them; for a stride above 1, 'same' depends on the input size, so
``input_shape`` is needed and the layer is only equivalent for inputs of that size.  Pads
Keras cannot say, padding modes other than zeros, grouped transposed convs and strides > 1
with dilation > 1 (Conv and Conv*Transpose) raise ``ValueError`` naming the setting.

>>> import numpy as np, npconv.keras as K
>>> layer = K.Conv2D(4, 3, strides=2, padding="same")
>>> x = np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32)
>>> y = layer(x)  # builds the layer: (1, 3, 3, 4)
>>> module = keras_to_torch(layer, input_shape=x.shape)
>>> module.padding, np.allclose(module(x.transpose(0, 3, 1, 2)), y.transpose(0, 3, 1, 2))
(((0, 1), (0, 1)), True)
>>> torch_to_keras(module, input_shape=x.shape).padding
'same'
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from .. import nn
from ..keras import geometry, layers as keras_layers
from ..keras.kernels import keras_kernel, torch_weight
from ..spec import explicit_pads

__all__ = ["keras_to_torch", "torch_to_keras"]

_KERAS_NAME = re.compile(r"^(Conv|DepthwiseConv|SeparableConv)([123])D(Transpose)?$")


# ---- Keras -> PyTorch-style ------------------------------------------------------------------

def keras_to_torch(layer: Any, input_shape: Sequence[int] | None = None) -> Any:
    """The npconv.nn module (channels_first) computing what a built Keras conv layer computes.

    ``input_shape``: the full input shape in the layer's data_format, or its spatial sizes;
    only needed to turn 'same' at a stride above 1 into explicit pads.
    """
    kind, rank = _keras_kind(layer)
    config, weights = layer.get_config(), [np.asarray(w) for w in layer.get_weights()]
    if not weights:
        raise ValueError(f"keras_to_torch: layer {config.get('name')!r} is not built, so its input "
                         f"channels are unknown; call it on an input or build(input_shape) first")
    activation = _activation(config)
    spatial = _spatial(input_shape, rank, config.get("data_format") or "channels_last")
    module = {"Conv": _conv_module, "ConvTranspose": _transposed_module, "DepthwiseConv": _depthwise_module,
              "SeparableConv": _separable_module}[kind](config, weights, rank, spatial)
    if activation == "linear":
        return module
    parts = list(module) if isinstance(module, nn.Sequential) else [module]
    return nn.Sequential(*parts, nn.ReLU())


def _keras_kind(layer) -> tuple[str, int]:
    match = _KERAS_NAME.match(type(layer).__name__)
    if match is None:
        raise ValueError(f"keras_to_torch: {type(layer).__name__} is not a Keras convolution layer "
                         f"(Conv1D-3D, Conv1D-3DTranspose, DepthwiseConv1D/2D, SeparableConv1D/2D)")
    kind = "ConvTranspose" if match.group(3) else match.group(1)
    return kind, int(match.group(2))


def _activation(config) -> str:
    name = config.get("activation") or "linear"
    if name not in ("linear", "relu"):
        raise ValueError(f"keras_to_torch: activation={name!r} has no npconv.nn module (only 'linear' and "
                         f"'relu' convert); convert the layer with activation=None and apply it separately")
    return name


def _spatial(input_shape, rank: int, data_format: str):
    if input_shape is None:
        return None
    shape = tuple(input_shape)
    if len(shape) == rank + 2:
        return shape[1:-1] if data_format == "channels_last" else shape[2:]
    if len(shape) != rank:
        raise ValueError(f"keras_to_torch: input_shape must be the full input shape ({rank + 2} entries) or "
                         f"the {rank} spatial sizes, got {shape}")
    return shape


def _module_padding(config, rank: int, spatial):
    """Keras's padding string as npconv padding: ints, per-side pairs, or 'same' (see the module doc)."""
    padding, kernel = config["padding"], tuple(config["kernel_size"])
    strides, dilation = tuple(config["strides"]), tuple(config["dilation_rate"])
    if padding == "valid":
        return 0
    if padding == "causal":
        return geometry.causal_pads(kernel, dilation)
    if max(strides) > 1 and spatial is None:
        return "same"  # SAME_UPPER for each input size, resolved by npconv's engine
    return _symmetric_as_ints(geometry.same_pairs(spatial or (1,) * rank, kernel, strides, dilation))


def _symmetric_as_ints(pairs):
    """Pairs (p, p) said as PyTorch says them (ints); uneven pairs kept."""
    return tuple(lo for lo, _ in pairs) if all(lo == hi for lo, hi in pairs) else pairs


def _conv_class(rank: int, transposed: bool = False):
    return getattr(nn, f"ConvTranspose{rank}d" if transposed else f"Conv{rank}d")


def _load(module, weight, bias=None):
    module.weight[...] = weight
    if bias is not None:
        module.bias[...] = bias
    return module


def _conv_module(config, weights, rank, spatial):
    kernel, groups = weights[0], config.get("groups", 1)
    module = _conv_class(rank)(kernel.shape[-2] * groups, config["filters"], config["kernel_size"],
                               config["strides"], _module_padding(config, rank, spatial), config["dilation_rate"],
                               groups, bias=config["use_bias"], dtype=kernel.dtype)
    return _load(module, torch_weight(kernel), weights[1] if config["use_bias"] else None)


def _transposed_module(config, weights, rank, spatial):
    kernel = weights[0]
    output_padding = config.get("output_padding")
    pads, extra = geometry.transposed_pads(tuple(config["kernel_size"]), tuple(config["strides"]),
                                           config["padding"], None if output_padding is None else
                                           tuple(output_padding), tuple(config["dilation_rate"]))
    module = _conv_class(rank, True)(kernel.shape[-1], config["filters"], config["kernel_size"],
                                     config["strides"], _symmetric_as_ints(pads), extra, 1, config["use_bias"],
                                     config["dilation_rate"], dtype=kernel.dtype)
    return _load(module, torch_weight(kernel), weights[1] if config["use_bias"] else None)


def _depthwise(config, kernel, rank, spatial, bias):
    channels, multiplier = kernel.shape[-2:]
    module = _conv_class(rank)(channels, channels * multiplier, config["kernel_size"], config["strides"],
                               _module_padding(config, rank, spatial), config["dilation_rate"], channels,
                               bias=bias is not None, dtype=kernel.dtype)
    return _load(module, torch_weight(kernel, depthwise=True), bias)


def _depthwise_module(config, weights, rank, spatial):
    return _depthwise(config, weights[0], rank, spatial, weights[1] if config["use_bias"] else None)


def _separable_module(config, weights, rank, spatial):
    depthwise = _depthwise(config, weights[0], rank, spatial, None)
    pointwise_kernel = weights[1]
    pointwise = _conv_class(rank)(pointwise_kernel.shape[-2], config["filters"], 1, bias=config["use_bias"],
                                  dtype=pointwise_kernel.dtype)
    return nn.Sequential(depthwise, _load(pointwise, torch_weight(pointwise_kernel),
                                          weights[2] if config["use_bias"] else None))


# ---- PyTorch-style -> Keras ----------------------------------------------------------------

def torch_to_keras(module: Any, data_format: str = "channels_last", input_shape: Sequence[int] | None = None) -> Any:
    """The npconv.keras layer (built, weights copied) computing what ``module`` computes.

    ``module``: an ``npconv.nn`` (or ``torch.nn``) Conv*d / ConvTranspose*d, a ``Sequential``
    of a depthwise conv and a 1x1 conv (-> SeparableConv), either optionally followed by ReLU.
    ``input_shape`` (full, in ``data_format``, or spatial) decides 'same' at strides above 1.
    """
    parts = list(module) if type(module).__name__ == "Sequential" else [module]
    activation = None
    if len(parts) > 1 and type(parts[-1]).__name__ == "ReLU":
        activation, parts = "relu", parts[:-1]
    names = [type(p).__name__ for p in parts]
    rank = _module_rank(parts[0])
    spatial = _spatial(input_shape, rank, data_format)
    common = dict(data_format=data_format, activation=activation)
    if len(parts) == 1 and names[0].startswith("ConvTranspose"):
        return _keras_transposed(parts[0], rank, common)
    if len(parts) == 1 and names[0].startswith("Conv"):
        return _keras_conv(parts[0], rank, spatial, common)
    if len(parts) == 2 and all(n.startswith("Conv") and "Transpose" not in n for n in names):
        return _keras_separable(parts, rank, spatial, common)
    raise ValueError(f"torch_to_keras: no Keras layer for {names}: expected Conv*d, ConvTranspose*d, or "
                     f"Sequential(depthwise Conv*d, 1x1 Conv*d), optionally followed by ReLU")


def _module_rank(module) -> int:
    match = re.search(r"([123])d$", type(module).__name__)
    if match is None:
        raise ValueError(f"torch_to_keras: {type(module).__name__} is not a convolution module")
    return int(match.group(1))


def _array(value):
    """A parameter (npconv Parameter or torch tensor) as an ndarray; None stays None."""
    if value is None:
        return None
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _check_zeros_mode(module) -> None:
    mode = getattr(module, "padding_mode", "zeros")
    if mode != "zeros":
        raise ValueError(f"torch_to_keras: padding_mode={mode!r} has no Keras equivalent (Keras pads with "
                         f"zeros); pad the input yourself and convert a padding=0 module")


def _keras_padding(module, rank: int, spatial, allow_causal: bool) -> str:
    """'valid', 'same' or 'causal' when the module's pads equal that Keras rule (see the module doc)."""
    _check_zeros_mode(module)
    kernel, strides, dilation = module.kernel_size, module.stride, module.dilation
    padding = module.padding
    if isinstance(padding, str):
        if padding in ("valid", "same") or (padding == "causal" and allow_causal):
            return padding
        raise ValueError(f"torch_to_keras: padding={padding!r} has no Keras equivalent")
    pairs = explicit_pads(padding, rank, "torch_to_keras")
    name = geometry.padding_name(pairs, kernel, strides, dilation, spatial or (1,) * rank)
    if name == "valid" or (name == "causal" and allow_causal):
        return name
    if max(strides) > 1 and spatial is None:
        raise ValueError(f"torch_to_keras: padding={padding!r} at stride {tuple(strides)}: whether it equals "
                         f"Keras's 'same' depends on the input size; pass input_shape")
    if name == "same":
        return name
    same = geometry.same_pairs(spatial or (1,) * rank, kernel, strides, dilation)
    raise ValueError(f"torch_to_keras: padding={padding!r} (pads {pairs}) has no Keras equivalent: Keras pads "
                     f"'valid' (none) or 'same' {same} for kernel_size={tuple(kernel)}, stride={tuple(strides)}, "
                     f"dilation={tuple(dilation)}" + (f", input {tuple(spatial)}" if spatial else "")
                     + f"; pad with keras.layers.ZeroPadding{rank}D first and convert a padding=0 module")


def _built(layer, channels: int, weights):
    """Build ``layer`` for ``channels`` input channels (spatial sizes left open) and load weights."""
    spatial = (None,) * layer.rank
    layer.build((None,) + (spatial + (channels,) if layer.data_format == "channels_last" else (channels,) + spatial))
    layer.set_weights([w for w in weights if w is not None])
    return layer


def _keras_conv(module, rank, spatial, common):
    channels, groups = module.in_channels, module.groups
    depthwise = groups == channels and groups > 1 and rank <= 2
    padding = _keras_padding(module, rank, spatial, allow_causal=rank == 1)
    weight, bias = _array(module.weight), _array(module.bias)
    dtype = weight.dtype.name
    options = dict(strides=module.stride, padding=padding, dilation_rate=module.dilation,
                   use_bias=bias is not None, dtype=dtype, **common)
    if depthwise and padding != "causal":
        multiplier = module.out_channels // channels
        layer = getattr(keras_layers, f"DepthwiseConv{rank}D")(module.kernel_size, depth_multiplier=multiplier,
                                                                **options)
        return _built(layer, channels, [keras_kernel(weight, tuple(module.kernel_size) + (channels, multiplier)),
                                        bias])
    layer = getattr(keras_layers, f"Conv{rank}D")(module.out_channels, module.kernel_size, groups=groups, **options)
    keras_shape = tuple(module.kernel_size) + (channels // groups, module.out_channels)
    return _built(layer, channels, [keras_kernel(weight, keras_shape), bias])


def _keras_transposed(module, rank, common):
    _check_zeros_mode(module)
    if module.groups != 1:
        raise ValueError(f"torch_to_keras: groups={module.groups}: Keras's Conv{rank}DTranspose has no groups")
    padding, output_padding = _keras_transposed_padding(module, rank)
    weight, bias = _array(module.weight), _array(module.bias)
    layer = getattr(keras_layers, f"Conv{rank}DTranspose")(
        module.out_channels, module.kernel_size, strides=module.stride, padding=padding,
        output_padding=output_padding, dilation_rate=module.dilation, use_bias=bias is not None,
        dtype=weight.dtype.name, **common)
    keras_shape = tuple(module.kernel_size) + (module.out_channels, module.in_channels)
    return _built(layer, module.in_channels, [keras_kernel(weight, keras_shape), bias])


def _keras_transposed_padding(module, rank: int):
    """The Keras (padding, output_padding) whose crop equals the module's: a transposed conv's
    result depends only on lo and hi - output_padding per dim, and Keras has few choices."""
    kernel, strides, dilation = tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
    pairs = ((0, 0),) * rank if module.padding == "valid" else explicit_pads(module.padding, rank, "torch_to_keras")
    wanted = geometry.transposed_crops(pairs, module.output_padding)
    found = geometry.transposed_padding_for(kernel, strides, dilation, wanted)
    if found is not None:
        return found
    raise ValueError(f"torch_to_keras: padding={module.padding!r} with output_padding="
                     f"{tuple(module.output_padding)} has no Keras Conv{rank}DTranspose equivalent: no "
                     f"'valid'/'same' padding and output_padding < strides {strides} crops (lo, hi - "
                     f"output_padding) = {wanted}")


def _keras_separable(parts, rank, spatial, common):
    depthwise, pointwise = parts
    channels = depthwise.in_channels
    if depthwise.groups != channels or depthwise.bias is not None:
        raise ValueError(f"torch_to_keras: a SeparableConv's first module must be a depthwise conv (groups = "
                         f"in_channels = {channels}) without bias; got groups={depthwise.groups}, "
                         f"bias={depthwise.bias is not None}")
    if (tuple(pointwise.kernel_size) != (1,) * rank or max(pointwise.stride) != 1 or pointwise.groups != 1
            or _keras_padding(pointwise, rank, None, False) != "valid"):
        raise ValueError("torch_to_keras: a SeparableConv's second module must be a 1x1 conv, stride 1, "
                         "no padding, groups=1")
    padding = _keras_padding(depthwise, rank, spatial, allow_causal=False)
    multiplier, weight = depthwise.out_channels // channels, _array(depthwise.weight)
    bias, pointwise_weight = _array(pointwise.bias), _array(pointwise.weight)
    layer = getattr(keras_layers, f"SeparableConv{rank}D")(
        pointwise.out_channels, depthwise.kernel_size, strides=depthwise.stride, padding=padding,
        dilation_rate=depthwise.dilation, depth_multiplier=multiplier, use_bias=bias is not None,
        dtype=weight.dtype.name, **common)
    kernels = [keras_kernel(weight, tuple(depthwise.kernel_size) + (channels, multiplier)),
               keras_kernel(pointwise_weight, (1,) * rank + (channels * multiplier, pointwise.out_channels))]
    return _built(layer, channels, kernels + [bias])
