"""The convolution spec: every parameter normalised once, validated, and the shape rules.

A :class:`ConvSpec` holds n-tuples and explicit ``(lo, hi)`` padding pairs, so the
algorithms never see ``'same'``, bare ints or per-call variations.  Padding rules that
depend on the input size (``'same'`` with a stride above one) are kept as a rule name and
resolved by :meth:`ConvSpec.pads`.

Shape rules (``ek = dilation * (k - 1) + 1`` is the effective kernel)::

    conv:        out = floor((in + lo + hi - ek) / stride) + 1
    transposed:  out = (in - 1) * stride - lo - hi + ek + output_padding

Every check raises ``ValueError``/``TypeError`` naming the parameter, the rule and the
numbers, and repeats PyTorch's wording where PyTorch has a message for the condition.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_PADDING_STRINGS = ("same", "valid")
# npconv's extensions: SAME_LOWER (extra pad before) and causal (all pad before).
EXTRA_PADDING_STRINGS = ("same_lower", "causal")
SAME_RULES = ("same", "same_lower")


def is_int(value) -> bool:
    """An integer that is not a bool (NumPy integers included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def ntuple(value, n: int, name: str, op: str = "conv") -> tuple[int, ...]:
    """An int or a length-n sequence of ints as an n-tuple (PyTorch's ``_ntuple``)."""
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) == 1:
            return (int(value[0]),) * n
        if len(value) == n:
            return tuple(int(v) for v in value)
        raise ValueError(
            f"{op}: expected {name} to be a single integer value or a list of {n} values "
            f"to match the convolution dimensions, but got {name}={list(value)}")
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def _pad_pair(value, name: str, op: str) -> tuple[int, int]:
    if is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{op}: each entry of {name} must be an int or an (lo, hi) pair of ints, "
                    f"got {value!r}")


def explicit_pads(padding, n: int, op: str = "conv") -> tuple[tuple[int, int], ...]:
    """Ints, n-tuples and per-side pairs ``((lo, hi), ...)`` as n explicit pairs."""
    if is_int(padding):
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, (tuple, list)) and len(padding) in (1, n):
        pairs = tuple(_pad_pair(p, "padding", op) for p in padding)
        return pairs * n if len(pairs) == 1 else pairs
    if isinstance(padding, (tuple, list)):
        raise ValueError(
            f"{op}: expected padding to be a single integer value or a list of {n} values "
            f"(ints or (lo, hi) pairs) to match the convolution dimensions, "
            f"but got padding={list(padding)}")
    raise TypeError(f"{op}: padding must be an int, a tuple of ints or (lo, hi) pairs, "
                    f"or one of {TORCH_PADDING_STRINGS + EXTRA_PADDING_STRINGS}; got {padding!r}")


def same_pads(in_size: int, k: int, stride: int, dilation: int, lower: bool = False):
    """TensorFlow/ONNX SAME padding: out = ceil(in / stride), the odd pad after (or before)."""
    ek = dilation * (k - 1) + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + ek - in_size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


