"""PyTorch's words: the message, rule and numbers of each refusal :class:`npconv.spec.ConvSpec` raises.

One builder per rule of the table in :mod:`npconv.spec_errors`; each returns the
:class:`~npconv.spec_errors.ConvRuleError` (or ``ConvRuleTypeError``) to raise, its message in
PyTorch's wording and its nearest valid setting where there is one (:func:`kernel_fit_fixes`,
:func:`groups_hint`).  ``npconv.spec_errors`` re-exports every public name here, so ``spec_errors.tuple_length``
and the rest keep working.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

from .spec_errors import ConvRuleError, ConvRuleTypeError


def _x(values: Sequence[object]) -> str:
    return " x ".join(str(v) for v in values)


def shape_text(shape: Sequence[int]) -> str:
    """A shape as PyTorch prints a size: ``[1, 3, 5]``."""
    return "[" + ", ".join(str(v) for v in shape) + "]"


def _module_name(op: str) -> str:
    return op.replace("conv_transpose", "ConvTranspose").replace("conv", "Conv")


def tuple_length(op: str, name: str, n: int, values: Sequence[object]) -> ConvRuleError:
    return ConvRuleError(
        f"{op}: expected {name} to be a single integer value or a list of {n} values "
        f"to match the convolution dimensions, but got {name}={list(values)}",
        rule="tuple_length", param=name, op=op, numbers={"n": n, "values": list(values)})


def tuple_type(op: str, name: str, n: int, value: object) -> ConvRuleTypeError:
    return ConvRuleTypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}",
                             rule="tuple_type", param=name, op=op, numbers={"n": n, "value": value})


POSITIVE_WORDING = {"kernel_size": "kernel size should be greater than zero",
                    "stride": "non-positive stride is not supported",
                    "dilation": "dilation should be greater than zero"}


def not_positive(op: str, name: str, values: Sequence[int], minimum: int = 1) -> ConvRuleError:
    wording = POSITIVE_WORDING.get(name, f"{name} must be >= {minimum}")
    return ConvRuleError(f"{op}: {wording}, but got {name}={tuple(values)} (every entry must be >= {minimum})",
                         rule="positive", param=name, op=op,
                         numbers={"values": tuple(values), "minimum": minimum})


def groups_type(op: str, groups: object) -> ConvRuleTypeError:
    return ConvRuleTypeError(f"{op}: groups must be a positive integer, got {groups!r}",
                             rule="groups_type", param="groups", op=op, numbers={"value": groups})


def groups_not_positive(op: str, groups: numbers.Integral | int) -> ConvRuleError:
    return ConvRuleError(f"{op}: non-positive groups is not supported: groups must be a positive "
                         f"integer, got groups={groups}", rule="positive", param="groups", op=op,
                         numbers={"values": (groups,), "minimum": 1}, nearest="groups=1")


def padding_mode(op: str, mode: object, modes: Sequence[str]) -> ConvRuleError:
    return ConvRuleError(f"{op}: padding_mode must be one of {set(modes)}, but got padding_mode={mode!r}",
                         rule="padding_mode", param="padding_mode", op=op, numbers={"value": mode})


def transposed_padding_mode(op: str, mode: str) -> ConvRuleError:
    return ConvRuleError(f'{op}: Only "zeros" padding mode is supported for {_module_name(op)}, '
                         f"got padding_mode={mode!r}", rule="transposed_padding_mode", param="padding_mode",
                         op=op, numbers={"value": mode}, nearest="padding_mode='zeros'")


def pad_pair_type(op: str, name: str, value: object) -> ConvRuleTypeError:
    return ConvRuleTypeError(f"{op}: each entry of {name} must be an int or an (lo, hi) pair of ints, "
                             f"got {value!r}", rule="padding_type", param=name, op=op, numbers={"value": value})


def padding_length(op: str, n: int, values: Sequence[object]) -> ConvRuleError:
    return ConvRuleError(
        f"{op}: expected padding to be a single integer value or a list of {n} values "
        f"(ints or (lo, hi) pairs) to match the convolution dimensions, but got padding={list(values)}",
        rule="padding_length", param="padding", op=op, numbers={"n": n, "values": list(values)})


def padding_type(op: str, value: object, strings: Sequence[str]) -> ConvRuleTypeError:
    return ConvRuleTypeError(f"{op}: padding must be an int, a tuple of ints or (lo, hi) pairs, "
                             f"or one of {strings}; got {value!r}",
                             rule="padding_type", param="padding", op=op, numbers={"value": value})


def padding_string(op: str, value: str, extra: Sequence[str]) -> ConvRuleError:
    return ConvRuleError(f"{op}: Invalid padding string {value!r}, should be one of "
                         f"{{'same', 'valid'}} (npconv also accepts {extra})",
                         rule="padding_string", param="padding", op=op, numbers={"value": value})


def same_transposed(op: str, value: str) -> ConvRuleError:
    return ConvRuleError(f"{op}: padding={value!r} is not defined for transposed convolution; "
                         f"give explicit pads (ints or (lo, hi) pairs) or 'valid'",
                         rule="same_transposed", param="padding", op=op, numbers={"value": value})


def negative_padding(op: str, value: object) -> ConvRuleError:
    return ConvRuleError(f"{op}: negative padding is not supported, got padding={value!r} "
                         f"(every pad must be >= 0)", rule="negative_padding", param="padding", op=op,
                         numbers={"value": value})


def output_padding_negative(op: str, values: Sequence[int]) -> ConvRuleError:
    return ConvRuleError(f"{op}: negative output_padding is not supported, got output_padding={values}",
                         rule="output_padding_negative", param="output_padding", op=op,
                         numbers={"values": values})


def output_padding_conv(op: str, values: Sequence[int]) -> ConvRuleError:
    return ConvRuleError(f"{op}: output_padding={values} only applies to transposed convolution",
                         rule="output_padding_conv", param="output_padding", op=op, numbers={"values": values})


def output_padding_limit(op: str, values: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                         dim: int) -> ConvRuleError:
    p, s, d = values[dim], stride[dim], dilation[dim]
    return ConvRuleError(
        f"{op}: output padding must be smaller than either stride or dilation, but got "
        f"output_padding={values}, stride={stride}, dilation={dilation}: in dim {dim} "
        f"output_padding {p} >= max(stride {s}, dilation {d}); nearest valid: {max(s, d) - 1}",
        rule="output_padding_limit", param="output_padding", op=op, dim=dim,
        numbers={"values": values, "stride": stride, "dilation": dilation, "output_padding": p,
                 "limit": max(s, d) - 1}, nearest=f"output_padding {max(s, d) - 1} in dim {dim}")


def kernel_too_big(op: str, in_spatial: Sequence[int], pads: Sequence[tuple[int, int]],
                   spec_numbers: Mapping[str, Sequence[int]], dim: int) -> ConvRuleError:
    """The effective kernel is larger than the padded input in ``dim``; ``spec_numbers`` holds
    the spec's kernel_size, dilation, stride and effective_kernel tuples (``blocks``: the window
    counts floor((padded - effective) / stride) + 1 per dim, some below one)."""
    kernel, dilation, stride, effective = (spec_numbers[key] for key in
                                           ("kernel_size", "dilation", "stride", "effective_kernel"))
    padded = tuple(i + lo + hi for i, (lo, hi) in zip(in_spatial, pads))
    blocks = tuple((p - e) // s + 1 for p, e, s in zip(padded, effective, stride))
    (lo, hi), size, k, d = pads[dim], in_spatial[dim], kernel[dim], dilation[dim]
    nearest = kernel_fit_fixes(size, lo, hi, k, d, effective[dim])
    return ConvRuleError(
        f"{op}: Calculated padded input size per channel: ({_x(padded)}). Kernel size: "
        f"({_x(effective)}). Kernel size can't be greater than actual input size: "
        f"in dim {dim} padded input {padded[dim]} = {size} + {lo} + {hi} < effective kernel "
        f"{effective[dim]} = {d}*({k}-1)+1; nearest valid: {nearest}",
        rule="kernel_fits", param="kernel_size", op=op, dim=dim, nearest=nearest,
        numbers={"size": size, "lo": lo, "hi": hi, "padded": padded[dim], "kernel": k, "dilation": d,
                 "effective": effective[dim], "in_spatial": tuple(in_spatial), "pads": tuple(pads),
                 "padded_spatial": padded, "effective_kernel": effective, "stride": tuple(stride),
                 "kernel_size": tuple(kernel), "dilations": tuple(dilation), "blocks": blocks})


def kernel_fit_fixes(size: int, lo: int, hi: int, k: int, d: int, effective: int) -> str:
    """The settings nearest to a refused one that make the kernel fit the padded input."""
    padded = size + lo + hi
    missing = effective - padded
    fixes = [f"padding {lo + -(-missing // 2)} per side (padded {size + 2 * (lo + -(-missing // 2))})"
             if lo == hi else f"padding ({lo}, {hi + missing})"]
    if k > 1 and padded > 1 and (padded - 1) // (k - 1) >= 1:
        fixes.append(f"dilation={(padded - 1) // (k - 1)} (effective kernel "
                     f"{(padded - 1) // (k - 1) * (k - 1) + 1})")
    fixes.append(f"kernel_size={(padded - 1) // d + 1}")
    return ", or ".join(fixes)


def reflect_pad(op: str, size: int, lo: int, hi: int, dim: int) -> ConvRuleError:
    return ConvRuleError(
        f"{op}: padding_mode='reflect': Padding size should be less than the corresponding "
        f"input dimension, but got: padding ({lo}, {hi}) at spatial dim {dim} of size {size} "
        f"({max(lo, hi)} >= {size}); nearest valid: padding <= {size - 1} per side, or "
        f"padding_mode='replicate' (no limit)", rule="reflect_pad", param="padding", op=op, dim=dim,
        numbers={"size": size, "lo": lo, "hi": hi}, nearest=f"padding <= {size - 1} per side")


def circular_pad(op: str, size: int, lo: int, hi: int, dim: int) -> ConvRuleError:
    return ConvRuleError(
        f"{op}: padding_mode='circular': Padding value causes wrapping around more than once: "
        f"padding ({lo}, {hi}) at spatial dim {dim} exceeds its size {size} ({max(lo, hi)} > {size}); "
        f"nearest valid: padding <= {size} per side", rule="circular_pad", param="padding", op=op,
        dim=dim, numbers={"size": size, "lo": lo, "hi": hi}, nearest=f"padding <= {size} per side")


def output_too_small(op: str, in_spatial: Sequence[int], pads: Sequence[tuple[int, int]], out: Sequence[int],
                     spec_numbers: Mapping[str, int], dim: int) -> ConvRuleError:
    """A transposed convolution's output size below 1 in ``dim``; ``spec_numbers`` holds the
    spec's stride, kernel, dilation and output_padding in that dim."""
    (lo, hi), raw = pads[dim], out[dim] + pads[dim][0] + pads[dim][1]
    return ConvRuleError(
        f"{op}: Given input size per channel: ({_x(in_spatial)}). Calculated output "
        f"size per channel: ({_x(out)}). Output size is too small; "
        f"rule: out = (in - 1) * stride - pad_lo - pad_hi + dilation * (k - 1) + 1 "
        f"+ output_padding must be >= 1: in dim {dim}, {out[dim]} = {raw} - {lo} - {hi}; "
        f"nearest valid: pad_lo + pad_hi <= {raw - 1}", rule="output_size", param="padding", op=op, dim=dim,
        nearest=f"pad_lo + pad_hi <= {raw - 1}",
        numbers={"size": in_spatial[dim], "lo": lo, "hi": hi, "out": out[dim], "full": raw,
                 "in_spatial": tuple(in_spatial), "out_spatial": tuple(out), **spec_numbers})


