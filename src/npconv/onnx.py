"""ONNX's Conv, ConvTranspose and Col2Im, run on npconv's engine.

Each function follows its ONNX operator spec (opset 22 for Conv/ConvTranspose, 18 for
Col2Im): inputs as positional arrays, attributes as keyword arguments under their ONNX
names.  ONNX rules are turned into explicit ``(begin, end)`` pads once (:func:`conv_pads`,
:func:`conv_transpose_pads`) and then handed to :class:`npconv.spec.ConvSpec`, so there is
no second convolution here.  The ``onnx`` package is not needed.

Shape rules (``ek = (k - 1) * dilation + 1``, the effective kernel)::

    Conv:           out = floor((in + pad_begin + pad_end - ek) / stride) + 1
      SAME_*:       out = ceil(in / stride), total = max((out - 1) * stride + ek - in, 0),
                    SAME_UPPER: begin = total // 2 (the odd one at the end), SAME_LOWER: the
                    odd one at the beginning
    ConvTranspose:  out = stride * (in - 1) + output_padding + ek - pad_begin - pad_end
      output_shape: total = stride * (in - 1) + output_padding + ek - output_shape,
                    SAME_UPPER: begin = total // 2, end = total - total // 2;
                    NOTSET/VALID/SAME_LOWER: begin = total - total // 2, end = total // 2
                    (floor division, so a negative total grows the output with zeros)
      SAME_* without output_shape: output_shape = in * stride
    Col2Im:         image_shape is given; blocks L = prod(floor((image + pad_begin +
                    pad_end - ek) / stride) + 1)

Dtypes: X, W and B share one type (ONNX's ``T``); the result has it.  float16 is computed in
float32 and returned as float16.  Every refusal (``ValueError``/``TypeError``) names the
attribute, the rule and the numbers, and comes before any arithmetic.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence, Union

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_real_array, compute_dtypes
from .functional import fold
from .spec import ConvSpec, Pads, ntuple, same_pads
from .spec_errors import ConvRule, ConvRuleError, worded

__all__ = ["conv", "conv_transpose", "col2im", "conv_pads", "conv_transpose_pads",
           "transposed_engine_pads", "AUTO_PADS"]

#: The values ONNX allows for the ``auto_pad`` attribute.
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
# an ONNX ints attribute as a node or a user gives it: a list, a tuple or a 1-D int array
Ints = Union[Sequence[int], np.ndarray]


# ---- attribute normalisation --------------------------------------------------------------

def int_list(op: str, name: str, value: Ints | None, length: int, default: int, minimum: int) -> tuple[int, ...]:
    """An ONNX ints attribute as a tuple of ``length`` ints >= ``minimum`` (None: default)."""
    if value is None:
        return (default,) * length
    values = [int(v) for v in value.ravel()] if isinstance(value, np.ndarray) else value
    with worded(ONNX_WORDS):
        return ntuple(values, length, name, op, minimum=minimum, broadcast=False)


def auto_pad_name(op: str, auto_pad: str | bytes) -> str:
    """auto_pad as a str (ONNX protobufs hold bytes), refused unless one of AUTO_PADS."""
    text = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if text not in AUTO_PADS:
        raise ValueError(f"{op}: auto_pad must be one of {AUTO_PADS}, got auto_pad={auto_pad!r}")
    return text


def pads_attribute(op: str, auto_pad: str, pads: Ints | None, n: int) -> Pads | None:
    """``pads`` [b1, ..., bn, e1, ..., en] as n (begin, end) pairs; None when auto_pad rules."""
    if pads is not None and auto_pad != "NOTSET":
        given = int_list(op, "pads", pads, 2 * n, 0, 0)
        if auto_pad != "VALID" or any(given):  # zero pads with VALID say the same thing
            raise ValueError(f"{op}: pads cannot be used together with auto_pad={auto_pad!r} "
                             f"(ONNX: auto_pad must be NOTSET when pads is given), got pads={list(given)}")
    if auto_pad == "VALID":
        return ((0, 0),) * n
    if auto_pad != "NOTSET":
        return None
    flat = int_list(op, "pads", pads, 2 * n, 0, 0)
    return tuple(zip(flat[:n], flat[n:]))


def _same_split(total: int, upper: bool) -> tuple[int, int]:
    return (total // 2, total - total // 2) if upper else (total - total // 2, total // 2)


def conv_pads(in_spatial: Sequence[int], kernel_shape: Sequence[int], *, auto_pad: str | bytes = "NOTSET",
              dilations: Ints | None = None, pads: Ints | None = None, strides: Ints | None = None,
              op: str = "Conv") -> Pads:
    """Conv's (begin, end) pads per spatial axis for this input size.

    Parameters
    ----------
    in_spatial, kernel_shape : sequence of ints
        The input's spatial sizes and the kernel's.
    auto_pad, dilations, pads, strides
        Conv's attributes, as :func:`conv` takes them (keyword-only).
    op : str, default 'Conv'
        The name in messages.

    Returns
    -------
    tuple of (int, int)

    Raises
    ------
    ValueError
        An unknown auto_pad, or pads beside an auto_pad other than NOTSET.
    ConvRuleError, ConvRuleTypeError
        An attribute of the wrong length or type, a value below its minimum.

    Examples
    --------
    >>> conv_pads((5, 5), (3, 3), auto_pad="SAME_LOWER", strides=(2, 2))
    ((1, 1), (1, 1))
    >>> conv_pads((6,), (3,), auto_pad="SAME_UPPER", strides=(2,))
    ((0, 1),)
    """
    n = len(in_spatial)
    auto_pad = auto_pad_name(op, auto_pad)
    strides = int_list(op, "strides", strides, n, 1, 1)
    dilations = int_list(op, "dilations", dilations, n, 1, 1)
    pairs = pads_attribute(op, auto_pad, pads, n)
    if pairs is not None:
        return pairs
    return tuple(same_pads(size, k, s, d, lower=auto_pad == "SAME_LOWER")
                 for size, k, s, d in zip(in_spatial, kernel_shape, strides, dilations))


def conv_transpose_pads(in_spatial: Sequence[int], kernel_shape: Sequence[int], *,
                        auto_pad: str | bytes = "NOTSET", dilations: Ints | None = None,
                        output_padding: Ints | None = None, output_shape: Ints | None = None,
                        pads: Ints | None = None, strides: Ints | None = None,
                        op: str = "ConvTranspose") -> Pads:
    """ConvTranspose's (begin, end) pads; negative when output_shape exceeds the full scatter.

    Parameters
    ----------
    in_spatial, kernel_shape : sequence of ints
        The input's spatial sizes and the kernel's.
    auto_pad, dilations, output_padding, output_shape, pads, strides
        ConvTranspose's attributes, as :func:`conv_transpose` takes them (keyword-only).
    op : str, default 'ConvTranspose'
        The name in messages.

    Returns
    -------
    tuple of (int, int)

    Raises
    ------
    ValueError, ConvRuleError, ConvRuleTypeError
        As :func:`conv_pads`; output_padding not below ``max(stride, dilation)``.

    Examples
    --------
    >>> conv_transpose_pads((3, 3), (3, 3), strides=(3, 2), output_shape=(10, 8))
    ((0, -1), (0, -1))
    >>> conv_transpose_pads((3, 3), (3, 3), strides=(2, 2), auto_pad="SAME_UPPER")
    ((0, 1), (0, 1))
    """
    n = len(in_spatial)
    auto_pad = auto_pad_name(op, auto_pad)
    strides = int_list(op, "strides", strides, n, 1, 1)
    dilations = int_list(op, "dilations", dilations, n, 1, 1)
    output_padding = int_list(op, "output_padding", output_padding, n, 0, 0)
    given = pads_attribute(op, auto_pad, pads, n)  # refuses pads beside auto_pad SAME_*
    if output_shape is None and given is not None:  # auto_pad NOTSET or VALID
        return given
    if output_shape is None:
        output_shape = tuple(i * s for i, s in zip(in_spatial, strides))
    target = output_shape_values(op, output_shape, n)
    with worded(ONNX_WORDS):  # the full scatter: the spec's transposed size without pads
        full = ConvSpec.build(tuple(kernel_shape), strides, 0, dilations, 1, "zeros", True, output_padding,
                              op=op).out_spatial(in_spatial)
    return tuple(_same_split(f - o, auto_pad == "SAME_UPPER") for f, o in zip(full, target))


def output_shape_values(op: str, output_shape: Ints, n: int) -> tuple[int, ...]:
    """output_shape's n spatial sizes (a leading (N, C) is dropped, as ONNX Runtime does)."""
    values = list(np.asarray(output_shape).ravel()) if isinstance(output_shape, np.ndarray) else output_shape
    if isinstance(values, (list, tuple)) and len(values) == n + 2:
        values = values[2:]
    return int_list(op, "output_shape", values, n, 1, 1)


