"""Parameter normalisation: every face's parameters as n-tuples and explicit (lo, hi) pads.

The rules that need no input shape, checked once while :meth:`npconv.spec.ConvSpec.build`
normalises a call: n-tuples (:func:`ntuple`), explicit and per-side padding pairs
(:func:`explicit_pads`), the padding strings ('valid', 'same', 'same_lower', 'causal'; SAME
padding by :func:`same_pads`), padding modes, groups, and output_padding; plus
:func:`check_mode_pad`, reflect's and circular's limit on a pad.  ``npconv.spec`` re-exports
the public names (``from npconv.spec import ntuple`` keeps working) and documents them.

A refusal is a :class:`npconv.spec_errors.ConvRuleError` (a ``ValueError``; ``ConvRuleTypeError``
for a wrong type), with PyTorch's wording.
"""

from __future__ import annotations

import numbers
from typing import Sequence, TypeAlias, TypeGuard, Union

from . import spec_errors as errors

# What the faces accept for a per-dim parameter (stride, dilation, kernel_size, output_padding):
# one int for every spatial dim, or one int per dim.
IntOrTuple: TypeAlias = Union[int, Sequence[int]]
# padding: an int, one int or (lo, hi) pair per dim, or 'valid', 'same', 'same_lower', 'causal'.
Padding: TypeAlias = Union[int, str, Sequence[Union[int, Sequence[int]]]]
Pads: TypeAlias = tuple[tuple[int, int], ...]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_PADDING_STRINGS = ("same", "valid")
# npconv's extensions: SAME_LOWER (extra pad before) and causal (all pad before).
EXTRA_PADDING_STRINGS = ("same_lower", "causal")
SAME_RULES = ("same", "same_lower")


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    """An integer that is not a bool (NumPy integers included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def ntuple(value: IntOrTuple, n: int, name: str, op: str = "conv", *, minimum: int | None = None,
           broadcast: bool = True) -> tuple[int, ...]:
    """An int or a length-n sequence of ints as an n-tuple (PyTorch's ``_ntuple``).

    The one normaliser every face uses.

    Parameters
    ----------
    value : int or sequence of ints
        One int for every dim, or n of them (or one, with ``broadcast``).
    n : int
        The number of dims.
    name, op : str
        The parameter's and the caller's names, for messages.
    minimum : int, optional
        Refuse entries below it (rule ``'positive'``).
    broadcast : bool, default True
        False refuses a bare int and a 1-sequence (ONNX's ints attributes).

    Returns
    -------
    tuple of int

    Raises
    ------
    ConvRuleError
        A sequence of another length (``'tuple_length'``), an entry below ``minimum``.
    ConvRuleTypeError
        Not an int or a sequence of ints (floats, bools, strings).

    Examples
    --------
    >>> ntuple(3, 2, "kernel_size"), ntuple([1, 2], 2, "stride")
    ((3, 3), (1, 2))
    """
    values = _int_values(value, n, name, op, broadcast)
    if minimum is not None and min(values, default=minimum) < minimum:
        raise errors.not_positive(op, name, values, minimum)
    return values


def _int_values(value: object, n: int, name: str, op: str, broadcast: bool) -> tuple[int, ...]:
    if is_int(value) and broadcast:
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) == 1 and broadcast:
            return (int(value[0]),) * n
        if len(value) == n:
            return tuple(int(v) for v in value)
        raise errors.tuple_length(op, name, n, value)
    raise errors.tuple_type(op, name, n, value)


def _pad_pair(value: object, name: str, op: str) -> tuple[int, int]:
    if is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise errors.pad_pair_type(op, name, value)


def explicit_pads(padding: Padding, n: int, op: str = "conv") -> Pads:
    """Ints, n-tuples and per-side pairs ``((lo, hi), ...)`` as n explicit (lo, hi) pairs.

    Parameters
    ----------
    padding : int or sequence of ints or (lo, hi) pairs
        One entry for every dim, or n of them.
    n : int
        The number of spatial dims.
    op : str, default 'conv'
        The caller's name, for messages.

    Returns
    -------
    tuple of (int, int)

    Raises
    ------
    ConvRuleError
        A sequence of another length than 1 or n.
    ConvRuleTypeError
        A string or another type (strings are :meth:`ConvSpec.build`'s to resolve).

    Examples
    --------
    >>> explicit_pads((1, (0, 2)), 2)
    ((1, 1), (0, 2))
    """
    if is_int(padding):
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, (tuple, list)) and len(padding) in (1, n):
        pairs = tuple(_pad_pair(p, "padding", op) for p in padding)
        return pairs * n if len(pairs) == 1 else pairs
    if isinstance(padding, (tuple, list)):
        raise errors.padding_length(op, n, padding)
    raise errors.padding_type(op, padding, TORCH_PADDING_STRINGS + EXTRA_PADDING_STRINGS)


def same_pads(in_size: int, k: int, stride: int, dilation: int, lower: bool = False) -> tuple[int, int]:
    """TensorFlow/ONNX SAME padding of one dim: out = ceil(in / stride).

    Parameters
    ----------
    in_size, k, stride, dilation : int
        The dim's input size, kernel size, stride and dilation.
    lower : bool, default False
        Put an odd total's extra pad before (SAME_LOWER) instead of after (SAME_UPPER).

    Returns
    -------
    tuple of (int, int)
        (lo, hi), ``lo + hi = max((out - 1) * stride + dilation * (k - 1) + 1 - in_size, 0)``.

    Examples
    --------
    >>> same_pads(6, 3, 2, 1), same_pads(6, 3, 2, 1, lower=True), same_pads(5, 4, 1, 1)
    ((0, 1), (1, 0), (1, 2))
    """
    ek = dilation * (k - 1) + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + ek - in_size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def check_mode_pad(mode: str, size: int, lo: int, hi: int, dim: int, op: str) -> None:
    """reflect needs pad < size, circular pad <= size (one wrap), as PyTorch's F.pad.

    Raises
    ------
    ConvRuleError
        ``'reflect_pad'`` or ``'circular_pad'``, naming ``dim`` and the largest valid pad.
    """
    if mode == "reflect" and max(lo, hi) >= size:
        raise errors.reflect_pad(op, size, lo, hi, dim)
    if mode == "circular" and max(lo, hi) > size:
        raise errors.circular_pad(op, size, lo, hi, dim)


def _check_positive(op: str, **named: tuple[int, ...]) -> None:
    for name, values in named.items():
        if min(values) < 1:
            raise errors.not_positive(op, name, values)


def check_groups(op: str, groups: object) -> None:
    """Refuse a groups that is not a positive int.

    Raises
    ------
    ConvRuleTypeError
        Not an int (bools and floats included).
    ConvRuleError
        Below one (rule ``'positive'``).
    """
    if not is_int(groups):
        raise errors.groups_type(op, groups)
    if groups < 1:
        raise errors.groups_not_positive(op, groups)


def _check_padding_mode(op: str, mode: str, transposed: bool) -> None:
    if mode not in PADDING_MODES:
        raise errors.padding_mode(op, mode, PADDING_MODES)
    if transposed and mode != "zeros":
        raise errors.transposed_padding_mode(op, mode)


def _normalise_padding(padding: Padding, kernel: tuple[int, ...], stride: tuple[int, ...],
                       dilation: tuple[int, ...], transposed: bool, op: str) -> Pads | str:
    """Explicit pairs, or the same rule's name where the pairs depend on the input size."""
    if isinstance(padding, str):
        return _padding_string(padding, kernel, stride, dilation, transposed, op)
    pairs = explicit_pads(padding, len(kernel), op)
    if min(min(p) for p in pairs) < 0:
        raise errors.negative_padding(op, padding)
    return pairs


def _padding_string(padding: str, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                    transposed: bool, op: str) -> Pads | str:
    if padding not in TORCH_PADDING_STRINGS + EXTRA_PADDING_STRINGS:
        raise errors.padding_string(op, padding, EXTRA_PADDING_STRINGS)
    if transposed and padding != "valid":
        raise errors.same_transposed(op, padding)
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding == "causal":
        return tuple((d * (k - 1), 0) for k, d in zip(kernel, dilation))
    if max(stride) == 1:  # shape-free: total d*(k-1), the odd one after (before for same_lower)
        return tuple(same_pads(1, k, 1, d, padding == "same_lower") for k, d in zip(kernel, dilation))
    return padding


def _check_output_padding(op: str, out_pad: tuple[int, ...], stride: tuple[int, ...],
                          dilation: tuple[int, ...], transposed: bool) -> None:
    if min(out_pad) < 0:
        raise errors.output_padding_negative(op, out_pad)
    if not transposed:
        if max(out_pad) > 0:
            raise errors.output_padding_conv(op, out_pad)
        return
    for d, (p, s, dil) in enumerate(zip(out_pad, stride, dilation)):
        if p >= max(s, dil):
            raise errors.output_padding_limit(op, out_pad, stride, dilation, d)