@dataclass(frozen=True)
class ConvSpec:
    """A convolution's parameters, normalised to n-tuples and validated.

    >>> spec = ConvSpec.build((3, 3), stride=2, padding=1)
    >>> spec.out_spatial((6, 6))
    (3, 3)
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...] | str
    dilation: tuple[int, ...]
    groups: int = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: tuple[int, ...] = ()
    op: str = "conv"

    @classmethod
    def build(cls, kernel_size, stride=1, padding=0, dilation=1, groups=1,
              padding_mode="zeros", transposed=False, output_padding=0, *,
              ndim: int | None = None, op: str | None = None) -> "ConvSpec":
        """Normalise and validate every parameter; ``ndim`` defaults to len(kernel_size)."""
        n = ndim if ndim is not None else (len(kernel_size) if isinstance(kernel_size, (tuple, list)) else 2)
        op = op or (f"conv_transpose{n}d" if transposed else f"conv{n}d")
        kernel = ntuple(kernel_size, n, "kernel_size", op)
        stride_t = ntuple(stride, n, "stride", op)
        dilation_t = ntuple(dilation, n, "dilation", op)
        _check_positive(op, kernel=kernel, stride=stride_t, dilation=dilation_t)
        _check_groups(op, groups)
        _check_padding_mode(op, padding_mode, transposed)
        pads = _normalise_padding(padding, kernel, stride_t, dilation_t, transposed, op)
        out_pad = ntuple(output_padding, n, "output_padding", op)
        _check_output_padding(op, out_pad, stride_t, dilation_t, transposed)
        return cls(kernel, stride_t, pads, dilation_t, int(groups), padding_mode,
                   bool(transposed), out_pad, op)

    # ---- questions the spec answers -------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @property
    def effective_kernel(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel_size)

    def pads(self, in_spatial) -> tuple[tuple[int, int], ...]:
        """Explicit (lo, hi) pairs for this input size."""
        if isinstance(self.padding, tuple):
            return self.padding
        lower = self.padding == "same_lower"
        return tuple(same_pads(i, k, s, d, lower) for i, k, s, d in
                     zip(in_spatial, self.kernel_size, self.stride, self.dilation))

    def out_spatial(self, in_spatial) -> tuple[int, ...]:
        """Output spatial shape for this input spatial shape (validated)."""
        in_spatial = tuple(in_spatial)
        pads = self.pads(in_spatial)
        if self.transposed:
            return self._transposed_out(in_spatial, pads)
        self._check_kernel_fits(in_spatial, pads)
        for d, (size, (lo, hi)) in enumerate(zip(in_spatial, pads)):
            check_mode_pad(self.padding_mode, size, lo, hi, d, self.op)
        return tuple((i + lo + hi - ek) // s + 1 for i, (lo, hi), ek, s in
                     zip(in_spatial, pads, self.effective_kernel, self.stride))

    def rows(self) -> list[tuple[str, str]]:
        """(parameter, value) pairs, the effective kernel and the output-size rule included."""
        rule = ("out = (in - 1) * stride - pad_lo - pad_hi + dilation * (k - 1) + 1 + output_padding"
                if self.transposed else "out = floor((in + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1")
        rows = [("op", self.op), ("kernel_size", str(self.kernel_size)), ("stride", str(self.stride)),
                ("padding (lo, hi)", str(self.padding)), ("dilation", str(self.dilation)),
                ("groups", str(self.groups)), ("padding_mode", self.padding_mode)]
        if self.transposed:
            rows.append(("output_padding", str(self.output_padding)))
        return rows + [("effective kernel", str(self.effective_kernel)), ("output size", rule)]

    def _repr_html_(self) -> str:
        """Jupyter shows a spec as a table."""
        import html
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"<code>{html.escape(v)}</code></td></tr>" for k, v in self.rows())
        return f"<table>{body}</table>"

    def transposed_out_range(self, in_spatial) -> tuple[tuple[int, int], ...]:
        """Per dim, the (min, max) output sizes a transposed conv can reach via output_padding."""
        low = dataclasses.replace(self, output_padding=(0,) * self.ndim).out_spatial(in_spatial)
        return tuple((b, b + s - 1) for b, s in zip(low, self.stride))

    def _transposed_out(self, in_spatial, pads) -> tuple[int, ...]:
        out = tuple((i - 1) * s - lo - hi + ek + op for i, s, (lo, hi), ek, op in
                    zip(in_spatial, self.stride, pads, self.effective_kernel, self.output_padding))
        if min(out) < 1:
            d = min(range(len(out)), key=lambda i: out[i])
            (lo, hi), raw = pads[d], out[d] + pads[d][0] + pads[d][1]
            raise ValueError(
                f"{self.op}: Given input size per channel: ({_x(in_spatial)}). Calculated output "
                f"size per channel: ({_x(out)}). Output size is too small; "
                f"rule: out = (in - 1) * stride - pad_lo - pad_hi + dilation * (k - 1) + 1 "
                f"+ output_padding must be >= 1: in dim {d}, {out[d]} = {raw} - {lo} - {hi}; "
                f"nearest valid: pad_lo + pad_hi <= {raw - 1}")
        return out

    def _check_kernel_fits(self, in_spatial, pads) -> None:
        padded = tuple(i + lo + hi for i, (lo, hi) in zip(in_spatial, pads))
        for d, (size, ek) in enumerate(zip(padded, self.effective_kernel)):
            if size >= ek:
                continue
            lo, hi = pads[d]
            raise ValueError(
                f"{self.op}: Calculated padded input size per channel: ({_x(padded)}). Kernel size: "
                f"({_x(self.effective_kernel)}). Kernel size can't be greater than actual input size: "
                f"in dim {d} padded input {size} = {in_spatial[d]} + {lo} + {hi} < effective kernel "
                f"{ek} = {self.dilation[d]}*({self.kernel_size[d]}-1)+1; nearest valid: "
                + _kernel_fit_fixes(in_spatial[d], lo, hi, self.kernel_size[d], self.dilation[d]))


def _kernel_fit_fixes(size: int, lo: int, hi: int, k: int, d: int) -> str:
    """The settings nearest to a refused one that make the kernel fit the padded input."""
    padded = size + lo + hi
    missing = d * (k - 1) + 1 - padded
    fixes = [f"padding {lo + -(-missing // 2)} per side (padded {size + 2 * (lo + -(-missing // 2))})"
             if lo == hi else f"padding ({lo}, {hi + missing})"]
    if k > 1 and padded > 1 and (padded - 1) // (k - 1) >= 1:
        fixes.append(f"dilation={(padded - 1) // (k - 1)} (effective kernel "
                     f"{(padded - 1) // (k - 1) * (k - 1) + 1})")
    fixes.append(f"kernel_size={(padded - 1) // d + 1}")
    return ", or ".join(fixes)


def check_mode_pad(mode: str, size: int, lo: int, hi: int, dim: int, op: str) -> None:
    """reflect needs pad < size, circular pad <= size (one wrap), as PyTorch's F.pad."""
    if mode == "reflect" and max(lo, hi) >= size:
        raise ValueError(
            f"{op}: padding_mode='reflect': Padding size should be less than the corresponding "
            f"input dimension, but got: padding ({lo}, {hi}) at spatial dim {dim} of size {size} "
            f"({max(lo, hi)} >= {size}); nearest valid: padding <= {size - 1} per side, or "
            f"padding_mode='replicate' (no limit)")
    if mode == "circular" and max(lo, hi) > size:
        raise ValueError(
            f"{op}: padding_mode='circular': Padding value causes wrapping around more than once: "
            f"padding ({lo}, {hi}) at spatial dim {dim} exceeds its size {size} ({max(lo, hi)} > {size}); "
            f"nearest valid: padding <= {size} per side")