def transposed_engine_pads(pairs: Pads, output_padding: Sequence[int], strides: Sequence[int],
                           dilations: Sequence[int]) -> tuple[Pads, tuple[int, ...], Pads]:
    """Split ONNX's ConvTranspose pads into PyTorch-style settings and zeros to add around.

    The ONNX output is the window [begin, begin + out) of the full scatter extended with zeros;
    output_padding moves its end.  A negative end becomes output_padding as far as PyTorch
    allows; begin and end never have opposite signs (output_shape splits one total), so the
    engine's output is never smaller than one.

    Parameters
    ----------
    pairs : tuple of (int, int)
        ONNX's (begin, end) pads, from :func:`conv_transpose_pads` (may be negative).
    output_padding, strides, dilations : sequence of ints
        The attributes, one per spatial axis.

    Returns
    -------
    pads : tuple of (int, int)
        Pads >= 0 for :class:`npconv.spec.ConvSpec`.
    output_padding : tuple of int
        Each below ``max(stride, dilation)``.
    grow : tuple of (int, int)
        (before, after) zeros to add around the engine's result.

    Examples
    --------
    >>> transposed_engine_pads(((0, -3),), (0,), (2,), (1,))
    (((0, 0),), (1,), ((0, 2),))
    """
    engine: list[tuple[int, int]] = []
    engine_op: list[int] = []
    grow: list[tuple[int, int]] = []
    for (lo, hi), p, s, d in zip(pairs, output_padding, strides, dilations):
        past_end = p - hi if hi < 0 else 0  # how far the output reaches past the scatter's end
        op = min(past_end, max(s, d) - 1) if hi < 0 else p  # hi >= 0: PyTorch's own settings
        engine.append((max(lo, 0), max(hi, 0)))
        engine_op.append(op)
        grow.append((max(-lo, 0), past_end - op if hi < 0 else 0))
    return tuple(engine), tuple(engine_op), tuple(grow)


