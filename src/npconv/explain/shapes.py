"""Shape arithmetic of one layer or a chain: sizes, padding, parameters, work, receptive field.

The numbers come from the layers' own :class:`~npconv.spec.ConvSpec` (the one the engine
runs), so a report cannot disagree with what the layer computes.

Receptive field and jump per spatial dim, in units of the chain's input (``rf_0 = jump_0 = 1``)::

    conv / pool:   rf += (ek - 1) * jump;    jump *= stride
    transposed:    rf += (ceil(ek / stride) - 1) * jump;    jump /= stride

(a transposed layer's output reads at most ``ceil(ek / stride)`` neighbouring inputs).
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence, Union, cast

import numpy as np
import numpy.typing as npt

from ..nn.conv import Conv2d, ConvNd, check_module_dtype
from ..nn.layers import Flatten, Linear, PoolNd
from ..nn.containers import Sequential
from ..nn.module import Module
from ..nn.depthwise_separable import DepthwiseSeparableConv2d
from ..spec import ConvSpec, Pads, is_int, weight_shape

# Receptive field and jump per spatial dim: ints, or Fractions after a transposed layer's upsampling.
Extent = tuple[Union[int, Fraction], ...]
Layers = Union[Module, Sequence[Module]]


@dataclass(frozen=True)
class LayerShape:
    """One row of a shape report: a layer's shapes, pads, parameters, work and receptive field.

    Attributes
    ----------
    name : str
        ``'0: Conv2d'``: the layer's place in the chain and its class.
    in_shape, out_shape : tuple of int
        The layer's input and output shapes.
    pads : tuple of (int, int) or None
        ``(lo, hi)`` per spatial dim, as resolved for this input (convolutions and pools).
    effective_kernel : tuple of int or None
        ``dilation * (k - 1) + 1`` per spatial dim.
    params : int
        Parameter count (weights and bias).
    params_formula : str
        That count's arithmetic, e.g. ``'(5*5 * 3/1 + 1) * 16 = 1,216'``.
    macs : int
        Multiply-adds for the whole batch.
    receptive_field, jump : tuple or None
        After this layer, per spatial dim, in units of the chain's input (Fractions after a
        transposed layer's upsampling).
    out_range : tuple of (int, int) or None
        Transposed layers: the smallest and largest size ``output_padding`` reaches per dim.
    """

    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    pads: tuple[tuple[int, int], ...] | None = None
    effective_kernel: tuple[int, ...] | None = None
    params: int = 0
    params_formula: str = ""
    macs: int = 0
    receptive_field: Extent | None = None
    jump: Extent | None = None
    out_range: tuple[tuple[int, int], ...] | None = None  # transposed: sizes output_padding reaches


@dataclass(frozen=True)
class ShapeReport:
    """What :func:`shape_report` returns: one :class:`LayerShape` per layer and the totals.

    ``str(report)`` is :meth:`table`; in Jupyter it shows as an HTML table.

    Attributes
    ----------
    input_shape : tuple of int
        The chain's input shape ``(N, C, *spatial)``.
    layers : tuple of LayerShape
        One row per layer, in order (a Sequential's children flattened).
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerShape, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The last layer's output shape (the input's for an empty chain)."""
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def params(self) -> int:
        """Parameters of the whole chain."""
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-adds of the whole chain."""
        return sum(layer.macs for layer in self.layers)

    def rows(self) -> list[list[str]]:
        """The table's cells as text: a header, the input, one row per layer, the totals."""
        head = ["layer", "output shape", "padding (lo, hi)", "eff. kernel", "params", "MACs", "RF", "jump"]
        rows = [head, ["input", _shape(self.input_shape), "", "", "", "", "1", "1"]]
        for layer in self.layers:
            rows.append([layer.name, _shape(layer.out_shape), _pads(layer.pads), _tuple(layer.effective_kernel),
                         f"{layer.params:,}" if layer.params else "", f"{layer.macs:,}" if layer.macs else "",
                         _tuple(layer.receptive_field), _tuple(layer.jump)])
        rows.append(["total", _shape(self.output_shape), "", "", f"{self.params:,}", f"{self.macs:,}", "", ""])
        return rows

    def notes(self) -> list[str]:
        """Each parameter count's arithmetic and each transposed layer's reachable sizes."""
        notes = [f"{layer.name}: params {layer.params_formula}" for layer in self.layers if layer.params_formula]
        notes += [f"{layer.name}: output_padding reaches sizes "
                  + ", ".join(f"{lo}..{hi}" for lo, hi in layer.out_range) for layer in self.layers if layer.out_range]
        return notes

    def table(self) -> str:
        """The aligned text table, then the notes."""
        return format_table(self.rows()) + "".join(f"\n  {note}" for note in self.notes())

    __str__ = table

    def _repr_html_(self) -> str:
        return html_table(self.rows())