def input_rank(op: str, n: int, shape: Sequence[int]) -> ConvRuleError:
    return ConvRuleError(f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {op}, "
                         f"but got input of size: {shape_text(shape)}", rule="input_rank", param="input", op=op,
                         numbers={"n": n, "shape": tuple(shape)})


def spatial_size(op: str, shape: Sequence[int]) -> ConvRuleError:
    return ConvRuleError(f"{op}: every spatial size of the input must be >= 1, got input of size "
                         f"{shape_text(shape)}", rule="spatial_size", param="input", op=op,
                         numbers={"shape": tuple(shape)})


def weight_rank(op: str, n: int, transposed: bool, shape: Sequence[int]) -> ConvRuleError:
    layout = "in_channels, out_channels/groups" if transposed else "out_channels, in_channels/groups"
    return ConvRuleError(f"{op}: weight must be {n + 2}-D ({layout}, *kernel_size), "
                         f"got weight of size {shape_text(shape)}", rule="weight_rank", param="weight", op=op,
                         numbers={"n": n, "shape": tuple(shape)})


def weight_groups(op: str, groups: int, shape: Sequence[int], input_shape: Sequence[int]) -> ConvRuleError:
    what = "at least 1" if shape[0] < 1 else f"divisible by {groups}"
    return ConvRuleError(f"{op}: Given groups={groups}, expected weight to be {what} at dimension 0, "
                         f"but got weight of size {shape_text(shape)} instead "
                         f"({shape[0]} % {groups} = {shape[0] % groups})", rule="weight_groups",
                         param="weight", op=op,
                         numbers={"groups": groups, "shape": tuple(shape), "input_shape": tuple(input_shape)})


