"""Keras's padding strings as the spec's per-side pads, and back.

The spec of a Keras convolution (:func:`conv_spec`: 'valid', 'same' = SAME_UPPER at any stride,
'causal' = every pad before) and of a Conv*Transpose (:func:`transposed_spec`), whose
``(padding, output_padding)`` becomes PyTorch's per-side pads and output_padding
(:func:`transposed_pads`).  Back: :func:`padding_name` names the Keras padding of given pads,
:func:`transposed_padding_for` the Conv*Transpose ``(padding, output_padding)`` of given crops
(``npconv.convert.keras`` and ``npconv.explain`` use them).

>>> transposed_pads((3,), (2,), "same", None, (1,))
(((0, 1),), (0,))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..spec import ConvSpec


# ---- the spec of a Keras convolution ------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def conv_spec(kernel_size: tuple[int, ...], strides: tuple[int, ...], padding: str,
              dilation_rate: tuple[int, ...], groups: int = 1, layer: str = "conv") -> ConvSpec:
    """The spec of a Keras convolution.

    'valid', 'same' and 'causal' are the spec's own padding rules (SAME_UPPER; every pad
    before).  Cached: the arguments must be hashable.

    Parameters
    ----------
    kernel_size, strides, dilation_rate : tuple of int
    padding : {'valid', 'same', 'causal'}
    groups : int, default 1
    layer : str, default 'conv'
        The layer's name, for messages.

    Returns
    -------
    ConvSpec
    """
    return ConvSpec.build(kernel_size, strides, padding, dilation_rate, groups, ndim=len(kernel_size), op=layer)


@functools.lru_cache(maxsize=256)
def transposed_spec(kernel_size: tuple[int, ...], strides: tuple[int, ...], padding: str,
                    output_padding: tuple[int, ...] | None, dilation_rate: tuple[int, ...],
                    layer: str = "conv_transpose") -> ConvSpec:
    """The spec of a Keras Conv*Transpose: its padding as PyTorch's pads (:func:`transposed_pads`).

    Parameters
    ----------
    kernel_size, strides, dilation_rate : tuple of int
    padding : {'valid', 'same'}
    output_padding : tuple of int or None
    layer : str, default 'conv_transpose'
        The layer's name, for messages.

    Returns
    -------
    ConvSpec
    """
    pads, extra = transposed_pads(kernel_size, strides, padding, output_padding, dilation_rate)
    return ConvSpec.build(kernel_size, strides, pads, dilation_rate, 1, "zeros", True, extra,
                          ndim=len(kernel_size), op=layer)


# ---- Conv*Transpose: Keras's padding as PyTorch's pads, and back --------------------------------

def _effective_kernel(kernel_size: Sequence[int], dilation_rate: Sequence[int]) -> tuple[int, ...]:
    return ConvSpec.build(tuple(kernel_size), 1, 0, tuple(dilation_rate)).effective_kernel


def transposed_pads(kernel_size: Sequence[int], strides: Sequence[int], padding: str,
                    output_padding: Sequence[int] | None,
                    dilation_rate: Sequence[int]) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Keras's Conv*Transpose said as PyTorch's per-side ``(lo, hi)`` pads and output_padding.

    Keras (as JAX) convolves the stride-dilated input, padded ``(L, R)``, with the flipped
    kernel: ``'valid'`` L = ek - 1, R = ek - 1 + op (op = max(ek, s) - ek when None);
    ``'same'`` total = s + ek - 2 (op None) or ek + ek % 2 - 2 + op, L = min(ceil(total / 2),
    ek - 1), R = total - L.  PyTorch crops lo = ek - 1 - L in front and hi - output_padding =
    ek - 1 - R behind; a negative crop behind becomes output_padding.  These do not depend on
    the input size.

    Parameters
    ----------
    kernel_size, strides, dilation_rate : sequence of int
    padding : {'valid', 'same'}
    output_padding : sequence of int or None

    Returns
    -------
    tuple
        (per-dim ``(lo, hi)`` pads, per-dim output_padding), as PyTorch's arguments.
    """
    pads: list[tuple[int, int]] = []
    extra: list[int] = []
    for dim, (ek, s) in enumerate(zip(_effective_kernel(kernel_size, dilation_rate), strides)):
        op = None if output_padding is None else output_padding[dim]
        if padding == "valid":
            before, after = ek - 1, ek - 1 + (max(ek, s) - ek if op is None else op)
        else:
            total = s + ek - 2 if op is None else ek + ek % 2 - 2 + op
            before = min(-(-total // 2), ek - 1)
            after = total - before
        lo, behind = ek - 1 - before, ek - 1 - after
        pads.append((lo, max(behind, 0)))
        extra.append(max(-behind, 0))
    return tuple(pads), tuple(extra)


def causal_pads(kernel_size: Sequence[int], dilation_rate: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """'causal': every pad on the left, ek - 1 of them.

    Parameters
    ----------
    kernel_size, dilation_rate : sequence of int

    Returns
    -------
    tuple of (int, int)

    Examples
    --------
    >>> causal_pads((3,), (2,))
    ((4, 0),)
    """
    return conv_spec(tuple(kernel_size), (1,) * len(kernel_size), "causal", tuple(dilation_rate)).padding


def same_pairs(in_spatial: Sequence[int], kernel_size: Sequence[int], strides: Sequence[int],
               dilation_rate: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """'same' (SAME_UPPER) as per-side pads for inputs of ``in_spatial``.

    Parameters
    ----------
    in_spatial, kernel_size, strides, dilation_rate : sequence of int

    Returns
    -------
    tuple of (int, int)
        The extra pad, when odd, goes after.

    Examples
    --------
    >>> same_pairs((6,), (4,), (1,), (1,))
    ((1, 2),)
    """
    return conv_spec(tuple(kernel_size), tuple(strides), "same", tuple(dilation_rate)).pads(tuple(in_spatial))


def padding_name(pairs: Sequence[Sequence[int]], kernel_size: Sequence[int], strides: Sequence[int],
                 dilation_rate: Sequence[int], in_spatial: Sequence[int]) -> str | None:
    """The Keras padding string that gives these per-side pads, if any.

    Parameters
    ----------
    pairs : sequence of (int, int)
        Per-side pads.
    kernel_size, strides, dilation_rate, in_spatial : sequence of int

    Returns
    -------
    str or None
        'valid', 'causal' (1-D) or 'same' when the pads are that Keras rule for inputs of
        ``in_spatial``; None when Keras has no padding string for them.

    Examples
    --------
    >>> padding_name(((1, 1),), (3,), (1,), (1,), (8,))
    'same'
    """
    pairs = tuple(tuple(p) for p in pairs)
    if all(p == (0, 0) for p in pairs):
        return "valid"
    if len(pairs) == 1 and pairs == causal_pads(kernel_size, dilation_rate):
        return "causal"
    return "same" if pairs == same_pairs(in_spatial, kernel_size, strides, dilation_rate) else None


def transposed_crops(pads: Sequence[tuple[int, int]], output_padding: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """(lo, hi - output_padding) per dim: all that a transposed convolution's result depends on.

    Parameters
    ----------
    pads : sequence of (int, int)
    output_padding : sequence of int

    Returns
    -------
    tuple of (int, int)
    """
    return tuple((lo, hi - op) for (lo, hi), op in zip(pads, output_padding))


def transposed_padding_for(kernel_size: Sequence[int], strides: Sequence[int], dilation_rate: Sequence[int],
                           crops: Sequence[tuple[int, int]]) -> tuple[str, tuple[int, ...] | None] | None:
    """The Keras Conv*Transpose ``(padding, output_padding)`` whose crops are ``crops``.

    A dimension that needs an output_padding makes every dimension say one (the smallest
    that fits).

    Parameters
    ----------
    kernel_size, strides, dilation_rate : sequence of int
    crops : sequence of (int, int)
        As :func:`transposed_crops` gives them.

    Returns
    -------
    tuple or None
        ``(padding, output_padding)``, output_padding None where Keras's default gives the
        crops; None when no 'valid'/'same' with output_padding < strides does.

    Examples
    --------
    >>> transposed_padding_for((3,), (2,), (1,), ((0, 1),)), transposed_padding_for((3,), (2,), (1,), ((1, 0),))
    (('same', None), None)
    """
    for name in ("valid", "same"):
        defaults: list[bool] = []
        chosen: list[list[int]] = []
        for k, s, d, crop in zip(kernel_size, strides, dilation_rate, crops):
            options = [op for op in [None, *range(s)] if transposed_crops(*transposed_pads(
                (k,), (s,), name, None if op is None else (op,), (d,))) == (crop,)]
            defaults.append(bool(options) and options[0] is None)
            chosen.append([op for op in options if op is not None])
        if all(defaults):
            return name, None
        if all(chosen):
            return name, tuple(ops[0] for ops in chosen)
    return None
