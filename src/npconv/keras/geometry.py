"""Keras 3's argument rules and shape rules for its convolution layers, as pure functions.

Everything here is arithmetic on tuples; the layers (``npconv.keras.layers``) turn the
result into an :class:`npconv.spec.ConvSpec` and run npconv's engine.  With
``ek = dilation * (k - 1) + 1`` per spatial dim:

- ``'valid'``:  out = floor((in - ek) / stride) + 1, refused when that is below 1;
- ``'same'``:   out = ceil(in / stride), TensorFlow's SAME_UPPER pads at any stride;
- ``'causal'`` (Conv1D only): all ``ek - 1`` pads on the left, out = ceil(in / stride);
- Conv*Transpose: ``'valid'`` out = (in - 1) * s + max(ek, s) without output_padding, else
  (in - 1) * s + ek + op; ``'same'`` out = in * s without output_padding, else
  (in - 1) * s + ek % 2 + op.

Messages repeat Keras's wording, naming the argument and the numbers.

>>> conv_output_spatial((7, 7), (3, 3), (2, 2), "same", (1, 1))
(4, 4)
>>> transposed_pads((3,), (2,), "same", None, (1,))
(((0, 1),), (0,))
"""

from __future__ import annotations

from ..spec import is_int, same_pads

DATA_FORMATS = ("channels_last", "channels_first")


def standardize_tuple(value, n: int, name: str, allow_zero: bool = False) -> tuple[int, ...]:
    """An int or n ints as an n-tuple of positive (or, with allow_zero, non-negative) ints."""
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value!r}"
    values = (value,) * n if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != n or not all(is_int(v) for v in values):
        raise ValueError(message)
    low = 0 if allow_zero else 1
    bad = sorted({int(v) for v in values if v < low})
    if bad:
        raise ValueError(f"{message}, including values {bad} that do not satisfy "
                         f"`value {'>= 0' if allow_zero else '> 0'}`")
    return tuple(int(v) for v in values)


def standardize_padding(padding, allow_causal: bool, layer: str) -> str:
    """'valid', 'same' (any case) and, for Conv1D only, 'causal'."""
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    lowered = padding.lower() if isinstance(padding, str) else None
    if lowered not in allowed:
        hint = " ('causal' is only accepted by Conv1D)" if lowered == "causal" else ""
        raise ValueError(f"{layer}: The `padding` argument must be one of {set(allowed)} "
                         f"(case-insensitive). Received: padding={padding!r}{hint}")
    return lowered


def standardize_data_format(data_format, layer: str) -> str:
    """None means Keras's default image_data_format, 'channels_last'."""
    if data_format is None:
        return "channels_last"
    lowered = str(data_format).lower()
    if lowered not in DATA_FORMATS:
        raise ValueError(f"{layer}: The `data_format` argument must be one of "
                         f"{{'channels_first', 'channels_last'}}. Received: data_format={data_format!r}")
    return lowered


def check_positive(value, name: str, layer: str) -> int:
    """filters and depth_multiplier: a strictly positive int."""
    if not is_int(value) or value <= 0:
        raise ValueError(f"{layer}: Invalid value for argument `{name}`. Expected a strictly "
                         f"positive value. Received {name}={value!r}.")
    return int(value)


def check_groups(groups, filters: int, layer: str) -> int:
    """groups >= 1 and filters % groups == 0, as Keras's BaseConv checks them."""
    if not is_int(groups) or groups <= 0:
        raise ValueError(f"{layer}: The number of groups must be a positive integer. "
                         f"Received: groups={groups!r}.")
    if filters % groups:
        raise ValueError(f"{layer}: The number of filters must be evenly divisible by the number of "
                         f"groups. Received: groups={groups}, filters={filters} "
                         f"({filters} % {groups} = {filters % groups}).")
    return int(groups)


def check_input_channels(channels: int, groups: int, input_shape, layer: str) -> None:
    if channels is None or channels % groups:
        raise ValueError(f"{layer}: The number of input channels must be evenly divisible by the "
                         f"number of groups. Received groups={groups}, but the input has {channels} "
                         f"channels (full input shape is {tuple(input_shape)}).")