def _x(values) -> str:
    return " x ".join(str(v) for v in values)


def _check_positive(op, **named) -> None:
    wording = {"kernel": "kernel size should be greater than zero",
               "stride": "non-positive stride is not supported",
               "dilation": "dilation should be greater than zero"}
    for name, values in named.items():
        if min(values) < 1:
            label = "kernel_size" if name == "kernel" else name
            raise ValueError(f"{op}: {wording[name]}, but got {label}={values} "
                             f"(every entry must be >= 1)")


def _check_groups(op, groups) -> None:
    if not is_int(groups):
        raise TypeError(f"{op}: groups must be a positive integer, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: non-positive groups is not supported: groups must be a positive "
                         f"integer, got groups={groups}")


def _check_padding_mode(op, mode, transposed) -> None:
    if mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {set(PADDING_MODES)}, "
                         f"but got padding_mode={mode!r}")
    if transposed and mode != "zeros":
        raise ValueError(f'{op}: Only "zeros" padding mode is supported for {_module_name(op)}, '
                         f"got padding_mode={mode!r}")


def _module_name(op: str) -> str:
    return op.replace("conv_transpose", "ConvTranspose").replace("conv", "Conv")


def _normalise_padding(padding, kernel, stride, dilation, transposed, op):
    if isinstance(padding, str):
        return _padding_string(padding, kernel, stride, dilation, transposed, op)
    pairs = explicit_pads(padding, len(kernel), op)
    if min(min(p) for p in pairs) < 0:
        raise ValueError(f"{op}: negative padding is not supported, got padding={padding!r} "
                         f"(every pad must be >= 0)")
    return pairs


def _padding_string(padding, kernel, stride, dilation, transposed, op):
    known = TORCH_PADDING_STRINGS + EXTRA_PADDING_STRINGS
    if padding not in known:
        raise ValueError(f"{op}: Invalid padding string {padding!r}, should be one of "
                         f"{{'same', 'valid'}} (npconv also accepts {EXTRA_PADDING_STRINGS})")
    if transposed and padding != "valid":
        raise ValueError(f"{op}: padding={padding!r} is not defined for transposed convolution; "
                         f"give explicit pads (ints or (lo, hi) pairs) or 'valid'")
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding == "causal":
        return tuple((d * (k - 1), 0) for k, d in zip(kernel, dilation))
    if max(stride) == 1:  # shape-free: total d*(k-1), the odd one after (before for same_lower)
        return tuple(same_pads(1, k, 1, d, padding == "same_lower") for k, d in zip(kernel, dilation))
    return padding


