"""Keras 3's argument rules for its convolution layers, and its sizes said through the spec.

Keras's own rules live here: padding names ('causal' for Conv1D only), data_format, filters
and depth_multiplier > 0, groups dividing filters, no strides > 1 with dilation_rate > 1
(Conv, Conv*Transpose), output_padding < strides.  The shape rules are
:class:`npconv.spec.ConvSpec`'s: output sizes come from a spec built with Keras's padding
('valid', 'same' = SAME_UPPER at any stride, 'causal' = every pad before), and a refusal the
spec raises (``npconv.spec_errors``) is said in Keras's words (:data:`KERAS_WORDS`).

Conv*Transpose is a translation: Keras's ``(padding, output_padding)`` becomes PyTorch's
per-side pads and output_padding (:func:`transposed_pads`), and the spec's transposed rule
gives the size: ``'valid'`` out = (in - 1) * s + max(ek, s) without output_padding, else
(in - 1) * s + ek + op; ``'same'`` out = in * s without output_padding, else
(in - 1) * s + ek % 2 + op (ek: the spec's ``effective_kernel``).

>>> conv_output_spatial((7, None), (3, 3), (2, 2), "same", (1, 1))
(4, None)
>>> transposed_pads((3,), (2,), "same", None, (1,))
(((0, 1),), (0,))
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import spec_errors
from ..spec import ConvSpec, is_int, ntuple

DATA_FORMATS = ("channels_last", "channels_first")


# ---- Keras's words for the spec's refusals ----------------------------------------------
# Each takes the call's context (what the spec does not know: the argument as the user gave
# it, unknown sizes as None, the input's full shape) and the spec's refusal.

def _ntuple_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    """Keras's standardize_tuple wording, with the argument as given."""
    name, n = error.param, context["n"]
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={context['value']!r}"
    if error.rule != "positive":
        return message
    minimum = error.numbers["minimum"]
    bad = sorted({v for v in error.numbers["values"] if v < minimum})
    return f"{message}, including values {bad} that do not satisfy `value {'> 0' if minimum == 1 else '>= 0'}`"


def _as_value_error(error: spec_errors.ConvRule, message: str) -> spec_errors.ConvRuleError:
    """Keras refuses a wrong type with ValueError: the same refusal, as a ConvRuleError."""
    return spec_errors.ConvRuleError(message, rule=error.rule, param=error.param, op=error.op, dim=error.dim,
                                     numbers=error.numbers, nearest=error.nearest)


def _output_size_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    """A kernel larger than the (padded) input; with 'same' or 'causal' only an empty input is."""
    d, numbers = error.dim, error.numbers
    size, ek, s = numbers["size"], numbers["effective"], numbers["stride"][d]
    if context["padding"] == "valid":
        rule = f"floor(({size} - {ek}) / {s}) + 1 = {numbers['blocks'][d]} (effective kernel {ek} > input {size})"
    else:
        lo, hi = numbers["lo"], numbers["hi"]
        rule = f"padded input {numbers['padded']} = {size} + {lo} + {hi} < effective kernel {ek}"
    return (f"{error.op}: Computed output size would be zero or negative. Received input spatial shape "
            f"{tuple(context['in_spatial'])}, kernel_size={tuple(context['kernel_size'])}, dilation_rate="
            f"{tuple(context['dilation_rate'])}, strides={numbers['stride']}, padding={context['padding']!r}: "
            f"in dim {d}, {rule}")


def _input_channels_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    groups, channels = error.numbers["groups"], error.numbers["channels"]
    return (f"{error.op}: The number of input channels must be evenly divisible by the number of groups. "
            f"Received groups={groups}, but the input has {channels} channels (full input shape is "
            f"{tuple(context['input_shape'])}).")


#: rule -> function(context, error) -> Keras's message (or exception)
KERAS_WORDS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "tuple_length": _ntuple_message,
    "tuple_type": lambda context, error: _as_value_error(error, _ntuple_message(context, error)),
    "positive": _ntuple_message,
    "kernel_fits": _output_size_message,
    "channels_groups": _input_channels_message,
}


def keras_worded(**context: Any) -> contextlib.AbstractContextManager[None]:
    """``spec_errors.worded`` in Keras's words, given this call's context.

    Parameters
    ----------
    **context
        What the spec does not know: the argument as given, unknown sizes, the input shape.

    Returns
    -------
    context manager
        Re-raises the spec's refusals inside it in Keras's words (:data:`KERAS_WORDS`).
    """
    words: spec_errors.Words = {rule: functools.partial(say, context) for rule, say in KERAS_WORDS.items()}
    return spec_errors.worded(words)


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
