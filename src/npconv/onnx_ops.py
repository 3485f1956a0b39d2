"""The ONNX operators :class:`npconv.onnx_session.InferenceSession` runs: element-wise maths and
the tensor plumbing (shapes, slices, casts) of CNN graphs.  The network layers (Conv, pools,
normalisations, Gemm, Softmax) are in :mod:`npconv.onnx_ops_nn`.

Each operator is a *builder*: it reads one node's attributes (and its opset, where an attribute
became an input) once and returns a *kernel*, a function of the node's input arrays (None for
an omitted optional input) returning its output array(s).  Element-wise operators follow
NumPy's (= ONNX's multidirectional) broadcasting and keep the input's float type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
from scipy import special

__all__ = ["Node", "Kernel", "Builder", "BUILDERS", "ONNX_DTYPES", "ints_of"]

Kernel = Callable[..., Union[np.ndarray, tuple[np.ndarray, ...]]]
Builder = Callable[["Node"], Kernel]

#: TensorProto element types this runtime computes with, as NumPy dtypes.
ONNX_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8), 4: np.dtype(np.uint16),
    5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.int64), 9: np.dtype(np.bool_),
    10: np.dtype(np.float16), 11: np.dtype(np.float64), 12: np.dtype(np.uint32), 13: np.dtype(np.uint64)}


@dataclass(frozen=True)
class Node:
    """One ONNX node, read once: what a builder needs to make its kernel.

    Parameters
    ----------
    name, op_type : str
        The node's name (may be empty) and operator.
    attributes : dict
        Attribute values: ints, floats, str (not bytes), lists of them, ndarrays for tensors.
    opset : int
        The model's opset of the default domain (attributes moved to inputs over opsets).
    inputs, outputs : tuple of str
        Value names; '' marks an omitted optional input or output.
    constants : dict
        Values of inputs known before running (initializers, Constant outputs).

    Examples
    --------
    >>> node = Node("n", "Relu", {}, 17, ("x",), ("y",))
    >>> BUILDERS["Relu"](node)(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    name: str
    op_type: str
    attributes: dict[str, Any]
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        """The attribute ``key``, or ``default`` when the node does not set it.

        Parameters
        ----------
        key : str
            The attribute's ONNX name.
        default : object, optional
            ONNX's default.

        Returns
        -------
        object
        """
        return self.attributes.get(key, default)

    def constant(self, index: int) -> np.ndarray | None:
        """The value of input ``index`` when known before running (else None).

        Parameters
        ----------
        index : int
            The input's position.

        Returns
        -------
        numpy.ndarray or None
        """
        if index >= len(self.inputs) or not self.inputs[index]:
            return None
        return self.constants.get(self.inputs[index])

    def refuse(self, why: str) -> ValueError:
        """A ValueError naming this node and its operator.

        Parameters
        ----------
        why : str
            What is not supported, with the numbers.

        Returns
        -------
        ValueError
        """
        return ValueError(f"{self.op_type} node {self.name!r}: {why}")


def ints_of(value: np.ndarray | None) -> list[int] | None:
    """A 1-D int tensor input (axes, shape, pads) as a list of ints; None stays None.

    Parameters
    ----------
    value : numpy.ndarray or None

    Returns
    -------
    list of int or None
    """
    return None if value is None else [int(v) for v in np.asarray(value).ravel()]


def _scalar(x: np.ndarray, value: float) -> Any:
    return x.dtype.type(value)


# ---- element-wise --------------------------------------------------------------------------

def _unary(function: Callable[[np.ndarray], np.ndarray]) -> Builder:
    return lambda node: function


def _binary(function: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Builder:
    return lambda node: function


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Div: true division for floats, truncation toward zero for integers (ONNX's rule)."""
    if a.dtype.kind in "iu":
        return np.trunc(np.true_divide(a, b)).astype(a.dtype)
    return np.true_divide(a, b)


def _power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pow: the result has the base's type, whatever the exponent's (an integer base to a
    negative power is computed in float64 and truncated, as ONNX Runtime gives 0 for 2^-1)."""
    if x.dtype.kind in "iu" and y.dtype.kind in "iu" and (np.asarray(y) < 0).any():
        return np.trunc(np.power(x.astype(np.float64), y.astype(np.float64))).astype(x.dtype)
    result = np.power(x, y.astype(x.dtype) if x.dtype.kind == "f" else y)
    return np.asarray(result).astype(x.dtype, copy=False)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, _scalar(x, 0))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2: no overflow either side."""
    half = _scalar(x, 0.5)
    return half * (np.tanh(x * half) + _scalar(x, 1))


def _erf(x: np.ndarray) -> np.ndarray:
    return special.erf(x).astype(x.dtype, copy=False)


def _hard_sigmoid(node: Node) -> Kernel:
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)

    def kernel(x: np.ndarray) -> np.ndarray:
        return np.clip(x * _scalar(x, alpha) + _scalar(x, beta), _scalar(x, 0), _scalar(x, 1))
    return kernel


def _hard_swish(x: np.ndarray) -> np.ndarray:
    """x * max(0, min(1, x / 6 + 1/2))."""
    gate = np.clip(x * _scalar(x, 1 / 6) + _scalar(x, 0.5), _scalar(x, 0), _scalar(x, 1))
    return x * gate


def _clip(node: Node) -> Kernel:
    """Clip: min/max attributes before opset 11, optional inputs from then on."""
    if node.opset < 11:
        low, high = node.attr("min"), node.attr("max")
        return lambda x: _clipped(x, None if low is None else np.asarray(low), None if high is None else np.asarray(high))
    return lambda x, low=None, high=None: _clipped(x, low, high)


def _clipped(x: np.ndarray, low: np.ndarray | None, high: np.ndarray | None) -> np.ndarray:
    """max(x, low) then min(., high): min > max gives max everywhere, as ONNX says."""
    y = x if low is None else np.maximum(x, low.astype(x.dtype))
    return y if high is None else np.minimum(y, high.astype(x.dtype))


# ---- plumbing -------------------------------------------------------------------------------

def _constant(node: Node) -> Kernel:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attributes:
            value = node.attributes[key]
            dtype = np.float32 if key.startswith("value_float") else np.int64 if key != "value" else None
            array = np.asarray(value, dtype=dtype)
            return lambda: array
    raise node.refuse(f"only value, value_float(s) and value_int(s) are supported, got attributes "
                      f"{sorted(node.attributes)}")


def _constant_of_shape(node: Node) -> Kernel:
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).ravel()
    return lambda shape: np.full(ints_of(shape) or [], fill[0], dtype=fill.dtype)


def _cast(node: Node) -> Kernel:
    to = node.attr("to")
    if to not in ONNX_DTYPES:
        raise node.refuse(f"cast to TensorProto type {to} is not supported (supported: {sorted(ONNX_DTYPES)})")
    dtype = ONNX_DTYPES[to]
    return lambda x: x.astype(dtype)


def _shape(node: Node) -> Kernel:
    start, end = node.attr("start", 0), node.attr("end")
    return lambda x: np.array(x.shape[start:end], dtype=np.int64)


def _flatten(node: Node) -> Kernel:
    axis = node.attr("axis", 1)

    def kernel(x: np.ndarray) -> np.ndarray:
        cut = axis + x.ndim if axis < 0 else axis
        return x.reshape(int(np.prod(x.shape[:cut])), int(np.prod(x.shape[cut:])))
    return kernel


def _reshape(node: Node) -> Kernel:
    """Reshape: 0 copies the input's dimension unless allowzero=1; -1 is inferred."""
    allow_zero = node.attr("allowzero", 0)

    def kernel(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        target = ints_of(shape) or []
        if not allow_zero:
            target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
        return x.reshape(target)
    return kernel


def _transpose(node: Node) -> Kernel:
    perm = node.attr("perm")
    return lambda x: np.transpose(x, perm)


def _concat(node: Node) -> Kernel:
    axis = node.attr("axis")
    return lambda *xs: np.concatenate(xs, axis=axis)


def _gather(node: Node) -> Kernel:
    axis = node.attr("axis", 0)
    return lambda data, indices: np.take(data, indices.astype(np.int64), axis=axis)


def _axes_from(node: Node, attribute_until: int) -> Callable[[np.ndarray | None], list[int] | None]:
    """Axes as an attribute (opset < attribute_until) or as the second input (from then on)."""
    if node.opset < attribute_until:
        axes = node.attr("axes")
        return lambda given: axes
    return ints_of


def _unsqueeze(node: Node) -> Kernel:
    axes_of = _axes_from(node, 13)

    def kernel(x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        chosen = axes_of(axes) or []
        rank = x.ndim + len(chosen)
        return np.expand_dims(x, tuple(sorted(a + rank if a < 0 else a for a in chosen)))
    return kernel


def _squeeze(node: Node) -> Kernel:
    axes_of = _axes_from(node, 13)

    def kernel(x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        chosen = axes_of(axes)
        return np.squeeze(x) if chosen is None else np.squeeze(x, axis=tuple(chosen))
    return kernel


def _slice(node: Node) -> Kernel:
    """Slice: starts/ends/axes attributes before opset 10, inputs (with steps) from then on."""
    if node.opset < 10:
        fixed = [node.attr("starts"), node.attr("ends"), node.attr("axes")]
        return lambda x: _sliced(x, fixed[0], fixed[1], fixed[2], None)
    return lambda x, starts, ends, axes=None, steps=None: _sliced(x, ints_of(starts) or [], ints_of(ends) or [],
                                                                 ints_of(axes), ints_of(steps))


def _sliced(x: np.ndarray, starts: list[int], ends: list[int], axes: list[int] | None,
            steps: list[int] | None) -> np.ndarray:
    index = [slice(None)] * x.ndim
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = x.shape[axis]
        start, end = (v + size if v < 0 else v for v in (start, end))
        if step > 0:
            start, end = min(max(start, 0), size), min(max(end, 0), size)
        else:  # backwards: start in [0, size - 1], end in [-1, size - 1] (-1: past the first)
            start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
        index[axis] = slice(start, None if end < 0 else end, step)
    return x[tuple(index)]


def _pad(node: Node) -> Kernel:
    """Pad: constant, reflect, edge and wrap modes; negative pads crop."""
    mode = node.attr("mode", "constant")
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if numpy_mode is None:
        raise node.refuse(f"mode must be one of constant, reflect, edge, wrap, got mode={mode!r}")
    if node.opset < 11:
        fixed_pads, fixed_value = node.attr("pads"), node.attr("value", 0.0)
        return lambda x: _padded(x, fixed_pads, None, np.asarray(fixed_value), numpy_mode)
    return lambda x, pads, value=None, axes=None: _padded(x, ints_of(pads) or [], ints_of(axes), value, numpy_mode)


def _padded(x: np.ndarray, pads: list[int], axes: list[int] | None, value: np.ndarray | None,
            mode: str) -> np.ndarray:
    axes = list(range(x.ndim)) if axes is None else [a + x.ndim if a < 0 else a for a in axes]
    pairs = [(0, 0)] * x.ndim
    for i, axis in enumerate(axes):
        pairs[axis] = (pads[i], pads[i + len(axes)])
    crop = tuple(slice(max(-lo, 0), size - max(-hi, 0)) for (lo, hi), size in zip(pairs, x.shape))
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if mode != "constant":
        return np.pad(x[crop], grow, mode=mode)  # type: ignore[call-overload]  # reflect/edge/wrap
    fill = 0 if value is None or np.size(value) == 0 else np.asarray(value).ravel()[0]
    return np.pad(x[crop], grow, mode="constant", constant_values=fill)


BUILDERS: dict[str, Builder] = {
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply),
    "Div": _binary(_divide), "Pow": _binary(_power),
    "Relu": _unary(_relu), "Sigmoid": _unary(_sigmoid), "Tanh": _unary(np.tanh), "Sqrt": _unary(np.sqrt),
    "Erf": _unary(_erf), "HardSwish": _unary(_hard_swish), "HardSigmoid": _hard_sigmoid, "Clip": _clip,
    "Identity": _unary(lambda x: x), "Constant": _constant, "ConstantOfShape": _constant_of_shape,
    "Cast": _cast, "Shape": _shape, "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose,
    "Concat": _concat, "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Slice": _slice,
    "Pad": _pad,
}
