"""ONNX Conv/ConvTranspose/DeformConv nodes as npconv calls and modules, and modules back as ONNX attributes.

:func:`onnx_node_to_call` reads an ``onnx.NodeProto`` duck-typed (``op_type`` and ``attribute``
with ``name``/``type``/``i``/``ints``/``s``...), so the ``onnx`` package is never imported, or a
plain dict of attributes with ``op_type``.  The result is an :class:`NpconvCall`: the name of an
``npconv.functional`` function and its keyword arguments, with ONNX's pad rules already
turned into npconv's (explicit ``(lo, hi)`` pairs, or ``'same'``/``'same_lower'``, which are
ONNX's SAME_UPPER/SAME_LOWER at any stride).  A DeformConv node gives a
:class:`npconv.onnx_deform.DeformConvCall` instead (``npconv.ops.deform_conv2d`` and
``npconv.nn.DeformConv2d``).  :func:`module_to_onnx_attributes` goes back.

>>> call = onnx_node_to_call({"kernel_shape": [3, 3], "pads": [1, 0, 2, 1], "strides": [2, 2]}, "Conv")
>>> call.function, call.kwargs["padding"]
('conv2d', ((1, 2), (0, 1)))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from .. import functional, nn
from ..arrays import as_real_array
from ..onnx import (auto_pad_name, check_transposed_attributes, conv_pads, conv_transpose_pads, int_list,
                    ONNX_WORDS, pads_attribute, transposed_engine_pads, zero_extended)
from ..onnx_deform import ATTRIBUTES as DEFORM_ATTRIBUTES, DeformConvCall, deform_node_call
from ..spec import check_groups, explicit_pads as npconv_pairs, same_pads
from ..spec_errors import worded

__all__ = ["NpconvCall", "DeformConvCall", "onnx_node_to_call", "node_attributes", "module_to_onnx_attributes"]

# onnx.AttributeProto.AttributeType values and the field each one fills
ATTRIBUTE_FIELDS = {1: "f", 2: "i", 3: "s", 6: "floats", 7: "ints", 8: "strings"}
OP_TYPES = ("Conv", "ConvTranspose", "DeformConv")
RUN_TIME_RULES = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower"}
NO_COMPLEX = "ONNX's Conv and ConvTranspose take float tensors only (their type T has no complex)"


def node_attributes(node: Any) -> dict[str, Any]:
    """An ONNX node's attributes as a dict of ints, lists and strs (duck-typed NodeProto)."""
    attributes = {}
    for a in node.attribute:
        field = ATTRIBUTE_FIELDS.get(a.type)
        if field is None:
            raise TypeError(f"{node.op_type}: attribute {a.name!r} has ONNX type {a.type}, which a "
                            f"Conv/ConvTranspose attribute never has (ints, int or string expected)")
        value = getattr(a, field)
        value = value.decode() if isinstance(value, bytes) else value
        attributes[a.name] = value if field in ("f", "i", "s") else list(value)
    return attributes