def input_channels(op: str, groups: int, transposed: bool, input_shape: Sequence[int], weight_shape: Sequence[int],
                   expected: int, nearest: str | None) -> ConvRuleError:
    given = "transposed=1" if transposed else f"groups={groups}"
    rule = "weight.shape[0]" if transposed else f"weight.shape[1] * groups = {weight_shape[1]} * {groups}"
    return ConvRuleError(f"{op}: Given {given}, weight of size {shape_text(weight_shape)}, expected "
                         f"input{shape_text(input_shape)} to have {expected} channels, but got "
                         f"{input_shape[1]} channels instead (rule: in_channels = {rule})"
                         + (f"; nearest valid: {nearest}" if nearest else ""),
                         rule="input_channels", param="input", op=op, nearest=nearest,
                         numbers={"groups": groups, "channels": input_shape[1], "expected": expected,
                                  "weight_shape": tuple(weight_shape), "input_shape": tuple(input_shape)})


def bias_shape(op: str, out_channels: int, shape: Sequence[int], weight_shape: Sequence[int]) -> ConvRuleError:
    return ConvRuleError(f"{op}: Given weight of size {shape_text(weight_shape)}, expected bias to be "
                         f"1-dimensional with {out_channels} elements, but got bias of size "
                         f"{shape_text(shape)} instead", rule="bias_shape", param="bias", op=op,
                         numbers={"out_channels": out_channels, "shape": tuple(shape),
                                  "weight_shape": tuple(weight_shape)})