# ---- operand checks ------------------------------------------------------------------------

def _operands(op: str, X: npt.ArrayLike, W: npt.ArrayLike,
              B: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X, W (and B) as arrays of X's float type; W and B must share it (ONNX's T)."""
    x = as_real_array(X, "X", op)
    return x, _of_type(op, x, "W", W), None if B is None else _of_type(op, x, "B", B)


def _of_type(op: str, x: np.ndarray, name: str, value: npt.ArrayLike) -> np.ndarray:
    a = as_real_array(value, name, op)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and a.dtype != x.dtype:
        raise TypeError(f"{op}: X, W and B must share one type T, got X {x.dtype} and {name} {a.dtype}")
    return a.astype(x.dtype, copy=False)


def _check_ranks(op: str, x: np.ndarray, w: np.ndarray, kernel_shape: Ints | None) -> int:
    """ONNX's own operand rules (batched X of W's rank, kernel_shape matching W); returns the
    number of spatial axes.  Channels, group and B are the spec's rules, said in ONNX_WORDS."""
    if w.ndim < 3 or x.ndim != w.ndim:
        raise ValueError(f"{op}: X must be (N, C, D1, ..., Dn) and W (M, C/group, k1, ..., kn) with the "
                         f"same rank >= 3, got X of shape {list(x.shape)} and W of shape {list(w.shape)}")
    if kernel_shape is not None and int_list(op, "kernel_shape", kernel_shape, w.ndim - 2, 1, 1) != w.shape[2:]:
        raise ValueError(f"{op}: kernel_shape={list(kernel_shape)} must match W's spatial shape "
                         f"{list(w.shape[2:])} (W of shape {list(w.shape)})")
    return w.ndim - 2