@dataclass(frozen=True)
class NpconvCall:
    """``npconv.functional.<function>(X, W, B, **kwargs)``, the npconv form of one ONNX node.

    ``output_pads``: zeros to add (before, after) per axis around the result, for ConvTranspose
    outputs that reach past the full scatter (ONNX output_shape allows it, PyTorch has no
    setting for it); ``input_spatial``: the input size the pads were worked out for, if they
    depend on it (then ``__call__`` refuses other sizes); ``kernel_shape``: from the node (or
    weight_shape) when known, checked against W (the function itself reads the kernel from W).
    """

    function: str
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...] | str
    dilation: tuple[int, ...]
    groups: int = 1
    output_padding: tuple[int, ...] | None = None
    output_pads: tuple[tuple[int, int], ...] | None = None
    input_spatial: tuple[int, ...] | None = None
    kernel_shape: tuple[int, ...] | None = None

    @property
    def transposed(self) -> bool:
        """Whether the node is a ConvTranspose."""
        return self.output_padding is not None

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``npconv.functional.<function>``."""
        kwargs = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        return dict(kwargs, output_padding=self.output_padding) if self.transposed else kwargs

    def __call__(self, X: npt.ArrayLike, W: npt.ArrayLike, B: npt.ArrayLike | None = None) -> np.ndarray:
        x = as_real_array(X, "X", self.function, why=NO_COMPLEX)
        if self.input_spatial is not None and tuple(x.shape[2:]) != self.input_spatial:
            raise ValueError(f"{self.function}: this call's pads were worked out for input spatial size "
                             f"{list(self.input_spatial)} (auto_pad/output_shape depend on it), got X of "
                             f"shape {list(x.shape)}; build the call again with input_shape={list(x.shape)}")
        self._check_kernel(W)
        run = getattr(functional, self.function)
        w = as_real_array(W, "W", self.function, why=NO_COMPLEX)
        b = None if B is None else as_real_array(B, "B", self.function, why=NO_COMPLEX)
        if self.output_pads is None:
            return run(x, w, b, **self.kwargs)
        return zero_extended(lambda x_c, w_c: run(x_c, w_c, None, **self.kwargs), x, w, b, self.output_pads)

    def to_module(self, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None) -> Any:
        """An ``npconv.nn`` Conv*/ConvTranspose* module holding ``weight`` and ``bias``."""
        self._refuse_output_pads("npconv.nn")
        self._check_kernel(weight)
        w = np.asarray(weight)
        cls = getattr(nn, f"ConvTranspose{w.ndim - 2}d" if self.transposed else f"Conv{w.ndim - 2}d")
        options = dict(self.kwargs, bias=bias is not None,
                       dtype=w.dtype if w.dtype in (np.float32, np.float64) else np.float32)
        module = cls(*_channels(w.shape, self.groups, self.transposed), w.shape[2:], **options)
        module.load_state_dict({"weight": w} if bias is None else {"weight": w, "bias": np.asarray(bias)})
        return module

    def to_torch_module(self, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None) -> Any:
        """The same as a ``torch.nn`` module (imports torch); asymmetric conv pads become a
        ``ConstantPadNd`` in front, in an ``nn.Sequential``."""
        import torch  # optional: only this method needs PyTorch

        self._refuse_output_pads("torch.nn")
        self._check_kernel(weight)
        w = np.asarray(weight)
        n, (c_in, c_out) = w.ndim - 2, _channels(w.shape, self.groups, self.transposed)
        options = dict(stride=self.stride, dilation=self.dilation, groups=self.groups, bias=bias is not None,
                       dtype=torch.float64 if w.dtype == np.float64 else torch.float32)
        if self.transposed:
            padding, output_padding = self._torch_transposed_padding()
            module = getattr(torch.nn, f"ConvTranspose{n}d")(c_in, c_out, w.shape[2:], padding=padding,
                                                             output_padding=output_padding, **options)
            return _load_torch(module, w, bias)
        front, padding = self._torch_conv_padding(w.shape[2:])
        conv = getattr(torch.nn, f"Conv{n}d")(c_in, c_out, w.shape[2:], padding=padding, **options)
        module = _load_torch(conv, w, bias)
        if front is None:
            return module
        return torch.nn.Sequential(getattr(torch.nn, f"ConstantPad{n}d")(front, 0.0), module)

    def _torch_conv_padding(self, kernel):
        """(F.pad tuple or None, padding for torch's ConvNd)."""
        pairs = self.padding
        if isinstance(pairs, str):
            if max(self.stride) > 1:
                raise ValueError(f"to_torch_module: padding={pairs!r} at stride {self.stride} depends on the "
                                 f"input size (PyTorch's 'same' needs stride 1); build the call with input_shape")
            if pairs == "same":
                return None, "same"  # PyTorch's 'same': the odd pad at the end, as SAME_UPPER
            pairs = tuple(same_pads(1, k, 1, d, lower=True) for k, d in zip(kernel, self.dilation))
        if all(lo == hi for lo, hi in pairs):
            return None, tuple(lo for lo, _ in pairs)
        return tuple(v for lo, hi in reversed(pairs) for v in (lo, hi)), 0

    def _torch_transposed_padding(self):
        """Per-side (lo, hi) as PyTorch's symmetric padding plus output_padding (hi <= lo)."""
        padding, output_padding = [], []
        for (lo, hi), op, s, d in zip(self.padding, self.output_padding, self.stride, self.dilation):
            extra = op + lo - hi  # the window ends at full - (hi - op) = full - (lo - extra)
            if not 0 <= extra < max(s, d):
                raise ValueError(f"to_torch_module: transposed pads (lo, hi) = ({lo}, {hi}) with output_padding "
                                 f"{op} need output_padding {extra} in PyTorch, outside [0, max(stride {s}, "
                                 f"dilation {d}) - 1]; use to_module (npconv.nn takes per-side pads)")
            padding.append(lo)
            output_padding.append(extra)
        return tuple(padding), tuple(output_padding)

    def _check_kernel(self, W) -> None:
        if self.kernel_shape is not None and tuple(np.shape(W)[2:]) != self.kernel_shape:
            raise ValueError(f"{self.function}: kernel_shape={list(self.kernel_shape)} must match W's spatial "
                             f"shape {list(np.shape(W)[2:])} (W of shape {list(np.shape(W))})")

    def _refuse_output_pads(self, where: str) -> None:
        if self.output_pads is not None:
            raise ValueError(f"{self.function}: the ONNX output reaches past the full scatter (zeros to add "
                             f"{list(self.output_pads)}); no {where} module setting says that, call the "
                             f"NpconvCall itself")


def _channels(weight_shape, groups, transposed) -> tuple[int, int]:
    """(in_channels, out_channels) from ONNX's W: conv (M, C/g, *k), transposed (C, M/g, *k)."""
    if transposed:
        return weight_shape[0], weight_shape[1] * groups
    return weight_shape[1] * groups, weight_shape[0]


def _load_torch(module, w, bias):
    import torch

    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        if bias is not None:
            module.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=w.dtype)))
    return module


