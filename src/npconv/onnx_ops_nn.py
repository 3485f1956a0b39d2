"""The network-layer ONNX operators of :class:`npconv.onnx_session.InferenceSession`: Conv and
ConvTranspose on npconv's engine (through :func:`npconv.convert.onnx.onnx_node_to_call`, the
ONNX attribute rules of :mod:`npconv.onnx_pads`), pooling on :func:`npconv.windows.im2col`,
BatchNormalization (inference), LayerNormalization, Gemm, MatMul, ReduceMean and Softmax.

Builders and kernels as in :mod:`npconv.onnx_ops`.  Reductions and normalisation statistics
are computed in float64 and returned in the input's float type.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .onnx_ops import Builder, Kernel, Node, ints_of
from .onnx_pads import auto_pad_name, int_list, pads_attribute
from .windows import im2col

__all__ = ["BUILDERS", "pool_geometry"]

_CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _npconv_call(node: Node, op: str, attributes: dict[str, Any]) -> Kernel:
    """An npconv call worked out once from the attributes (and W's shape when W is known
    now), or once per W shape when only W says how many spatial axes there are."""
    from .convert.onnx import onnx_node_to_call  # here: npconv.onnx imports this module's session

    weight = node.constant(1)
    spatial = ("kernel_shape", "strides", "dilations", "pads", "output_padding")
    if weight is not None or any(attributes.get(key) is not None for key in spatial):
        call = onnx_node_to_call(attributes, op, weight_shape=None if weight is None else weight.shape)
        return lambda x, w, b=None: call(x, w, b)
    calls: dict[tuple[int, ...], Any] = {}

    def kernel(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if w.shape not in calls:
            calls[w.shape] = onnx_node_to_call(attributes, op, weight_shape=w.shape)
        return calls[w.shape](x, w, b)
    return kernel


def _conv(node: Node) -> Kernel:
    """Conv on npconv's engine (SAME_* stay npconv's run-time 'same' rules)."""
    return _npconv_call(node, "Conv", {k: v for k, v in node.attributes.items() if k in _CONV_ATTRIBUTES})


def _conv_transpose(node: Node) -> Kernel:
    """ConvTranspose: an npconv call, or :func:`npconv.onnx.conv_transpose` per call where the
    pads depend on the input size (output_shape, SAME_*)."""
    from .onnx import conv_transpose

    attributes = {k: v for k, v in node.attributes.items() if k in _CONV_ATTRIBUTES + ("output_padding", "output_shape")}
    auto_pad = auto_pad_name("ConvTranspose", attributes.get("auto_pad", "NOTSET"))
    if "output_shape" in attributes or auto_pad not in ("NOTSET", "VALID"):
        return lambda x, w, b=None: conv_transpose(x, w, b, **attributes)
    return _npconv_call(node, "ConvTranspose", attributes)


def _channel_shaped(vector: np.ndarray, ndim: int) -> np.ndarray:
    return vector.reshape((-1,) + (1,) * (ndim - 2))


def _batch_norm(node: Node) -> Kernel:
    """BatchNormalization in inference mode: (x - mean) / sqrt(var + eps) * scale + B."""
    if node.attr("training_mode", 0):
        raise node.refuse("training_mode=1 is not supported (inference only: running statistics)")
    if len([o for o in node.outputs if o]) > 1:
        raise node.refuse("running mean/var outputs belong to training mode; only Y is supported")
    if not node.attr("spatial", 1):
        raise node.refuse("spatial=0 (opsets 7-8: statistics per element, not per channel) is not supported")
    epsilon = node.attr("epsilon", 1e-5)

    def kernel(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        factor = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
        shift = bias.astype(np.float64) - mean.astype(np.float64) * factor
        return x * _channel_shaped(factor.astype(x.dtype), x.ndim) + _channel_shaped(shift.astype(x.dtype), x.ndim)
    return kernel


def _layer_norm(node: Node) -> Kernel:
    """LayerNormalization over the axes from ``axis`` on; Mean and InvStdDev outputs optional."""
    axis, epsilon = node.attr("axis", -1), node.attr("epsilon", 1e-5)

    def kernel(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        first = axis + x.ndim if axis < 0 else axis
        wide = x.astype(np.float64)
        axes = tuple(range(first, x.ndim))
        mean = wide.mean(axis=axes, keepdims=True)
        centred = wide - mean
        inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + epsilon)
        y = centred * inv_std * scale
        y = y if bias is None else y + bias
        stash = np.float32 if node.attr("stash_type", 1) == 1 else x.dtype
        return y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)
    return kernel


# ---- pooling --------------------------------------------------------------------------------

def pool_geometry(in_spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                  dilations: Sequence[int], auto_pad: str, pads: Sequence[int] | None,
                  ceil_mode: bool, op: str) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]:
    """ONNX MaxPool/AveragePool windows: pads, the overhang past the padded input, output size.

    Parameters
    ----------
    in_spatial, kernel, strides, dilations : sequence of int
        One per spatial axis.
    auto_pad : str
        NOTSET, SAME_UPPER, SAME_LOWER or VALID.
    pads : sequence of int or None
        [b1, ..., bn, e1, ..., en] (NOTSET only).
    ceil_mode : bool
        Round the output size up; a last window starting in the end padding is dropped.
    op : str
        The operator's name in messages.

    Returns
    -------
    pads : tuple of (int, int)
        (begin, end) pads per axis.
    overhang : tuple of int
        How far the last window reaches past the end pad (ceil_mode), never counted.
    out : tuple of int
        The output's spatial size.

    Raises
    ------
    ValueError
        A window larger than the padded input.

    Examples
    --------
    >>> pool_geometry([5], [2], [2], [1], "NOTSET", [0, 0], True, "MaxPool")
    (((0, 0),), (1,), (3,))
    """
    n = len(in_spatial)
    given = pads_attribute(op, auto_pad, pads, n)
    pairs, out = [], []
    for axis, (size, k, s, d) in enumerate(zip(in_spatial, kernel, strides, dilations)):
        span = (k - 1) * d + 1
        if given is None:  # SAME_*: out = ceil(in / stride)
            count = -(-size // s)
            total = max((count - 1) * s + span - size, 0)
            lo = total - total // 2 if auto_pad == "SAME_LOWER" else total // 2
            pair = (lo, total - lo)
        else:
            pair = given[axis]
            room = size + pair[0] + pair[1] - span
            count = (-(-room // s) if ceil_mode else room // s) + 1
            if ceil_mode and (count - 1) * s >= size + pair[0]:
                count -= 1
            if room < 0:
                raise ValueError(f"{op}: the window (k - 1) * dilation + 1 = {span} is larger than the padded "
                                 f"input {size} + {pair[0]} + {pair[1]} on spatial axis {axis}")
        pairs.append(pair)
        out.append(count)
    overhang = tuple(max((o - 1) * s + (k - 1) * d + 1 - size - lo - hi, 0)
                     for o, s, k, d, size, (lo, hi) in zip(out, strides, kernel, dilations, in_spatial, pairs))
    return tuple(pairs), overhang, tuple(out)


def _pool_settings(node: Node) -> tuple[list[int], str, bool]:
    kernel = node.attr("kernel_shape")
    if kernel is None:
        raise node.refuse("kernel_shape is required")
    return list(kernel), auto_pad_name(node.op_type, node.attr("auto_pad", "NOTSET")), bool(node.attr("ceil_mode", 0))


def _windows(node: Node, x: np.ndarray, kernel: list[int], auto_pad: str, ceil_mode: bool,
             fill: float) -> tuple[np.ndarray, tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]:
    """(N, C, prod(kernel), *out) windows of x padded with ``fill``, and the geometry."""
    n = x.ndim - 2
    strides = int_list(node.op_type, "strides", node.attr("strides"), n, 1, 1)
    dilations = int_list(node.op_type, "dilations", node.attr("dilations"), n, 1, 1)
    pads, overhang, out = pool_geometry(x.shape[2:], kernel, strides, dilations, auto_pad, node.attr("pads"),
                                        ceil_mode, node.op_type)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(lo, hi + extra) for (lo, hi), extra in zip(pads, overhang)],
                    constant_values=fill)
    cols = im2col(padded, kernel, strides, dilations, ((0, 0),) * n, out)
    return cols.reshape(x.shape[:2] + (math.prod(kernel),) + out), pads, overhang, out


def _max_pool(node: Node) -> Kernel:
    if len([o for o in node.outputs if o]) > 1:
        raise node.refuse("the Indices output is not supported (only Y)")
    kernel, auto_pad, ceil_mode = _pool_settings(node)
    return lambda x: _windows(node, x, kernel, auto_pad, ceil_mode, _lowest(x.dtype))[0].max(axis=2)


def _lowest(dtype: np.dtype) -> float:
    """The padding a max never picks: -inf, or an integer type's least value."""
    return float(np.iinfo(dtype).min) if dtype.kind in "iu" else -np.inf