def format_table(rows: list[list[str]]) -> str:
    """Columns aligned: text left, numbers right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for r, row in enumerate(rows):
        cells = [c.rjust(w) if r and _numeric(c) else c.ljust(w) for c, w in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
        if r == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def html_table(rows: list[list[str]]) -> str:
    """The rows as an HTML table, the first as its header."""
    import html
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace("/", "").isdigit()


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(v) for v in shape) + ")"


def _tuple(values: Sequence[object] | None) -> str:
    if values is None:
        return ""
    return "x".join(str(v) for v in values)


def _pads(pads: Pads | None) -> str:
    if pads is None:
        return ""
    return " ".join(f"({lo},{hi})" for lo, hi in pads)


# ---- building a report ---------------------------------------------------------------
def shape_report(layers: Layers, input_shape: Sequence[int]) -> ShapeReport:
    """Shapes, pads, parameters, multiply-adds and receptive field through a chain of layers.

    Each number comes from the layer's own spec (the one the engine runs).  Receptive field
    and jump, per spatial dim in units of the input: ``rf += (ek - 1) * jump`` and
    ``jump *= stride`` through a convolution or pool; ``rf += (ceil(ek / stride) - 1) * jump``
    and ``jump /= stride`` through a transposed convolution.

    Parameters
    ----------
    layers : Module or sequence of Module
        One npconv.nn module, a ``Sequential`` or a list of modules: convolutions (transposed
        included), pools, ``Flatten``, ``Linear``; any other module keeps the shape.
    input_shape : sequence of int
        ``(N, C, *spatial)``.

    Returns
    -------
    ShapeReport
        One row per layer; ``print(report)`` shows the table.

    Raises
    ------
    ValueError
        A layer that refuses its input (wrong channel count or rank, a kernel larger than the
        padded input), with the engine's message.

    Examples
    --------
    >>> from npconv import nn
    >>> report = shape_report(nn.Conv2d(3, 64, 7, stride=2, padding=3), (1, 3, 224, 224))
    >>> report.output_shape, report.params, report.layers[0].receptive_field
    ((1, 64, 112, 112), 9472, (7, 7))
    """
    shape = tuple(int(v) for v in input_shape)
    n = len(shape) - 2
    rf: Extent = (1,) * n
    jump: Extent = (Fraction(1),) * n
    rows = []
    for index, module in enumerate(_flatten(layers)):
        row = _layer_row(f"{index}: {type(module).__name__}", module, shape, rf, jump)
        rows.append(row)
        shape = row.out_shape
        if row.receptive_field is not None and row.jump is not None:
            rf, jump = row.receptive_field, row.jump
    return ShapeReport(tuple(int(v) for v in input_shape), tuple(rows))


def _flatten(layers: Layers) -> list[Module]:
    if isinstance(layers, Sequential):
        return [m for child in layers for m in _flatten(child)]
    if isinstance(layers, (list, tuple)):
        return [m for child in layers for m in _flatten(child)]
    return [cast(Module, layers)]  # any other module keeps the shape


def _layer_row(name: str, module: Module, shape: tuple[int, ...], rf: Extent, jump: Extent) -> LayerShape:
    if isinstance(module, ConvNd):
        return _conv_row(name, module, shape, rf, jump)
    if isinstance(module, PoolNd):
        k, s, d, pads, out = module.window_geometry(shape[2:])
        ek = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        new_rf, new_jump = grow_receptive_field(rf, jump, ek, s, transposed=False)
        return LayerShape(name, shape, shape[:2] + out, pads, ek, receptive_field=new_rf, jump=new_jump)
    if isinstance(module, Flatten):
        return LayerShape(name, shape, (shape[0], math.prod(shape[1:])))
    if isinstance(module, Linear):
        params = sum(int(np.size(p)) for p in (module.weight, module.bias) if p is not None)
        return LayerShape(name, shape, shape[:-1] + (module.out_features,), params=params,
                          macs=math.prod(shape[:-1]) * module.in_features * module.out_features)
    rf_kept = rf if len(shape) > 2 else None
    return LayerShape(name, shape, shape, receptive_field=rf_kept, jump=jump if rf_kept else None)


def _conv_row(name: str, module: ConvNd, shape: tuple[int, ...], rf: Extent, jump: Extent) -> LayerShape:
    spec: ConvSpec = module.spec
    if len(shape) != spec.ndim + 2 or shape[1] != module.in_channels:
        raise ValueError(f"{name}: expects input (N, {module.in_channels}, {spec.ndim} spatial sizes), "
                         f"got shape {shape}")
    in_spatial = shape[2:]
    out = (shape[0], module.out_channels) + spec.out_spatial(in_spatial)
    per_group = module.in_channels // spec.groups
    k_text = "*".join(str(k) for k in spec.kernel_size)
    has_bias = module.bias is not None
    if spec.transposed:
        params = math.prod(spec.kernel_size) * module.in_channels * (module.out_channels // spec.groups)
        formula = (f"{k_text} * {module.in_channels} * ({module.out_channels}/{spec.groups})"
                   + (f" + {module.out_channels}" if has_bias else ""))
        macs = shape[0] * math.prod(in_spatial) * params  # every input element meets C_out/groups * k taps
    else:
        params = math.prod(spec.kernel_size) * per_group * module.out_channels
        formula = f"({k_text} * {module.in_channels}/{spec.groups}{' + 1' if has_bias else ''}) * {module.out_channels}"
        macs = math.prod(out) * per_group * math.prod(spec.kernel_size)
    params += module.out_channels if has_bias else 0
    new_rf, new_jump = grow_receptive_field(rf, jump, spec.effective_kernel, spec.stride, spec.transposed)
    return LayerShape(name, shape, out, spec.pads(in_spatial), spec.effective_kernel, params,
                      f"{formula} = {params:,}", macs, new_rf, new_jump,
                      spec.transposed_out_range(in_spatial) if spec.transposed else None)


def grow_receptive_field(rf: Extent, jump: Extent, effective_kernel: Sequence[int], stride: Sequence[int],
                         transposed: bool) -> tuple[Extent, Extent]:
    """One layer's step of the receptive-field recurrence (see the module docstring)."""
    if transposed:
        new_rf = tuple(r + (math.ceil(e / s) - 1) * j for r, j, e, s in zip(rf, jump, effective_kernel, stride))
        return tuple(_clean(v) for v in new_rf), tuple(_clean(j / s) for j, s in zip(jump, stride))
    new_rf = tuple(r + (e - 1) * j for r, j, e in zip(rf, jump, effective_kernel))
    return tuple(_clean(v) for v in new_rf), tuple(_clean(j * s) for j, s in zip(jump, stride))