# ---- the operators -------------------------------------------------------------------------

def conv(X: npt.ArrayLike, W: npt.ArrayLike, B: npt.ArrayLike | None = None, *, auto_pad: str | bytes = "NOTSET",
         dilations: Ints | None = None, group: int = 1, kernel_shape: Ints | None = None,
         pads: Ints | None = None, strides: Ints | None = None) -> np.ndarray:
    """ONNX Conv (opset 22): a cross-correlation, as PyTorch's conv.

    Parameters
    ----------
    X : array_like
        (N, C, D1, ..., Dn).
    W : array_like
        (M, C / group, k1, ..., kn).
    B : array_like, optional
        (M,).
    auto_pad : {'NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'}, default 'NOTSET'
        SAME_UPPER/SAME_LOWER give ``O = ceil(D / stride)`` with the odd pad at the
        end/beginning (str or bytes, as protobufs hold it).
    dilations, strides : sequence of n ints, optional
        Default ones.
    group : int, default 1
    kernel_shape : sequence of n ints, optional
        Must be W's spatial shape when given.
    pads : sequence of 2n ints, optional
        [x1_begin, x2_begin, ..., x1_end, x2_end, ...]; default zeros.

    Returns
    -------
    numpy.ndarray
        Y (N, M, O1, ..., On), ``O = floor((D + pad_begin + pad_end - ((k - 1) * dilation + 1))
        / stride) + 1``, of X's type.

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a broken rule, in ONNX's words: C not ``W.shape[1] * group``, M
        not divisible by group, B not (M,), a kernel larger than the padded input, a value
        below its minimum, an attribute of the wrong length.
    ValueError
        X and W of different ranks (or below 3), kernel_shape not W's, an unknown auto_pad,
        pads beside an auto_pad other than NOTSET.
    TypeError
        X, W and B not of one float type, or not real numbers.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(25.).reshape(1, 1, 5, 5)
    >>> conv(x, np.ones((1, 1, 3, 3)), pads=[1, 0, 0, 1], strides=[2, 2])[0, 0]
    array([[ 21.,  33.],
           [ 99., 117.]])
    """
    x, w, b = _operands("Conv", X, W, B)
    n = _check_ranks("Conv", x, w, kernel_shape)
    pairs = conv_pads(x.shape[2:], w.shape[2:], auto_pad=auto_pad, dilations=dilations, pads=pads,
                      strides=strides)
    strides = int_list("Conv", "strides", strides, n, 1, 1)
    dilations = int_list("Conv", "dilations", dilations, n, 1, 1)
    with worded(ONNX_WORDS):
        spec = ConvSpec.build(w.shape[2:], strides, pairs, dilations, group, ndim=n, op="Conv")
        return core.apply(spec, x, w, b)