def check_strides_with_dilation(strides, dilation_rate, layer: str) -> None:
    """Conv and Conv*Transpose refuse a stride above 1 together with a dilation above 1."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"{layer}: `strides > 1` not supported in conjunction with "
                         f"`dilation_rate > 1`. Received: strides={strides} and "
                         f"dilation_rate={dilation_rate}")


def standardize_output_padding(output_padding, strides, layer: str):
    """None, or an n-tuple of ints each strictly below its stride."""
    if output_padding is None:
        return None
    padding = standardize_tuple(output_padding, len(strides), "output_padding", allow_zero=True)
    for dim, (op, s) in enumerate(zip(padding, strides)):
        if op >= s:
            raise ValueError(f"{layer}: `output_padding` must be strictly less than `strides` for all "
                             f"dimensions. At dimension {dim}, `output_padding` is {op} but `strides` "
                             f"is {s}. Received: output_padding={padding}, strides={strides}")
    return padding


def effective_kernel(kernel_size, dilation_rate) -> tuple[int, ...]:
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation_rate))


def conv_output_spatial(in_spatial, kernel_size, strides, padding, dilation_rate,
                        layer: str = "conv") -> tuple:
    """Keras's conv output sizes; ``None`` (unknown) sizes stay None.

    'valid': floor((in - ek) / s) + 1 (refused below 1); 'same' and 'causal': ceil(in / s).
    """
    out = []
    for dim, (size, ek, s) in enumerate(zip(in_spatial, effective_kernel(kernel_size, dilation_rate),
                                            strides)):
        if size is None:
            out.append(None)
        elif padding == "valid":
            out.append((size - ek) // s + 1)
            if out[-1] <= 0:
                raise ValueError(
                    f"{layer}: Computed output size would be zero or negative. Received input spatial "
                    f"shape {tuple(in_spatial)}, kernel_size={tuple(kernel_size)}, dilation_rate="
                    f"{tuple(dilation_rate)}, strides={tuple(strides)}, padding='valid': in dim {dim}, "
                    f"floor(({size} - {ek}) / {s}) + 1 = {out[-1]} (effective kernel {ek} > input {size})")
        else:
            out.append(-(-size // s))
    return tuple(out)


def transposed_output_spatial(in_spatial, kernel_size, strides, padding, output_padding,
                              dilation_rate) -> tuple:
    """Keras's Conv*Transpose output sizes (see the module docstring); None stays None."""
    out = []
    for dim, (size, ek, s) in enumerate(zip(in_spatial, effective_kernel(kernel_size, dilation_rate),
                                            strides)):
        op = None if output_padding is None else output_padding[dim]
        if size is None:
            out.append(None)
        elif padding == "valid":
            out.append((size - 1) * s + (max(ek, s) if op is None else ek + op))
        else:
            out.append(size * s if op is None else (size - 1) * s + ek % 2 + op)
    return tuple(out)


def transposed_pads(kernel_size, strides, padding, output_padding, dilation_rate):
    """Keras's Conv*Transpose said as PyTorch's per-side ``(lo, hi)`` pads and output_padding.

    Keras (as JAX) convolves the stride-dilated input, padded ``(L, R)``, with the flipped
    kernel: ``'valid'`` L = ek - 1, R = ek - 1 + op (op = max(ek, s) - ek when None);
    ``'same'`` total = s + ek - 2 (op None) or ek + ek % 2 - 2 + op, L = min(ceil(total / 2),
    ek - 1), R = total - L.  PyTorch crops lo = ek - 1 - L in front and hi - output_padding =
    ek - 1 - R behind; a negative crop behind becomes output_padding.  These do not depend on
    the input size.
    """
    pads, extra = [], []
    for dim, (ek, s) in enumerate(zip(effective_kernel(kernel_size, dilation_rate), strides)):
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


def causal_pads(kernel_size, dilation_rate) -> tuple[tuple[int, int], ...]:
    """'causal': every pad on the left, ek - 1 of them."""
    return tuple((ek - 1, 0) for ek in effective_kernel(kernel_size, dilation_rate))


def same_pairs(in_spatial, kernel_size, strides, dilation_rate) -> tuple[tuple[int, int], ...]:
    """'same' (SAME_UPPER) as per-side pads for inputs of ``in_spatial``."""
    return tuple(same_pads(i, k, s, d) for i, k, s, d in zip(in_spatial, kernel_size, strides, dilation_rate))


def padding_name(pairs, kernel_size, strides, dilation_rate, in_spatial) -> str | None:
    """'valid', 'causal' (1-D) or 'same' when per-side pads are that Keras rule for inputs of
    ``in_spatial``; None when Keras has no padding string for them."""
    pairs = tuple(tuple(p) for p in pairs)
    if all(p == (0, 0) for p in pairs):
        return "valid"
    if len(pairs) == 1 and pairs == causal_pads(kernel_size, dilation_rate):
        return "causal"
    return "same" if pairs == same_pairs(in_spatial, kernel_size, strides, dilation_rate) else None


def transposed_crops(pads, output_padding) -> tuple[tuple[int, int], ...]:
    """(lo, hi - output_padding) per dim: all that a transposed convolution's result depends on."""
    return tuple((lo, hi - op) for (lo, hi), op in zip(pads, output_padding))


def transposed_padding_for(kernel_size, strides, dilation_rate, crops):
    """The Keras Conv*Transpose ``(padding, output_padding)`` whose crops are ``crops``
    (output_padding None where Keras's default gives them), or None when no 'valid'/'same'
    with output_padding < strides does.  A dimension that needs an output_padding makes every
    dimension say one (the smallest that fits)."""
    for name in ("valid", "same"):
        defaults, chosen = [], []
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