def _average_pool(node: Node) -> Kernel:
    """AveragePool: count_include_pad counts the pads, never the ceil_mode overhang."""
    kernel, auto_pad, ceil_mode = _pool_settings(node)
    include_pad = bool(node.attr("count_include_pad", 0))

    def kernel_fn(x: np.ndarray) -> np.ndarray:
        cols, pads, overhang, out = _windows(node, x, kernel, auto_pad, ceil_mode, 0.0)
        n = x.ndim - 2
        inside = [size + lo + hi if include_pad else size for size, (lo, hi) in zip(x.shape[2:], pads)]
        marks = np.zeros((1, 1) + tuple(s + lo + hi + e for s, (lo, hi), e in zip(x.shape[2:], pads, overhang)))
        start = [0 if include_pad else lo for lo, _ in pads]
        marks[(0, 0) + tuple(slice(b, b + length) for b, length in zip(start, inside))] = 1.0
        strides = int_list(node.op_type, "strides", node.attr("strides"), n, 1, 1)
        dilations = int_list(node.op_type, "dilations", node.attr("dilations"), n, 1, 1)
        counts = im2col(marks, kernel, strides, dilations, ((0, 0),) * n, out).reshape((math.prod(kernel),) + out)
        total = cols.astype(np.float64).sum(axis=2)
        return (total / counts.sum(axis=0)).astype(x.dtype)
    return kernel_fn