def fold_channels(op: str, channels: int, kernel: Sequence[int]) -> ConvRuleError:
    volume = 1
    for k in kernel:
        volume *= k
    return ConvRuleError(f"{op}: Expected size of input's dimension 1 to be divisible by the product "
                         f"of kernel_size, but got input.size(1)={channels} and "
                         f"kernel_size={tuple(kernel)} ({channels} % {volume} = {channels % volume}).",
                         rule="fold_channels", param="input", op=op,
                         numbers={"channels": channels, "kernel": tuple(kernel), "volume": volume})


def fold_blocks(op: str, columns: int, output_size: Sequence[int], kernel: Sequence[int], dilation: Sequence[int],
                pads: Sequence[tuple[int, int]], stride: Sequence[int], blocks: Sequence[int]) -> ConvRuleError:
    total = 1
    for b in blocks:
        total *= b
    return ConvRuleError(
        f"{op}: Given output_size={tuple(output_size)}, kernel_size={tuple(kernel)}, "
        f"dilation={tuple(dilation)}, padding={tuple(lo for lo, _ in pads)}, "
        f"stride={tuple(stride)}, expected size of input's dimension 2 to match the calculated "
        f"number of sliding blocks {' * '.join(map(str, blocks))} = {total}, but got "
        f"input.size(2)={columns}.", rule="fold_blocks", param="input", op=op,
        numbers={"columns": columns, "blocks": tuple(blocks), "total": total})


def channels_groups(op: str, label: str, channels: int, groups: int, in_channels: int,
                    out_channels: int) -> ConvRuleError:
    nearest = groups_hint(in_channels, out_channels, groups)
    return ConvRuleError(f"{op}: {label} must be divisible by groups: {label}={channels}, "
                         f"groups={groups}, {channels} % {groups} = {channels % groups}" + nearest,
                         rule="channels_groups", param=label, op=op, nearest=nearest.lstrip("; ") or None,
                         numbers={"channels": channels, "groups": groups, "in_channels": in_channels,
                                  "out_channels": out_channels})


# A hint must come at once whatever the channel counts: Conv2d(2**40, 2**40, 3, groups=3) used to
# scan 2**40 candidates.  At most this many trial divisions are spent on one hint.
HINT_SEARCH_STEPS = 4096


def groups_hint(in_channels: int, out_channels: int, groups: int) -> str:
    """'; nearest valid: groups=g' for a refused groups, or the rule when no divisor is found quickly."""
    if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in (in_channels, out_channels)):
        return ""  # the message names them already
    common = math.gcd(in_channels, out_channels)
    nearest = nearest_divisor(common, groups)
    if nearest is not None:
        return f"; nearest valid: groups={nearest}"
    return (f"; valid: groups=1 or any divisor of gcd(in_channels, out_channels) = {common} "
            f"(none within {HINT_SEARCH_STEPS // 2} of groups={groups})")


def nearest_divisor(n: int, wanted: int) -> int | None:
    """The divisor of n closest to wanted (the smaller on a tie); None when it is not found
    within HINT_SEARCH_STEPS trial divisions."""
    if wanted >= n >= 1:  # n is its own largest divisor
        return n
    if n <= HINT_SEARCH_STEPS ** 2:  # trial division up to sqrt(n) finds every divisor
        small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
        candidates = small + [n // d for d in small]
    else:  # a window around wanted: any divisor closer than the best found would lie inside it
        half = HINT_SEARCH_STEPS // 2
        candidates = [d for d in range(max(1, wanted - half), min(n, wanted + half) + 1) if n % d == 0]
    return min(candidates, key=lambda d: (abs(d - wanted), d)) if candidates else None
