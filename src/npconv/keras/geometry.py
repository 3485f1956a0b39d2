"""Keras 3's argument rules for its convolution layers, and its sizes said through the spec.

Keras's own rules live here: padding names ('causal' for Conv1D only), data_format, filters
and depth_multiplier > 0, groups dividing filters, no strides > 1 with dilation_rate > 1
(Conv, Conv*Transpose), output_padding < strides.  The shape rules are
:class:`npconv.spec.ConvSpec`'s: output sizes come from a spec built with Keras's padding
('valid', 'same' = SAME_UPPER at any stride, 'causal' = every pad before), and a refusal the
spec raises (``npconv.spec_errors``) is said in Keras's words
(:data:`~npconv.keras.words.KERAS_WORDS`).

Conv*Transpose is a translation: Keras's ``(padding, output_padding)`` becomes PyTorch's
per-side pads and output_padding (:func:`~npconv.keras.padding.transposed_pads`), and the
spec's transposed rule gives the size: ``'valid'`` out = (in - 1) * s + max(ek, s) without
output_padding, else (in - 1) * s + ek + op; ``'same'`` out = in * s without output_padding,
else (in - 1) * s + ek % 2 + op (ek: the spec's ``effective_kernel``).

>>> conv_output_spatial((7, None), (3, 3), (2, 2), "same", (1, 1))
(4, None)
>>> transposed_pads((3,), (2,), "same", None, (1,))
(((0, 1),), (0,))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..spec import ConvSpec, is_int, ntuple
# moved to .padding and .words, and re-exported here: npconv.keras.geometry.transposed_pads & co. still work
from .padding import (causal_pads, conv_spec, padding_name, same_pairs, transposed_crops,  # noqa: F401
                      transposed_pads, transposed_padding_for, transposed_spec)
from .words import KERAS_WORDS, keras_worded  # noqa: F401

DATA_FORMATS = ("channels_last", "channels_first")


# ---- arguments ----------------------------------------------------------------------------

def keras_ntuple(value: int | Sequence[int], n: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or exactly n ints (Keras broadcasts a bare int only), each >= minimum.

    ``npconv.spec.ntuple`` in Keras's words.

    Parameters
    ----------
    value : int or sequence of int
        The argument as given.
    n : int
        Spatial dims.
    name : str
        The argument's name, for messages.
    minimum : int, default 1
        The smallest entry allowed.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        Another length, a non-int or an entry below ``minimum``.

    Examples
    --------
    >>> keras_ntuple(3, 2, "kernel_size"), keras_ntuple([1, 2], 2, "strides")
    ((3, 3), (1, 2))
    """
    with keras_worded(value=value, n=n):
        return ntuple(value, n, name, minimum=minimum, broadcast=is_int(value))


def standardize_padding(padding: Any, allow_causal: bool, layer: str) -> str:
    """'valid', 'same' (any case) and, for Conv1D only, 'causal'.

    Parameters
    ----------
    padding : str
        The argument as given.
    allow_causal : bool
        Whether the layer takes 'causal' (Conv1D).
    layer : str
        The layer's class name, for messages.

    Returns
    -------
    str
        Lower case.

    Raises
    ------
    ValueError
        Any other value.
    """
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    lowered = padding.lower() if isinstance(padding, str) else None
    if lowered is None or lowered not in allowed:
        hint = " ('causal' is only accepted by Conv1D)" if lowered == "causal" else ""
        raise ValueError(f"{layer}: The `padding` argument must be one of {set(allowed)} "
                         f"(case-insensitive). Received: padding={padding!r}{hint}")
    return lowered


def standardize_data_format(data_format: str | None, layer: str) -> str:
    """'channels_last' or 'channels_first'; None means Keras's default, 'channels_last'.

    Parameters
    ----------
    data_format : str or None
    layer : str
        The layer's class name, for messages.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Any other value.
    """
    if data_format is None:
        return "channels_last"
    lowered = str(data_format).lower()
    if lowered not in DATA_FORMATS:
        raise ValueError(f"{layer}: The `data_format` argument must be one of "
                         f"{{'channels_first', 'channels_last'}}. Received: data_format={data_format!r}")
    return lowered


def check_positive(value: Any, name: str, layer: str) -> int:
    """filters and depth_multiplier: a strictly positive int.

    Parameters
    ----------
    value : int
    name, layer : str
        The argument's and the layer's names, for messages.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        A non-int or a value <= 0.
    """
    if not is_int(value) or value <= 0:
        raise ValueError(f"{layer}: Invalid value for argument `{name}`. Expected a strictly "
                         f"positive value. Received {name}={value!r}.")
    return int(value)


def check_groups(groups: Any, filters: int, layer: str) -> int:
    """groups >= 1 and filters % groups == 0, as Keras's BaseConv checks them.

    Parameters
    ----------
    groups : int
    filters : int
    layer : str
        The layer's class name, for messages.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        A non-int or non-positive groups, or one that does not divide filters.
    """
    if not is_int(groups) or groups <= 0:
        raise ValueError(f"{layer}: The number of groups must be a positive integer. "
                         f"Received: groups={groups!r}.")
    if filters % groups:
        raise ValueError(f"{layer}: The number of filters must be evenly divisible by the number of "
                         f"groups. Received: groups={groups}, filters={filters} "
                         f"({filters} % {groups} = {filters % groups}).")
    return int(groups)


