"""ONNX's padding attributes as explicit ``(begin, end)`` pads: ``auto_pad``, ``pads``,
``output_padding`` and ``output_shape`` of Conv, ConvTranspose and Col2Im, normalised and
checked once (the rules are in :mod:`npconv.onnx`'s docstring), for :mod:`npconv.onnx` and
:mod:`npconv.convert.onnx`.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from .onnx_words import ONNX_WORDS
from .spec import ConvSpec, Pads, ntuple, same_pads
from .spec_errors import worded

#: The values ONNX allows for the ``auto_pad`` attribute.
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
# an ONNX ints attribute as a node or a user gives it: a list, a tuple or a 1-D int array
Ints = Union[Sequence[int], np.ndarray]


# ---- attribute normalisation --------------------------------------------------------------

def int_list(op: str, name: str, value: Ints | None, length: int, default: int, minimum: int) -> tuple[int, ...]:
    """An ONNX ints attribute as a tuple of ``length`` ints >= ``minimum`` (None: default)."""
    if value is None:
        return (default,) * length
    values = list(value.ravel()) if isinstance(value, np.ndarray) else value  # ntuple refuses non-ints
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