def onnx_node_to_call(node_or_attrs: Any, op_type: str | None = None, *, input_shape: Sequence[int] | None = None,
                      weight_shape: Sequence[int] | None = None) -> NpconvCall | DeformConvCall:
    """The npconv call equivalent to one ONNX Conv/ConvTranspose/DeformConv node.

    ``node_or_attrs``: an ``onnx.NodeProto`` (read duck-typed) or a dict of attributes, then with
    ``op_type``.  ``input_shape`` (X's full shape) lets SAME_*/output_shape pads be worked out
    as explicit pairs; ConvTranspose needs it for those, Conv falls back to npconv's
    'same'/'same_lower' (the same rule at run time).  ``weight_shape`` stands in for a missing
    kernel_shape attribute.
    """
    attributes, op_type = _read(node_or_attrs, op_type)
    kernel = _kernel(op_type, attributes, weight_shape)
    n = _spatial_rank(op_type, attributes, kernel, input_shape)
    in_spatial = None if input_shape is None else tuple(int(v) for v in input_shape[2:])
    if in_spatial is not None and len(in_spatial) != n:
        raise ValueError(f"{op_type}: input_shape={list(input_shape)} has {len(in_spatial)} spatial axes, "
                         f"the attributes {n}")
    group = attributes.get("group", 1)
    with worded(ONNX_WORDS):
        check_groups(op_type, group)
    common = dict(stride=int_list(op_type, "strides", attributes.get("strides"), n, 1, 1),
                  dilation=int_list(op_type, "dilations", attributes.get("dilations"), n, 1, 1), groups=int(group))
    maker = {"ConvTranspose": _transposed_call, "DeformConv": deform_node_call}.get(op_type, _conv_call)
    return maker(attributes, n, kernel, in_spatial, dict(common, kernel_shape=kernel))


def _read(node_or_attrs, op_type):
    if isinstance(node_or_attrs, Mapping):
        attributes, node_op = dict(node_or_attrs), None
    else:
        attributes, node_op = node_attributes(node_or_attrs), node_or_attrs.op_type
    if node_op is not None and op_type is not None and op_type != node_op:
        raise ValueError(f"op_type={op_type!r} does not match the node's op_type {node_op!r}")
    op_type = op_type or node_op
    if op_type not in OP_TYPES:
        raise ValueError(f"op_type must be one of {OP_TYPES} (a dict of attributes needs it), got {op_type!r}")
    unknown = set(attributes) - _KNOWN[op_type]
    if unknown:
        raise ValueError(f"{op_type}: unknown attributes {sorted(unknown)}; ONNX defines {sorted(_KNOWN[op_type])}")
    return attributes, op_type