def conv_transpose(X: npt.ArrayLike, W: npt.ArrayLike, B: npt.ArrayLike | None = None, *,
                   auto_pad: str | bytes = "NOTSET", dilations: Ints | None = None, group: int = 1,
                   kernel_shape: Ints | None = None, output_padding: Ints | None = None,
                   output_shape: Ints | None = None, pads: Ints | None = None,
                   strides: Ints | None = None) -> np.ndarray:
    """ONNX ConvTranspose (opset 22).

    With ``output_shape`` the pads come from it (see :func:`conv_transpose_pads`; ``pads`` is
    then ignored, as the operator spec says); an output larger than the full scatter is zeros
    plus B there.

    Parameters
    ----------
    X : array_like
        (N, C, D1, ..., Dn).
    W : array_like
        (C, M / group, k1, ..., kn).
    B : array_like, optional
        (M,).
    auto_pad, dilations, group, kernel_shape, pads, strides
        As in :func:`conv`.
    output_padding : sequence of n ints, optional
        Added at the end of each axis; each below ``max(stride, dilation)``.
    output_shape : sequence of n (or n + 2) ints, optional
        The output's spatial shape; the pads are derived from it.

    Returns
    -------
    numpy.ndarray
        (N, M, O1, ..., On), ``O = stride * (D - 1) + output_padding + ((k - 1) * dilation + 1)
        - pad_begin - pad_end``, of X's type.

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a broken rule, in ONNX's words: C not ``W.shape[0]``, M
        not divisible by group, B not (M,), a kernel larger than the padded input, a value
        below its minimum, output_padding not below ``max(stride, dilation)``, an attribute of the wrong length.
    ValueError
        X and W of different ranks (or below 3), kernel_shape not W's, an unknown auto_pad,
        pads beside an auto_pad other than NOTSET.
    TypeError
        X, W and B not of one float type, or not real numbers.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose(np.array([[[1., 2.]]]), np.ones((1, 1, 3)), strides=[2], output_shape=[7])[0, 0]
    array([0., 1., 1., 3., 2., 2., 0.])
    """
    op = "ConvTranspose"
    x, w, b = _operands(op, X, W, B)
    n = _check_ranks(op, x, w, kernel_shape)
    strides, dilations, out_pad = (int_list(op, a, v, n, m, m) for a, v, m in
                                   (("strides", strides, 1), ("dilations", dilations, 1),
                                    ("output_padding", output_padding, 0)))
    check_transposed_attributes(op, strides, dilations, group, out_pad)
    pairs = conv_transpose_pads(x.shape[2:], w.shape[2:], auto_pad=auto_pad, dilations=dilations,
                                output_padding=out_pad, output_shape=output_shape, pads=pads, strides=strides)
    engine, engine_op, grow = transposed_engine_pads(pairs, out_pad, strides, dilations)
    with worded(ONNX_WORDS):
        spec = ConvSpec.build(w.shape[2:], strides, engine, dilations, group, "zeros", True, engine_op,
                              ndim=n, op=op)
        if not any(map(any, grow)):
            return core.apply(spec, x, w, b)
        return zero_extended(lambda x_c, w_c: core.apply(spec, x_c, w_c), x, w, b, grow)


def check_transposed_attributes(op: str, strides: Sequence[int], dilations: Sequence[int], group: int,
                                output_padding: Sequence[int]) -> None:
    """The spec's rules on ConvTranspose's attributes as given (output_padding < max(stride,
    dilation), group >= 1), before they become pads, in ONNX's words."""
    with worded(ONNX_WORDS):
        ConvSpec.build((1,) * len(strides), strides, 0, dilations, group, "zeros", True, output_padding,
                       op=op)


def zero_extended(run: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, w: np.ndarray,
                  b: np.ndarray | None, extra: Pads) -> np.ndarray:
    """``run(x, w)`` (no bias) in the compute dtype, zeros added around it by ``extra`` (lo, hi)
    per spatial axis, then B (so B reaches the new zeros too)."""
    compute, result = compute_dtypes(x, w, b)
    y = np.pad(run(x.astype(compute, copy=False), w.astype(compute, copy=False)), [(0, 0), (0, 0), *extra])
    if b is not None:
        y += b.astype(compute).reshape((-1,) + (1,) * (y.ndim - 2))
    return y.astype(result, copy=False)


