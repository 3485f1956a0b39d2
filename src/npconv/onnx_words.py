"""ONNX's words for :class:`npconv.spec.ConvSpec`'s refusals: :data:`ONNX_WORDS` maps each rule
of :mod:`npconv.spec_errors` to a message that names ONNX's attributes and operands (X, W, B,
group, pads) instead of PyTorch's; :mod:`npconv.onnx` and :mod:`npconv.convert.onnx` raise
under it (``with worded(ONNX_WORDS)``).
"""

from __future__ import annotations

from typing import Any, Callable

from .spec_errors import ConvRule, ConvRuleError


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
    n = error.numbers
    if error.op == "ConvTranspose":  # W.shape[0] is C there: the channel rule says it
        return _channels(ConvRule(error.message, rule=error.rule, param=error.param, op=error.op,
                                  numbers={**n, "weight_shape": n["shape"]}))
    m, g = n["shape"][0], n["groups"]
    if m < 1:
        return f"{error.op}: W.shape[0] = M = {m} must be at least 1 (W of shape {list(n['shape'])})"
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