def _global_average_pool(node: Node) -> Kernel:
    return lambda x: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype)


# ---- linear algebra and reductions ------------------------------------------------------------

def _gemm(node: Node) -> Kernel:
    """Gemm: alpha * A' @ B' + beta * C, A' and B' transposed as transA/transB say."""
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)

    def kernel(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        y = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if alpha != 1.0:
            y = y * a.dtype.type(alpha)
        if c is None or beta == 0.0:  # beta 0 ignores C (NaN and inf in it too), as ONNX Runtime
            return y
        return y + (c if beta == 1.0 else c * c.dtype.type(beta))
    return kernel


def _reduce_mean(node: Node) -> Kernel:
    """ReduceMean: axes attribute before opset 18, an input from then on (noop_with_empty_axes)."""
    keepdims, noop = bool(node.attr("keepdims", 1)), bool(node.attr("noop_with_empty_axes", 0))
    fixed = node.attr("axes")

    def kernel(x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        chosen = fixed if node.opset < 18 else ints_of(axes)
        if not chosen:
            if noop:
                return x
            chosen = list(range(x.ndim))
        y = x.mean(axis=tuple(chosen), keepdims=keepdims, dtype=np.float64)
        return np.asarray(y).astype(x.dtype)
    return kernel


def _softmax(node: Node) -> Kernel:
    """Softmax: over ``axis`` (default -1) from opset 13; before, over the input flattened to
    2-D at ``axis`` (default 1)."""
    if node.opset >= 13:
        axis = node.attr("axis", -1)
        return lambda x: _softmax_along(x, axis)
    axis = node.attr("axis", 1)

    def kernel(x: np.ndarray) -> np.ndarray:
        cut = axis + x.ndim if axis < 0 else axis
        flat = x.reshape(int(np.prod(x.shape[:cut])), -1)
        return _softmax_along(flat, 1).reshape(x.shape)
    return kernel


def _softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


BUILDERS: dict[str, Builder] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm, "MaxPool": _max_pool, "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool, "Gemm": _gemm, "MatMul": lambda node: np.matmul,
    "ReduceMean": _reduce_mean, "Softmax": _softmax,
}
