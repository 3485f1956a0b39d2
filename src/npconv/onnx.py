"""ONNX's Conv, ConvTranspose, Col2Im, DeformConv and CausalConvWithState, run on npconv's engine.

Each function follows its ONNX operator spec (opset 22 for Conv/ConvTranspose, 18 for
Col2Im, 19 and 22 for DeformConv, :func:`deform_conv` in :mod:`npconv.onnx_deform`, 27 for
CausalConvWithState, :func:`causal_conv_with_state` in :mod:`npconv.onnx_stream`): inputs as
positional arrays, attributes as keyword arguments under their ONNX names.  ONNX rules are
turned into explicit ``(begin, end)`` pads once (:func:`conv_pads`, :func:`conv_transpose_pads`)
and then handed to :class:`npconv.spec.ConvSpec`, so there is no second convolution here.  The
``onnx`` package is not needed.

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
    DeformConv:     out as Conv's (no auto_pad); offset and mask have that spatial size

Dtypes: X, W and B share one type (ONNX's ``T``); the result has it.  float16 is computed in
float32 and returned as float16.  Every refusal (``ValueError``/``TypeError``) names the
attribute, the rule and the numbers, and comes before any arithmetic.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_real_array, compute_dtypes
from .functional import fold
# the attribute rules and the words of refusals, importable from here too (npconv.convert.onnx)
from .onnx_pads import (AUTO_PADS as _AUTO_PADS, Ints, auto_pad_name, conv_pads, conv_transpose_pads,  # noqa: F401
                        int_list, output_shape_values, pads_attribute, transposed_engine_pads)
from .onnx_words import ONNX_WORDS
from .spec import ConvSpec, Pads
from .spec_errors import ConvRule, worded

__all__ = ["conv", "conv_transpose", "col2im", "deform_conv", "causal_conv_with_state", "conv_pads",
           "conv_transpose_pads", "transposed_engine_pads", "AUTO_PADS", "InferenceSession", "NodeArg",
           "SUPPORTED_OPS"]

#: The values ONNX allows for the ``auto_pad`` attribute.
AUTO_PADS = _AUTO_PADS


# ---- operand checks ------------------------------------------------------------------------

def no_complex(op: str) -> str:
    """Why an ONNX face refuses complex operands (for :func:`npconv.arrays.as_real_array`)."""
    return f"ONNX's {op} takes float tensors only (its type T has no complex)"


def _operands(op: str, X: npt.ArrayLike, W: npt.ArrayLike,
              B: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X, W (and B) as arrays of X's float type; W and B must share it (ONNX's T)."""
    x = as_real_array(X, "X", op, why=no_complex(op))
    return x, _of_type(op, x, "W", W), None if B is None else _of_type(op, x, "B", B)


def _of_type(op: str, x: np.ndarray, name: str, value: npt.ArrayLike) -> np.ndarray:
    a = as_real_array(value, name, op, why=no_complex(op))
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
    cols = as_real_array(input, "input", op, why=no_complex(op))
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


# last: npconv.onnx_deform reads this module's operand checks (_operands, _of_type, _check_ranks)
from .onnx_deform import deform_conv  # noqa: E402
from .onnx_stream import causal_conv_with_state  # noqa: E402
from .onnx_session import SUPPORTED_OPS as _SUPPORTED_OPS  # noqa: E402
from .onnx_session import InferenceSession, NodeArg  # noqa: E402

#: The ONNX operators :class:`InferenceSession` runs (a frozenset of op_type names); a model
#: with any other operator is refused by name when the session is made.
SUPPORTED_OPS = _SUPPORTED_OPS