def check_input_channels(spec: ConvSpec, channels: int, filters: int, input_shape: Sequence[int | None]) -> None:
    """The spec's groups rule for the input's channels, in Keras's words.

    Parameters
    ----------
    spec : ConvSpec
        The layer's convolution.
    channels, filters : int
        Input and output channels.
    input_shape : sequence of int or None
        The full input shape, for the message.

    Raises
    ------
    ValueError
        Channels that groups does not divide.
    """
    with keras_worded(input_shape=input_shape):
        spec.check_channels(channels, filters)


def check_strides_with_dilation(strides: Sequence[int], dilation_rate: Sequence[int], layer: str) -> None:
    """Conv and Conv*Transpose refuse a stride above 1 together with a dilation above 1.

    Parameters
    ----------
    strides, dilation_rate : sequence of int
    layer : str
        The layer's class name, for messages.

    Raises
    ------
    ValueError
        Both above 1.
    """
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"{layer}: `strides > 1` not supported in conjunction with "
                         f"`dilation_rate > 1`. Received: strides={strides} and "
                         f"dilation_rate={dilation_rate}")


def standardize_output_padding(output_padding: int | Sequence[int] | None, strides: Sequence[int],
                               layer: str) -> tuple[int, ...] | None:
    """None, or an n-tuple of ints each strictly below its stride.

    Parameters
    ----------
    output_padding : int, sequence of int or None
    strides : sequence of int
    layer : str
        The layer's class name, for messages.

    Returns
    -------
    tuple of int or None

    Raises
    ------
    ValueError
        A bad tuple, or an entry not below its stride.
    """
    if output_padding is None:
        return None
    padding = keras_ntuple(output_padding, len(strides), "output_padding", minimum=0)
    for dim, (extra, s) in enumerate(zip(padding, strides)):
        if extra >= s:
            raise ValueError(f"{layer}: `output_padding` must be strictly less than `strides` for all "
                             f"dimensions. At dimension {dim}, `output_padding` is {extra} but `strides` "
                             f"is {s}. Received: output_padding={padding}, strides={strides}")
    return padding


# ---- sizes: the spec's rules with Keras's padding ---------------------------------------------
# conv_spec and transposed_spec (the spec of a layer, cached) are in .padding

def spec_output_spatial(spec: ConvSpec, in_spatial: Sequence[int | None]) -> tuple[int | None, ...]:
    """``spec.out_spatial`` where unknown (None) sizes stay None.

    Each unknown size is asked as a size the kernel fits (its effective kernel) and its
    answer dropped.

    Parameters
    ----------
    spec : ConvSpec
    in_spatial : sequence of int or None

    Returns
    -------
    tuple of int or None
    """
    asked = tuple(ek if size is None else size for size, ek in zip(in_spatial, spec.effective_kernel))
    return tuple(None if size is None else out for size, out in zip(in_spatial, spec.out_spatial(asked)))


def conv_output_spatial(in_spatial: Sequence[int | None], kernel_size: Sequence[int], strides: Sequence[int],
                        padding: str, dilation_rate: Sequence[int], layer: str = "conv") -> tuple[int | None, ...]:
    """Keras's conv output sizes (None stays None).

    'valid' floor((in - ek) / s) + 1, refused below 1; 'same' and 'causal' ceil(in / s).

    Parameters
    ----------
    in_spatial : sequence of int or None
    kernel_size, strides, dilation_rate : sequence of int
    padding : {'valid', 'same', 'causal'}
    layer : str, default 'conv'
        The layer's name, for messages.

    Returns
    -------
    tuple of int or None

    Raises
    ------
    ValueError
        An output size below 1, in Keras's words.
    """
    spec = conv_spec(tuple(kernel_size), tuple(strides), padding, tuple(dilation_rate), layer=layer)
    empty = tuple(padding != "valid" and size == 0 for size in in_spatial)  # ceil(0 / s) = 0, as Keras says
    asked = tuple(None if e else size for e, size in zip(empty, in_spatial))
    with keras_worded(in_spatial=in_spatial, kernel_size=kernel_size, dilation_rate=dilation_rate, padding=padding):
        return tuple(0 if e else out for e, out in zip(empty, spec_output_spatial(spec, asked)))


def transposed_output_spatial(in_spatial: Sequence[int | None], kernel_size: Sequence[int], strides: Sequence[int],
                              padding: str, output_padding: Sequence[int] | None, dilation_rate: Sequence[int],
                              layer: str = "conv_transpose") -> tuple[int | None, ...]:
    """Keras's Conv*Transpose output sizes (see the module docstring); None stays None.

    Parameters
    ----------
    in_spatial : sequence of int or None
    kernel_size, strides, dilation_rate : sequence of int
    padding : {'valid', 'same'}
    output_padding : sequence of int or None
    layer : str, default 'conv_transpose'

    Returns
    -------
    tuple of int or None

    Examples
    --------
    >>> transposed_output_spatial((4, None), (3, 3), (2, 2), "same", None, (1, 1))
    (8, None)
    """
    output_padding = None if output_padding is None else tuple(output_padding)
    spec = transposed_spec(tuple(kernel_size), tuple(strides), padding, output_padding, tuple(dilation_rate), layer)
    return spec_output_spatial(spec, in_spatial)