def col2im(input: npt.ArrayLike, image_shape: Ints, block_shape: Ints, *, dilations: Ints | None = None,
           pads: Ints | None = None, strides: Ints | None = None) -> np.ndarray:
    """ONNX Col2Im (opset 18): sum blocks back into an image, any number of axes.

    Overlapping blocks add up (PyTorch's fold, N-d, with per-side pads).

    Parameters
    ----------
    input : array_like
        (N, C * prod(block_shape), L), L the number of blocks
        ``prod(floor((image + pad_begin + pad_end - ((block - 1) * dilation + 1)) / stride) + 1)``.
    image_shape, block_shape : sequence of n ints
        The image's spatial shape and the block's.
    dilations, pads, strides
        As in :func:`conv` (keyword-only).

    Returns
    -------
    numpy.ndarray
        ``(N, C, *image_shape)``.

    Raises
    ------
    ConvRuleError
        ``input.shape[1]`` not divisible by ``prod(block_shape)``, L not the number of blocks.
    ValueError
        An input not 3-D; image_shape and block_shape of different lengths.
    TypeError
        image_shape or block_shape not a 1-D list of ints; an input not of real numbers.

    >>> import numpy as np
    >>> col2im(np.ones((1, 4, 4)), [3, 3], [2, 2])[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    op = "Col2Im"
    cols = as_real_array(input, "input", op)
    image = _shape_input(op, "image_shape", image_shape)
    block = _shape_input(op, "block_shape", block_shape)
    n = len(image)
    if len(block) != n:
        raise ValueError(f"{op}: image_shape and block_shape must have the same length, got "
                         f"image_shape={list(image)} and block_shape={list(block)}")
    strides, dilations = (int_list(op, a, v, n, 1, 1) for a, v in (("strides", strides), ("dilations", dilations)))
    pairs = pads_attribute(op, "NOTSET", pads, n)
    assert pairs is not None  # NOTSET: always the pairs
    _check_columns(op, cols.shape)
    with worded(_col2im_words(cols.shape[2], image, block, pairs, strides, dilations)):
        return fold(cols, image, block, dilation=dilations, padding=pairs, stride=strides)


def _shape_input(op: str, name: str, value: Ints) -> tuple[int, ...]:
    array = np.asarray(value)
    if array.ndim != 1 or array.size < 1 or array.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be a 1-D list of ints, got {value!r}")
    return int_list(op, name, [int(v) for v in array], array.size, 1, 1)


def _check_columns(op: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise ValueError(f"{op}: input must be 3-D (N, C * prod(block_shape), L), got input of shape {list(shape)}")


def _col2im_words(columns: int, image: tuple[int, ...], block: tuple[int, ...], pairs: Pads,
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> dict[str, Callable[[ConvRule], str]]:
    """Col2Im's words for fold's refusals: the columns must divide into blocks, and L must be
    the spec's block count (every factor at least one)."""
    volume = math.prod(block)

    def channels(error: ConvRule) -> str:
        c = error.numbers["channels"]
        return (f"Col2Im: input.shape[1]={c} must be divisible by prod(block_shape)={volume} "
                f"(block_shape={list(block)}; {c} % {volume} = {c % volume})")

    def count(error: ConvRule) -> str:
        blocks = list(error.numbers["blocks"])
        return (f"Col2Im: input.shape[2]=L={columns} must equal the number of blocks "
                f"prod(floor((image + pad_begin + pad_end - ((block - 1) * dilation + 1)) / stride) + 1) "
                f"= prod({blocks}) = {math.prod(blocks)} (each factor >= 1) for image_shape="
                f"{list(image)}, block_shape={list(block)}, pads={pairs}, strides={list(strides)}, "
                f"dilations={list(dilations)}")
    return {"fold_channels": channels, "fold_blocks": count, "kernel_fits": count}


# ---- ONNX's words for the spec's refusals ----------------------------------------------------

def _why(name: str, length: int) -> str:
    if name == "pads":
        return f"[x1_begin, x2_begin, ..., x1_end, x2_end, ...] for {length // 2} spatial axes"
    return f"one per spatial axis, {length} spatial axes"