_KNOWN = {"Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}}
_KNOWN["ConvTranspose"] = _KNOWN["Conv"] | {"output_padding", "output_shape"}
_KNOWN["DeformConv"] = set(DEFORM_ATTRIBUTES)


def _kernel(op_type, attributes, weight_shape):
    kernel = attributes.get("kernel_shape")
    from_weight = None if weight_shape is None else tuple(int(v) for v in weight_shape[2:])
    if kernel is not None and from_weight is not None and tuple(kernel) != from_weight:
        raise ValueError(f"{op_type}: kernel_shape={list(kernel)} must match W's spatial shape "
                         f"{list(from_weight)} (weight_shape={list(weight_shape)})")
    return tuple(int(v) for v in kernel) if kernel is not None else from_weight


def _spatial_rank(op_type, attributes, kernel, input_shape) -> int:
    """n from kernel_shape, the input, or any per-axis attribute."""
    if kernel is not None:
        return len(kernel)
    if input_shape is not None:
        return len(input_shape) - 2
    for name, per_axis in (("strides", 1), ("dilations", 1), ("output_padding", 1), ("output_shape", 1), ("pads", 2)):
        if attributes.get(name) is not None:
            return len(attributes[name]) // per_axis
    raise ValueError(f"{op_type}: the number of spatial axes is unknown: give kernel_shape, weight_shape "
                     f"or input_shape")


def _conv_call(attributes, n, kernel, in_spatial, common) -> NpconvCall:
    auto_pad = auto_pad_name("Conv", attributes.get("auto_pad", "NOTSET"))
    pads = attributes.get("pads")
    if auto_pad in ("NOTSET", "VALID"):
        return NpconvCall(f"conv{n}d", padding=pads_attribute("Conv", auto_pad, pads, n), **common)
    pads_attribute("Conv", auto_pad, pads, n)  # refuses pads beside SAME_*
    if in_spatial is None or kernel is None:
        return NpconvCall(f"conv{n}d", padding=RUN_TIME_RULES[auto_pad], **common)
    pairs = conv_pads(in_spatial, kernel, auto_pad=auto_pad, dilations=common["dilation"],
                      strides=common["stride"])
    return NpconvCall(f"conv{n}d", padding=pairs, input_spatial=in_spatial, **common)


def _transposed_call(attributes, n, kernel, in_spatial, common) -> NpconvCall:
    op = "ConvTranspose"
    auto_pad = auto_pad_name(op, attributes.get("auto_pad", "NOTSET"))
    out_pad = int_list(op, "output_padding", attributes.get("output_padding"), n, 0, 0)
    check_transposed_attributes(op, common["stride"], common["dilation"], common["groups"], out_pad)
    pads, output_shape = attributes.get("pads"), attributes.get("output_shape")
    if output_shape is None and auto_pad in ("NOTSET", "VALID"):
        return NpconvCall(f"conv_transpose{n}d", padding=pads_attribute(op, auto_pad, pads, n),
                          output_padding=out_pad, **common)
    if in_spatial is None or kernel is None:
        raise ValueError(f"{op}: with auto_pad={auto_pad!r} and output_shape={output_shape} the pads depend "
                         f"on the input size: give input_shape (and weight_shape without kernel_shape)")
    pairs = conv_transpose_pads(in_spatial, kernel, auto_pad=auto_pad, dilations=common["dilation"],
                                output_padding=out_pad, output_shape=output_shape, pads=pads,
                                strides=common["stride"])
    engine, engine_op, grow = transposed_engine_pads(pairs, out_pad, common["stride"], common["dilation"])
    return NpconvCall(f"conv_transpose{n}d", padding=engine, output_padding=engine_op,
                      output_pads=grow if any(map(any, grow)) else None, input_spatial=in_spatial, **common)


def module_to_onnx_attributes(module: Any) -> dict[str, Any]:
    """An npconv.nn (or torch.nn) Conv*/ConvTranspose* module's settings as ONNX attributes.

    >>> module_to_onnx_attributes(nn.Conv2d(2, 4, 3, stride=2, padding=((1, 0), (2, 1))))
    {'kernel_shape': [3, 3], 'strides': [2, 2], 'dilations': [1, 1], 'group': 1, 'pads': [1, 2, 0, 1]}
    """
    name = type(module).__name__
    if getattr(module, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"{name}: padding_mode={module.padding_mode!r} has no ONNX Conv attribute (ONNX pads "
                         f"with zeros); put an ONNX Pad node with that mode in front instead")
    n = len(module.kernel_size)
    attributes = dict(kernel_shape=list(module.kernel_size), strides=list(module.stride),
                      dilations=list(module.dilation), group=int(module.groups))
    padding = module.padding
    if padding in ("same", "same_lower"):
        attributes["auto_pad"] = "SAME_UPPER" if padding == "same" else "SAME_LOWER"
    else:
        pairs = (((0, 0),) * n if padding == "valid" else
                 tuple((d * (k - 1), 0) for k, d in zip(module.kernel_size, module.dilation)) if padding == "causal"
                 else npconv_pairs(padding, n, name))
        attributes["pads"] = [lo for lo, _ in pairs] + [hi for _, hi in pairs]
    if getattr(module, "transposed", False) and any(module.output_padding):
        attributes["output_padding"] = list(module.output_padding)
    return attributes