def _check_output_padding(op, out_pad, stride, dilation, transposed) -> None:
    if min(out_pad) < 0:
        raise ValueError(f"{op}: negative output_padding is not supported, got output_padding={out_pad}")
    if not transposed:
        if max(out_pad) > 0:
            raise ValueError(f"{op}: output_padding={out_pad} only applies to transposed convolution")
        return
    for d, (p, s, dil) in enumerate(zip(out_pad, stride, dilation)):
        if p >= max(s, dil):
            raise ValueError(
                f"{op}: output padding must be smaller than either stride or dilation, but got "
                f"output_padding={out_pad}, stride={stride}, dilation={dilation}: in dim {d} "
                f"output_padding {p} >= max(stride {s}, dilation {dil}); nearest valid: {max(s, dil) - 1}")


def _size(shape) -> str:
    return "[" + ", ".join(str(v) for v in shape) + "]"


def check_input_rank(op: str, n: int, input_shape) -> bool:
    """Whether the input is batched; refuses anything but (N, C, *n) and (C, *n)."""
    if len(input_shape) not in (n + 1, n + 2):
        raise ValueError(f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {op}, "
                         f"but got input of size: {_size(input_shape)}")
    return len(input_shape) == n + 2


def check_operands(spec: ConvSpec, input_shape, weight_shape, bias_shape=None) -> int:
    """Validate batched input (N, C, *s), weight and bias against the spec; returns C_out.

    conv weight: (C_out, C_in/groups, *k); transposed weight: (C_in, C_out/groups, *k).
    """
    op, g = spec.op, spec.groups
    if min(input_shape[2:]) < 1:
        raise ValueError(f"{op}: every spatial size of the input must be >= 1, got input of size "
                         f"{_size(input_shape)}")
    if len(weight_shape) != spec.ndim + 2:
        layout = "in_channels, out_channels/groups" if spec.transposed else "out_channels, in_channels/groups"
        raise ValueError(f"{op}: weight must be {spec.ndim + 2}-D ({layout}, *kernel_size), "
                         f"got weight of size {_size(weight_shape)}")
    if weight_shape[0] < 1 or weight_shape[0] % g:
        what = "at least 1" if weight_shape[0] < 1 else f"divisible by {g}"
        raise ValueError(f"{op}: Given groups={g}, expected weight to be {what} at dimension 0, "
                         f"but got weight of size {_size(weight_shape)} instead "
                         f"({weight_shape[0]} % {g} = {weight_shape[0] % g})")
    expected_c = weight_shape[0] if spec.transposed else weight_shape[1] * g
    if input_shape[1] != expected_c:
        given = "transposed=1" if spec.transposed else f"groups={g}"
        rule = "weight.shape[0]" if spec.transposed else f"weight.shape[1] * groups = {weight_shape[1]} * {g}"
        raise ValueError(f"{op}: Given {given}, weight of size {_size(weight_shape)}, expected "
                         f"input{_size(input_shape)} to have {expected_c} channels, but got "
                         f"{input_shape[1]} channels instead (rule: in_channels = {rule})"
                         + _channel_fix(spec, input_shape[1], weight_shape))
    out_channels = weight_shape[1] * g if spec.transposed else weight_shape[0]
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise ValueError(f"{op}: Given weight of size {_size(weight_shape)}, expected bias to be "
                         f"1-dimensional with {out_channels} elements, but got bias of size "
                         f"{_size(bias_shape)} instead")
    return out_channels


def _channel_fix(spec: ConvSpec, channels: int, weight_shape) -> str:
    """The groups (or weight) that would take ``channels`` input channels."""
    if spec.transposed:
        return f"; nearest valid: a weight of size {_size((channels,) + tuple(weight_shape[1:]))}"
    per_group = weight_shape[1]
    if per_group == 0 or channels == 0:  # no groups count can fix an empty side
        return ""
    groups = channels // per_group
    if channels % per_group == 0 and weight_shape[0] % groups == 0:
        return f"; nearest valid: groups={groups} ({channels} = {per_group} * {groups})"
    return (f"; nearest valid: a weight of size "
            f"{_size((weight_shape[0], channels // spec.groups) + tuple(weight_shape[2:]))}"
            if channels % spec.groups == 0 else "")


def weight_shape(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                 transposed: bool = False) -> tuple[int, ...]:
    """conv: (C_out, C_in/groups, *k); transposed: (C_in, C_out/groups, *k)."""
    kernel = tuple(kernel_size)
    if transposed:
        return (in_channels, out_channels // groups) + kernel
    return (out_channels, in_channels // groups) + kernel


def parameter_count(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                    bias: bool = True) -> int:
    """(prod(k) * C_in/groups + 1) * C_out, the spec documents' formula with groups."""
    return (math.prod(kernel_size) * (in_channels // groups) + int(bias)) * out_channels