def _group_refused(error: ConvRule) -> ConvRuleError:
    value = error.numbers.get("value", (error.numbers.get("values") or ("?",))[0])
    return ConvRuleError(f"{error.op}: group must be a positive integer, got group={value!r}", rule=error.rule,
                         param="group", op=error.op, numbers=error.numbers, nearest="group=1")


def _positive(error: ConvRule) -> str | ConvRuleError:
    if error.param == "groups":
        return _group_refused(error)
    name, values = error.param, list(error.numbers["values"])
    return f"{error.op}: every value of {name} must be >= {error.numbers['minimum']}, got {name}={values}"


def _channels(error: ConvRule) -> str:
    n, transposed = error.numbers, error.op == "ConvTranspose"
    c, g, w_shape = n["input_shape"][1], n["groups"], n["weight_shape"]
    expected = w_shape[0] if transposed else w_shape[1] * g
    rule = "W.shape[0]" if transposed else f"W.shape[1] * group = {w_shape[1]} * {g}"
    return (f"{error.op}: X has C={c} channels; the rule is C % group == 0 and C == {rule} = "
            f"{expected}, with group={g} and W of shape {list(w_shape)}")


def _weight_groups(error: ConvRule) -> str:
    if error.op == "ConvTranspose":  # W.shape[0] is C there: the channel rule says it
        return _channels(error)
    m, g = error.numbers["shape"][0], error.numbers["groups"]
    return f"{error.op}: W.shape[0] = M = {m} must be divisible by group={g} ({m} % {g} = {m % g})"


def _kernel_fits(error: ConvRule) -> str:
    n = error.numbers
    k, d, ek, i, lo, hi = (n[key] for key in ("kernel", "dilation", "effective", "size", "lo", "hi"))
    return (f"{error.op}: the effective kernel (k - 1) * dilation + 1 = ({k} - 1) * {d} + 1 = {ek} is larger "
            f"than the padded input in + pad_begin + pad_end = {i} + {lo} + {hi} = {i + lo + hi} on "
            f"spatial axis {error.dim}, so the output would be empty")


def _output_padding(error: ConvRule) -> str:
    n = error.numbers
    p, s, d = n["output_padding"], n["stride"][error.dim], n["dilation"][error.dim]
    return (f"{error.op}: each output_padding value must be less than its stride or dilation: "
            f"output_padding={list(n['values'])}, strides={list(n['stride'])}, dilations="
            f"{list(n['dilation'])}; on spatial axis {error.dim} {p} >= max({s}, {d})")


def _output_size(error: ConvRule) -> str:
    n = error.numbers
    s, i, p, k, d, lo, hi = (n[key] for key in ("stride", "size", "output_padding", "kernel", "dilation", "lo", "hi"))
    return (f"{error.op}: output size stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - "
            f"pad_begin - pad_end = {s} * ({i} - 1) + {p} + ({k} - 1) * {d} + 1 - {lo} - {hi} = "
            f"{n['out']} on spatial axis {error.dim}; it must be >= 1 (pads at most {n['full'] - 1} in all)")


ONNX_WORDS: dict[str, Callable[[ConvRule], Any]] = {
    "tuple_type": lambda e: f"{e.op}: {e.param} must be a list of ints, got {e.numbers['value']!r}",
    "tuple_length": lambda e: (f"{e.op}: {e.param} must have {e.numbers['n']} values ({_why(e.param, e.numbers['n'])}), "
                               f"got {len(e.numbers['values'])}: {e.param}={[int(v) for v in e.numbers['values']]}"),
    "positive": _positive,
    "groups_type": _group_refused,
    "input_channels": _channels,
    "weight_groups": _weight_groups,
    "bias_shape": lambda e: (f"{e.op}: B must be 1-D with M={e.numbers['out_channels']} values, "
                             f"got B of shape {list(e.numbers['shape'])}"),
    "kernel_fits": _kernel_fits,
    "output_padding_limit": _output_padding,
    "output_size": _output_size,
}