def _clean(value: float | Fraction) -> int | Fraction:
    """Fractions that are whole numbers as ints (jump is fractional only after upsampling)."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else value


# ---- layers built for their arithmetic only ------------------------------------------------
class Unallocated:
    """A parameter's shape and dtype without its values: what a shape report reads of a layer.

    ``npconv shape 1,3,8,8 'Conv2d(3, 100000, 100000)'`` needs the layer's spec, not its
    10.7 PiB of weights; a layer from :func:`shape_only` holds these instead of parameters.
    """

    def __init__(self, shape: Sequence[int], dtype: npt.DTypeLike, owner: str) -> None:
        if not all(is_int(v) and int(v) >= 0 for v in shape):
            raise ValueError(f"{owner}: parameter shape {tuple(shape)} must hold non-negative integers")
        self.shape, self.dtype = tuple(int(v) for v in shape), np.dtype(dtype)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:  # a forward pass here is a bug: say so
        raise TypeError(f"{self!r} has no values: its layer was built for shape arithmetic only")

    def __repr__(self) -> str:
        return f"Unallocated(shape={self.shape}, dtype={self.dtype.name})"


@functools.cache
def shape_only(cls: type) -> type:
    """``cls`` with every parameter :class:`Unallocated`: the same validation, spec, attributes
    and class name, and no memory for weights.  Layers without parameters are returned as is."""
    body: dict[str, Any]
    if issubclass(cls, ConvNd):
        body = {"_create_parameters": _unallocated_conv_parameters}
    elif issubclass(cls, Linear):
        body = {"__init__": _unallocated_linear_init}
    elif issubclass(cls, DepthwiseSeparableConv2d):  # its own __init__, building shape-only convs
        body = {"__init__": _with_globals(cls.__init__, Conv2d=shape_only(Conv2d))}
    else:
        return cls
    return type(cls.__name__, (cls,), {**body, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                       "__doc__": cls.__doc__})


def _unallocated_conv_parameters(self: ConvNd, bias: bool) -> None:
    """ConvNd._create_parameters, with the weight and bias only described."""
    name = type(self).__name__
    shape = weight_shape(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.transposed)
    slots: dict[str, Any] = self._parameters  # an Unallocated stands where a Parameter would
    slots["weight"] = Unallocated(shape, self._dtype, name)
    slots["bias"] = Unallocated((self.out_channels,), self._dtype, name) if bias else None


def _unallocated_linear_init(self: Linear, in_features: int, out_features: int, bias: bool = True,
                             device: str | None = None, dtype: npt.DTypeLike | None = None) -> None:
    """Linear.__init__ (same signature and checks), with the weight and bias only described."""
    Module.__init__(self)
    checked = check_module_dtype(dtype, device)
    self.in_features, self.out_features = in_features, out_features
    slots: dict[str, Any] = self._parameters  # an Unallocated stands where a Parameter would
    slots["weight"] = Unallocated((out_features, in_features), checked, "Linear")
    slots["bias"] = Unallocated((out_features,), checked, "Linear") if bias else None


def _with_globals(function: Callable[..., Any], **names: object) -> Callable[..., Any]:
    """``function`` reading some global names differently: the class's own constructor keeps
    its checks and stays in step with it, while the modules it builds become shape-only."""
    rebound = types.FunctionType(function.__code__, {**function.__globals__, **names}, function.__name__,
                                 function.__defaults__, function.__closure__)
    rebound.__kwdefaults__, rebound.__qualname__ = function.__kwdefaults__, function.__qualname__
    return rebound
