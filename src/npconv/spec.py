"""The convolution spec: every parameter normalised once, validated, and the shape rules.

A :class:`ConvSpec` holds n-tuples and explicit ``(lo, hi)`` padding pairs, so the
algorithms never see ``'same'``, bare ints or per-call variations.  Where 'same' depends on
the input size (a stride above one) the rule's name is kept in ``same_rule`` and
:meth:`ConvSpec.pads` resolves it.  ``op`` only labels messages: it is not part of a spec's
equality, hash or repr, so every face's call of one shape is one problem (one autotune entry).

Shape rules (``ek = dilation * (k - 1) + 1`` is the effective kernel)::

    conv:        out = floor((in + lo + hi - ek) / stride) + 1
    transposed:  out = (in - 1) * stride - lo - hi + ek + output_padding

This module, with ``npconv.spec_parsing`` (the parameter normalisation, whose public names
it re-exports), is the only place these rules are checked.  A refusal is a
:class:`npconv.spec_errors.ConvRuleError` (a ``ValueError``; ``ConvRuleTypeError`` for a
wrong type) carrying the rule, the dim, the numbers and the nearest valid setting, with
PyTorch's wording (spec_messages.py); the Keras and ONNX faces say it in their own words.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from . import spec_errors as errors
# the parameter normalisation (npconv.spec_parsing), re-exported: `from npconv.spec import ntuple` works
from .spec_parsing import (EXTRA_PADDING_STRINGS, PADDING_MODES, SAME_RULES, TORCH_PADDING_STRINGS,  # noqa: F401
                           IntOrTuple, Padding, Pads, _check_output_padding, _check_padding_mode,
                           _check_positive, _normalise_padding, check_groups, check_mode_pad,
                           explicit_pads, is_int, ntuple, same_pads)

# the page docs/api/spec.rst documents these (the re-exported ones included), in this order
__all__ = ["is_int", "ntuple", "explicit_pads", "same_pads", "ConvSpec", "check_mode_pad", "check_groups",
           "check_input_rank", "check_operands", "weight_shape", "parameter_count"]


@dataclass(frozen=True)
class ConvSpec:
    """A convolution's parameters, normalised to n-tuples and explicit pads, and validated.

    Make one with :meth:`build`, which checks every rule that needs no input shape; the
    questions that need one (:meth:`out_spatial`, :meth:`pads`) check the rest.  Frozen and
    hashable: equal problems are equal specs whatever face built them.

    Attributes
    ----------
    kernel_size, stride, dilation : tuple of int
        One entry per spatial dim.
    padding : tuple of (int, int)
        (lo, hi) per dim; zeros while ``same_rule`` decides them.
    groups : int
    padding_mode : str
        'zeros', 'reflect', 'replicate' or 'circular'.
    transposed : bool
    output_padding : tuple of int
    op : str
        The caller's label in messages (not part of equality).
    same_rule : str or None
        'same' or 'same_lower' where the pads depend on the input size, else None.

    Examples
    --------
    >>> spec = ConvSpec.build((3, 3), stride=2, padding=1)
    >>> spec.out_spatial((6, 6))
    (3, 3)
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (lo, hi) per dim; zeros while same_rule decides
    dilation: tuple[int, ...]
    groups: int = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: tuple[int, ...] = ()
    # the caller's label for messages: not part of the problem, so not of equality or hashing
    # (functional, nn, keras and onnx calls of one shape share one autotune entry)
    op: str = field(default="conv", compare=False, repr=False)
    # 'same' or 'same_lower' where the pads depend on the input size (stride > 1), else None
    same_rule: str | None = None

    @classmethod
    def build(cls, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: Padding = 0,
              dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros",
              transposed: bool = False, output_padding: IntOrTuple = 0, *,
              ndim: int | None = None, op: str | None = None) -> "ConvSpec":
        """Normalise and validate every parameter.

        Parameters
        ----------
        kernel_size, stride, padding, dilation, groups, padding_mode, transposed, output_padding
            As :func:`npconv.conv` takes them.
        ndim : int, optional
            The number of spatial dims (default: ``len(kernel_size)``, 2 for an int).
        op : str, optional
            The caller's name in messages (default ``conv{n}d`` or ``conv_transpose{n}d``).

        Returns
        -------
        ConvSpec

        Raises
        ------
        ConvRuleError
            A size below one, negative padding, an unknown padding string or mode, 'same'
            or a padding_mode other than zeros when transposed, output_padding when not
            transposed or not below ``max(stride, dilation)``.
        ConvRuleTypeError
            A parameter of the wrong type.

        Examples
        --------
        >>> ConvSpec.build(3, padding="same").padding
        ((1, 1), (1, 1))
        """
        n = ndim if ndim is not None else (len(kernel_size) if isinstance(kernel_size, (tuple, list)) else 2)
        op = op or (f"conv_transpose{n}d" if transposed else f"conv{n}d")
        kernel = ntuple(kernel_size, n, "kernel_size", op)
        stride_t = ntuple(stride, n, "stride", op)
        dilation_t = ntuple(dilation, n, "dilation", op)
        _check_positive(op, kernel_size=kernel, stride=stride_t, dilation=dilation_t)
        check_groups(op, groups)
        _check_padding_mode(op, padding_mode, transposed)
        pads = _normalise_padding(padding, kernel, stride_t, dilation_t, transposed, op)
        out_pad = ntuple(output_padding, n, "output_padding", op)
        _check_output_padding(op, out_pad, stride_t, dilation_t, transposed)
        same_rule, pairs = (pads, ((0, 0),) * n) if isinstance(pads, str) else (None, pads)
        return cls(kernel, stride_t, pairs, dilation_t, int(groups),
                   padding_mode, bool(transposed), out_pad, op, same_rule)

    def with_pads(self, pads: Pads, **changes: Any) -> "ConvSpec":
        """This spec with explicit ``pads`` (the same rule dropped) and other fields changed
        (no check: the caller's pads are already valid)."""
        return dataclasses.replace(self, padding=tuple(pads), same_rule=None, **changes)

    # ---- questions the spec answers -------------------------------------------------
    @property
    def ndim(self) -> int:
        """The number of spatial dims."""
        return len(self.kernel_size)

    @property
    def effective_kernel(self) -> tuple[int, ...]:
        """``dilation * (k - 1) + 1`` per dim: the span of the dilated kernel."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def kernel_volume(self) -> int:
        """The number of taps, ``prod(kernel_size)``."""
        return math.prod(self.kernel_size)

    @property
    def unit_stride(self) -> bool:
        """Whether every stride is one."""
        return max(self.stride) == 1

    @property
    def undilated(self) -> bool:
        """Whether every dilation is one."""
        return max(self.dilation) == 1

    @property
    def is_pointwise(self) -> bool:
        """A 1x1 (x1) forward convolution without padding: a matrix product per pixel."""
        return not self.transposed and self.kernel_volume == 1 and all(
            lo == hi == 0 for lo, hi in self.pads((1,) * self.ndim))

    def is_depthwise(self, in_channels: int) -> bool:
        """One input channel per group (groups == C_in): a forward depthwise convolution."""
        return not self.transposed and self.groups == in_channels

    def channels_per_group(self, in_channels: int) -> int:
        """``in_channels // groups``."""
        return in_channels // self.groups

    def check_channels(self, in_channels: int, out_channels: int) -> None:
        """A layer's channel counts: both divisible by groups (a module's constructor rule).

        Raises
        ------
        ConvRuleError
            Either count not divisible by ``groups`` (the message gives the nearest groups).
        """
        for label, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % self.groups:
                raise errors.channels_groups(self.op, label, channels, self.groups, in_channels, out_channels)

    def pads(self, in_spatial: Sequence[int]) -> Pads:
        """Explicit (lo, hi) pairs for this input spatial size (the same rule resolved).

        Examples
        --------
        >>> ConvSpec.build(3, stride=2, padding="same").pads((6, 7))
        ((0, 1), (1, 1))
        """
        if self.same_rule is None:
            return self.padding
        lower = self.same_rule == "same_lower"
        return tuple(same_pads(i, k, s, d, lower) for i, k, s, d in
                     zip(in_spatial, self.kernel_size, self.stride, self.dilation))

    def out_spatial(self, in_spatial: Sequence[int]) -> tuple[int, ...]:
        """The output spatial shape for this input spatial shape.

        Parameters
        ----------
        in_spatial : sequence of ints
            The input's spatial sizes (no batch or channel dims).

        Returns
        -------
        tuple of int
            conv: ``floor((in + lo + hi - ek) / stride) + 1``; transposed:
            ``(in - 1) * stride - lo - hi + ek + output_padding``.

        Raises
        ------
        ConvRuleError
            A kernel larger than the padded input (``'kernel_fits'``), reflect or circular
            padding too large for the size, a transposed output below one (``'output_size'``).

        Examples
        --------
        >>> ConvSpec.build(3, stride=2).out_spatial((7, 8))
        (3, 3)
        """
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
        """(parameter, value) pairs for a table, the effective kernel and the output-size rule
        included (what Jupyter shows)."""
        rule = ("out = (in - 1) * stride - pad_lo - pad_hi + dilation * (k - 1) + 1 + output_padding"
                if self.transposed else "out = floor((in + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1")
        rows = [("op", self.op), ("kernel_size", str(self.kernel_size)), ("stride", str(self.stride)),
                ("padding (lo, hi)", str(self.padding) if self.same_rule is None else
                 f"{self.same_rule!r} (pads depend on the input size)"), ("dilation", str(self.dilation)),
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

    def transposed_out_range(self, in_spatial: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Per dim, the (min, max) output sizes a transposed conv can reach via output_padding.

        Examples
        --------
        >>> ConvSpec.build(3, stride=2, transposed=True).transposed_out_range((4, 4))
        ((9, 10), (9, 10))
        """
        low = dataclasses.replace(self, output_padding=(0,) * self.ndim).out_spatial(in_spatial)
        return tuple((b, b + s - 1) for b, s in zip(low, self.stride))

    def _transposed_out(self, in_spatial: tuple[int, ...], pads: Pads) -> tuple[int, ...]:
        out = tuple((i - 1) * s - lo - hi + ek + extra for i, s, (lo, hi), ek, extra in
                    zip(in_spatial, self.stride, pads, self.effective_kernel, self.output_padding))
        if min(out) < 1:
            d = min(range(len(out)), key=lambda i: out[i])
            numbers = {"stride": self.stride[d], "kernel": self.kernel_size[d], "dilation": self.dilation[d],
                       "output_padding": self.output_padding[d]}
            raise errors.output_too_small(self.op, in_spatial, pads, out, numbers, d)
        return out

    def _numbers(self) -> dict[str, tuple[int, ...]]:
        return {"kernel_size": self.kernel_size, "dilation": self.dilation, "stride": self.stride,
                "effective_kernel": self.effective_kernel}

    def _check_kernel_fits(self, in_spatial: tuple[int, ...], pads: Pads) -> None:
        for d, ((lo, hi), size, ek) in enumerate(zip(pads, in_spatial, self.effective_kernel)):
            if size + lo + hi < ek:
                raise errors.kernel_too_big(self.op, in_spatial, pads, self._numbers(), d)


def check_input_rank(op: str, n: int, input_shape: Sequence[int]) -> bool:
    """Whether the input is batched; refuses anything but ``(N, C, *n)`` and ``(C, *n)``.

    Raises
    ------
    ConvRuleError
        ``'input_rank'``: a shape of another length than n + 1 or n + 2.

    Examples
    --------
    >>> check_input_rank("conv2d", 2, (8, 3, 32, 32)), check_input_rank("conv2d", 2, (3, 32, 32))
    (True, False)
    """
    if len(input_shape) not in (n + 1, n + 2):
        raise errors.input_rank(op, n, input_shape)
    return len(input_shape) == n + 2


def check_operands(spec: ConvSpec, input_shape: Sequence[int], weight_shape: Sequence[int],
                   bias_shape: Sequence[int] | None = None) -> int:
    """Validate a batched input ``(N, C, *s)``, the weight and the bias against the spec.

    conv weight: ``(C_out, C_in/groups, *k)``; transposed weight: ``(C_in, C_out/groups, *k)``.

    Returns
    -------
    int
        C_out, the output's channel count.

    Raises
    ------
    ConvRuleError
        An empty spatial dim, a weight of the wrong rank, ``weight.shape[0]`` not divisible
        by groups, channels that do not match the weight (with the groups that would fit), a
        bias not (C_out,).

    Examples
    --------
    >>> check_operands(ConvSpec.build(3, groups=2), (1, 4, 8, 8), (6, 2, 3, 3), (6,))
    6
    """
    op, g = spec.op, spec.groups
    if min(input_shape[2:]) < 1:
        raise errors.spatial_size(op, input_shape)
    if len(weight_shape) != spec.ndim + 2:
        raise errors.weight_rank(op, spec.ndim, spec.transposed, weight_shape)
    if weight_shape[0] < 1 or weight_shape[0] % g:
        raise errors.weight_groups(op, g, weight_shape, input_shape)
    expected_c = weight_shape[0] if spec.transposed else weight_shape[1] * g
    if input_shape[1] != expected_c:
        raise errors.input_channels(op, g, spec.transposed, input_shape, weight_shape, expected_c,
                                    _channel_fix(spec, input_shape[1], weight_shape))
    out_channels = weight_shape[1] * g if spec.transposed else weight_shape[0]
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise errors.bias_shape(op, out_channels, bias_shape, weight_shape)
    return out_channels


def _channel_fix(spec: ConvSpec, channels: int, weight_shape: Sequence[int]) -> str | None:
    """The groups (or weight) that would take ``channels`` input channels."""
    shape = errors.shape_text
    if spec.transposed:
        return f"a weight of size {shape((channels,) + tuple(weight_shape[1:]))}"
    per_group = weight_shape[1]
    if per_group == 0 or channels == 0:  # no groups count can fix an empty side
        return None
    groups = channels // per_group
    if channels % per_group == 0 and weight_shape[0] % groups == 0:
        return f"groups={groups} ({channels} = {per_group} * {groups})"
    return (f"a weight of size {shape((weight_shape[0], channels // spec.groups) + tuple(weight_shape[2:]))}"
            if channels % spec.groups == 0 else None)


def weight_shape(in_channels: int, out_channels: int, kernel_size: Sequence[int], groups: int = 1,
                 transposed: bool = False) -> tuple[int, ...]:
    """A layer's weight shape: conv ``(C_out, C_in/groups, *k)``; transposed ``(C_in, C_out/groups, *k)``.

    Examples
    --------
    >>> weight_shape(4, 6, (3, 3), groups=2), weight_shape(4, 6, (3, 3), groups=2, transposed=True)
    ((6, 2, 3, 3), (4, 3, 3, 3))
    """
    kernel = tuple(kernel_size)
    if transposed:
        return (in_channels, out_channels // groups) + kernel
    return (out_channels, in_channels // groups) + kernel


def parameter_count(in_channels: int, out_channels: int, kernel_size: Sequence[int], groups: int = 1,
                    bias: bool = True) -> int:
    """A layer's number of parameters: ``(prod(k) * C_in/groups + bias) * C_out``.

    Examples
    --------
    >>> parameter_count(3, 64, (7, 7)), parameter_count(32, 32, (3, 3), groups=32, bias=False)
    (9472, 288)
    """
    return (math.prod(kernel_size) * (in_channels // groups) + int(bias)) * out_channels
