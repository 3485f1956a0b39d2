"""Which inputs and weights make one output, and which outputs one input reaches.

Every answer comes from :func:`npconv.windows.tap_sources`, the per-dim table of source
indices that the engine's window gather copies from, so the teaching text and the numbers
the engine computes cannot disagree.  Along one dim, output ``o`` reads padded position
``p = o * stride + k * dilation - pad_lo`` through tap ``k``; the padding mode maps ``p``
to an input index (or to a zero).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from .. import core
from ..spec import ConvSpec, IntOrTuple, Padding, Pads, check_operands
from ..windows import tap_tables


@dataclass(frozen=True)
class Term:
    """One product of the sum: ``weight * value``, read at ``position`` (padded frame).

    Attributes
    ----------
    channel : int
        The input channel read.
    tap : tuple of int
        The kernel tap (one index per spatial dim).
    position : tuple of int
        Where the tap falls, in input coordinates (negative or past the end: on the padding).
    source : tuple of int or None
        The input element read (under reflect/replicate/circular padding, the one copied);
        None on zero padding.
    value : float or complex
        The value read (0.0 on zero padding); complex when the input is.
    weight : float or complex
        The weight of this tap; complex when the weight is.
    """

    channel: int
    tap: tuple[int, ...]
    position: tuple[int, ...]
    source: tuple[int, ...] | None  # the input element read; None: zero padding
    value: float | complex
    weight: float | complex

    @property
    def padded(self) -> bool:
        """Whether the tap falls on the padding (``source`` is not ``position``)."""
        return self.source != self.position


@dataclass(frozen=True)
class Explanation:
    """One output element as the sum of its terms, and the value the engine computed.

    ``str(e)`` is :meth:`text`; in Jupyter it shows as that text.

    Attributes
    ----------
    op : str
        The operation, e.g. ``'conv2d'`` or ``'conv_transpose2d'``.
    index : tuple of int
        The output element explained (as given: unbatched inputs have no batch index).
    value : float or complex
        The engine's value of that element (complex when the convolution is).
    terms : tuple of Term
        Every product of the sum, channel by channel, taps row-major.
    bias : float or complex
        The bias added (0.0 when none).
    spec : ConvSpec
        The normalised parameters.
    pads : tuple of (int, int)
        ``(lo, hi)`` per spatial dim, as resolved for this input.
    channels : tuple of (int, int)
        The first and last input channel of this output's group.
    """

    op: str
    index: tuple[int, ...]
    value: float | complex
    terms: tuple[Term, ...]
    bias: float | complex
    spec: ConvSpec
    pads: tuple[tuple[int, int], ...]
    channels: tuple[int, int]  # the input channels of this output's group, [first, last]

    def sum_line(self) -> str:
        """The sum on one line: ``474 = 0+1+6+7 + 36+37+...``, as it is worked out by hand.

        Channels are set apart by spaces, values copied into the padding are in brackets and
        zero padding is left out; weights are shown (``2*1 + (-1)*2``) unless all are 1.
        Complex numbers read as NumPy prints them, ``(1+2j)``, each part to 6 digits.
        """
        by_channel = itertools.groupby(self.terms, key=lambda t: t.channel)
        unit = all(t.weight == 1 for t in self.terms)
        parts = []
        for _, terms in by_channel:
            shown = [_term_text(t, unit) for t in terms if t.source is not None]
            if shown:
                parts.append(("+" if unit else " + ").join(shown))
        body = " + ".join(parts) if parts else "0"
        if self.bias:
            body += f" + bias {_num(self.bias)}"
        return f"{_num(self.value)} = {body}"

    def text(self) -> str:
        """The heading, the sum line, the padding taps, and (1-D and 2-D) each channel's window."""
        lines = [self.heading(), self.sum_line()]
        zeros = sum(t.source is None for t in self.terms)
        if zeros:
            lines.append(f"  ({zeros} of {len(self.terms)} taps fall on zero padding and add 0)")
        moved = [t for t in self.terms if t.padded and t.source is not None]
        if moved:
            lines.append(f"  ({len(moved)} of {len(self.terms)} taps fall on {self.spec.padding_mode} padding, "
                         "position -> input read: "
                         + ", ".join(f"{_at(t.position)}->{_at(t.source)}" for t in moved[:8])
                         + (" ..." if len(moved) > 8 else "") + ")")
        lines += window_grids(self)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(self.text())}</pre>"

    def heading(self) -> str:
        """The output index, the parameters and which input channels it reads."""
        s = self.spec
        first, last = self.channels
        mode = f"output_padding {s.output_padding}" if s.transposed else f"padding_mode '{s.padding_mode}'"
        reads = (f"{len(self.terms)} terms" if s.transposed
                 else f"{math.prod(s.kernel_size)} taps each")
        return (f"{self.op} output{list(self.index)}: stride {s.stride}, padding {self.pads}, "
                f"dilation {s.dilation}, groups {s.groups}, {mode}; "
                f"reads input channels {first}..{last}, {reads}")

    __str__ = text


def _num(v: float | complex) -> str:
    if isinstance(v, complex):
        return f"({v.real:g}{v.imag:+g}j)"  # NumPy's (a+bj), with the real numbers' precision
    return f"{float(v):g}"


def _scalar(v: np.generic) -> float | complex:
    """A Python float, or a complex for a complex array element (never dropping the imaginary part)."""
    return complex(v) if np.iscomplexobj(v) else float(v)


def _at(position: Sequence[int] | None) -> str:
    return "(" + ",".join(str(p) for p in position or ()) + ")"


def _term_text(t: Term, unit: bool) -> str:
    value = f"[{_num(t.value)}]" if t.padded else _num(t.value)
    if unit:
        return value
    negative = not isinstance(t.weight, complex) and t.weight < 0  # complex: already in brackets
    weight = f"({_num(t.weight)})" if negative else _num(t.weight)
    return f"{weight}*{value}"


def window_grids(e: Explanation) -> list[str]:
    """For 1-D and 2-D: each channel's window as a grid, padded values in brackets."""
    if e.spec.transposed or e.spec.ndim > 2 or len(e.terms) > 400:
        return []
    blocks = []
    for channel, terms in itertools.groupby(e.terms, key=lambda t: t.channel):
        cells = [f"[{_num(t.value)}]" if t.padded else _num(t.value) for t in terms]
        rows_n = e.spec.kernel_size[0] if e.spec.ndim == 2 else 1
        width = len(cells) // rows_n
        blocks.append((f"channel {channel}", [cells[r * width:(r + 1) * width] for r in range(rows_n)]))
    cell = max(len(c) for _, rows in blocks for row in rows for c in row)
    texts = []
    for title, rows in blocks:
        lines = [" ".join(c.rjust(cell) for c in row) for row in rows]
        width = max(len(title), *(len(line) for line in lines))
        texts.append([title.ljust(width)] + [line.ljust(width) for line in lines])
    return ["   ".join(parts).rstrip() for parts in zip(*texts)]


def _check_index(name: str, index: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    index = tuple(int(i) for i in index)
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"{name}={list(index)} is outside the shape {list(shape)} "
                         f"(one index per axis, each 0 <= i < size)")
    return index


def _batched(x: npt.ArrayLike, w: npt.ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim == n + 1:
        x = x[None]
    return x, w


def explain_output(x: npt.ArrayLike, w: npt.ArrayLike, index: Sequence[int], stride: IntOrTuple = 1,
                   padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
                   padding_mode: str = "zeros", bias: npt.ArrayLike | None = None) -> Explanation:
    """The input positions and weights that make ``conv(x, w)[index]``.

    Along each dim, output ``o`` reads padded position ``o * stride + k * dilation - pad_lo``
    through tap ``k``; the terms come from the engine's own table of those positions.
    A complex input, weight or bias gives complex terms and value, printed as NumPy prints
    complex numbers: ``(1+2j)``.

    Parameters
    ----------
    x : array_like
        The input, ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; 1, 2 or 3
        spatial dims; real or complex.
    w : array_like
        The weight, ``(C_out, C_in / groups, *kernel)``; real or complex.
    index : sequence of int
        The output element: ``(n, c_out, *o)``, or ``(c_out, *o)`` for an unbatched input.
    stride, padding, dilation, groups, padding_mode
        As :func:`npconv.functional.conv2d` (and ``conv1d``/``conv3d``).
    bias : array_like, optional
        ``(C_out,)``; its entry is added after the sum.

    Returns
    -------
    Explanation
        The terms (input element, weight, value; padded positions marked), the bias and the
        value the engine computed.

    Raises
    ------
    ValueError
        A setting the convolution refuses (the engine's message), or ``index`` outside the
        output's shape.

    Examples
    --------
    >>> x = np.arange(36.).reshape(1, 1, 6, 6)
    >>> print(explain_output(x, np.ones((1, 1, 3, 3)), (0, 0, 1, 0), stride=2).sum_line())
    171 = 12+13+14+18+19+20+24+25+26
    >>> e = explain_output(x, np.ones((1, 1, 3, 3)), (0, 0, 0, 0), padding=1, padding_mode="reflect")
    >>> e.sum_line(), e.terms[0].source
    ('42 = [7]+[6]+[7]+[1]+0+1+[7]+6+7', (1, 1))
    >>> xc = np.array([[1 + 1j, 2, 3j]])  # unbatched (C_in, L), complex
    >>> e = explain_output(xc, np.array([[[1j, 2]]]), (0, 0))
    >>> print(e.sum_line())
    (3+1j) = (0+1j)*(1+1j) + (2+0j)*(2+0j)
    >>> e.value == sum(t.weight * t.value for t in e.terms)
    True
    """
    n = np.asarray(w).ndim - 2
    unbatched = np.asarray(x).ndim == n + 1
    x, w = _batched(x, w, n)
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode, ndim=n)
    check_operands(spec, x.shape, w.shape, None if bias is None else np.shape(bias))
    out = core.apply(spec, x, w, bias)
    index = _check_index("index", ((0,) if unbatched else ()) + tuple(index), out.shape)
    batch, c_out, o = index[0], index[1], index[2:]
    pads = spec.pads(x.shape[2:])
    tables = tap_tables(spec, x.shape[2:], out.shape[2:], pads)
    per_group = w.shape[1]
    first = (c_out // (w.shape[0] // spec.groups)) * per_group
    terms = []
    for c_local in range(per_group):
        for tap in np.ndindex(*spec.kernel_size):
            source = tuple(int(t[oo, k]) for t, oo, k in zip(tables, o, tap))
            position = tuple(oo * s + k * d - lo for oo, k, s, d, (lo, _) in
                             zip(o, tap, spec.stride, spec.dilation, pads))
            read = None if min(source) < 0 else source
            value = _scalar(x.dtype.type(0) if read is None else x[(batch, first + c_local) + read])
            terms.append(Term(first + c_local, tap, position, read, value,
                              _scalar(w[(c_out, c_local) + tap])))
    b = 0.0 if bias is None else _scalar(np.asarray(bias)[c_out])
    return Explanation(spec.op, index[1:] if unbatched else index, _scalar(out[index]), tuple(terms), b,
                       spec, pads, (first, first + per_group - 1))


@dataclass(frozen=True)
class Reach:
    """The outputs one input element reaches: ``(output index, tap)`` pairs.

    Attributes
    ----------
    op : str
        The operation, e.g. ``'conv2d'``.
    index : tuple of int
        The input element (as given: unbatched inputs have no batch index).
    hits : tuple of (tuple of int, tuple of int)
        ``(output index, weight tap)`` pairs, sorted.
    """

    op: str
    index: tuple[int, ...]
    hits: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]

    @property
    def outputs(self) -> tuple[tuple[int, ...], ...]:
        """The outputs reached, each once, in order."""
        return tuple(dict.fromkeys(o for o, _ in self.hits))

    def text(self) -> str:
        """``conv2d input[0, 0, 2, 2] reaches 4 outputs through 4 taps:`` and one line per tap."""
        lines = [f"{self.op} input{list(self.index)} reaches {len(self.outputs)} outputs "
                 f"through {len(self.hits)} taps:"]
        lines += [f"  output{list(o)} via weight tap {_at(t)}" for o, t in self.hits]
        return "\n".join(lines)

    __str__ = text


def _reach_per_dim(tables: Sequence[np.ndarray], index: Sequence[int]) -> list[list[tuple[int, int]]]:
    """Per dim, the (output, tap) pairs whose source index is the given one."""
    return [list(zip(*np.nonzero(t == i))) for t, i in zip(tables, index)]


def explain_input(x_shape: Sequence[int] | np.ndarray, w_shape: Sequence[int] | np.ndarray,
                  index: Sequence[int], stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                  groups: int = 1, padding_mode: str = "zeros") -> Reach:
    """The reverse question: which outputs of ``conv(x, w)`` the element ``x[index]`` reaches.

    Reflect/replicate/circular padding can make one input reach an output twice (through a
    tap on the input and one on its copy in the padding).

    Parameters
    ----------
    x_shape, w_shape : sequence of int or numpy.ndarray
        The input's and the weight's shapes (or the arrays themselves: only shapes are read).
    index : sequence of int
        The input element: ``(n, c, *i)``, or ``(c, *i)`` for an unbatched input.
    stride, padding, dilation, groups, padding_mode
        As :func:`npconv.functional.conv2d`.

    Returns
    -------
    Reach
        Every ``(output index, weight tap)`` pair through which the element is read.

    Raises
    ------
    ValueError
        A setting the convolution refuses, or ``index`` outside the input's shape.

    Examples
    --------
    >>> explain_input((1, 1, 6, 6), (1, 1, 3, 3), (0, 0, 0, 0), stride=2).outputs
    ((0, 0, 0, 0),)
    >>> len(explain_input((1, 1, 6, 6), (1, 1, 3, 3), (0, 0, 2, 2), stride=2).outputs)
    4
    """
    x_shape, w_shape = _shape_of(x_shape), _shape_of(w_shape)
    n = len(w_shape) - 2
    unbatched = len(x_shape) == n + 1
    full = ((1,) if unbatched else ()) + x_shape
    spec = ConvSpec.build(w_shape[2:], stride, padding, dilation, groups, padding_mode, ndim=n)
    check_operands(spec, full, w_shape)
    index = _check_index("index", ((0,) if unbatched else ()) + tuple(index), full)
    out_spatial = spec.out_spatial(full[2:])
    tables = tap_tables(spec, full[2:], out_spatial, spec.pads(full[2:]))
    group = index[1] // w_shape[1]
    per_group_out = w_shape[0] // spec.groups
    lead = () if unbatched else (index[0],)
    hits = []
    for combo in itertools.product(*_reach_per_dim(tables, index[2:])):
        o = tuple(int(p[0]) for p in combo)
        tap = tuple(int(p[1]) for p in combo)
        for c_out in range(group * per_group_out, (group + 1) * per_group_out):
            hits.append((lead + (c_out,) + o, tap))
    return Reach(spec.op, index[1:] if unbatched else index, tuple(sorted(hits)))


def _shape_of(value: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in (value.shape if hasattr(value, "shape") else value))


def explain_transposed_output(x: npt.ArrayLike, w: npt.ArrayLike, index: Sequence[int],
                              stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                              groups: int = 1, dilation: IntOrTuple = 1,
                              bias: npt.ArrayLike | None = None) -> Explanation:
    """The inputs and weights that make ``conv_transpose(x, w)[index]``.

    Transposed convolution scatters: input ``i`` adds ``w[k] * x[i]`` at output
    ``q = i * stride + k * dilation - pad_lo``.  The pairs ``(i, k)`` landing on ``q`` are the
    ones the forward convolution of the same spec reads from position ``q`` (its adjoint), so
    they come from the same table.  Complex operands give complex terms, as in
    :func:`explain_output`.

    Parameters
    ----------
    x : array_like
        The input, ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
    w : array_like
        The weight, ``(C_in, C_out / groups, *kernel)`` (PyTorch's transposed layout).
    index : sequence of int
        The output element: ``(n, c_out, *q)``, or ``(c_out, *q)`` for an unbatched input.
    stride, padding, output_padding, groups, dilation
        As :func:`npconv.functional.conv_transpose2d` (same order).
    bias : array_like, optional
        ``(C_out,)``; its entry is added after the sum.

    Returns
    -------
    Explanation
        The terms (input element, weight, value), the bias and the engine's value.

    Raises
    ------
    ValueError
        A setting the transposed convolution refuses, or ``index`` outside the output's shape.

    Examples
    --------
    >>> x = np.array([[[1., 2., 3.]]])
    >>> print(explain_transposed_output(x, np.ones((1, 1, 3)), (0, 0, 2), stride=2).sum_line())
    3 = 1+2
    """
    n = np.asarray(w).ndim - 2
    unbatched = np.asarray(x).ndim == n + 1
    x, w = _batched(x, w, n)
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, "zeros", True,
                          output_padding, ndim=n)
    check_operands(spec, x.shape, w.shape, None if bias is None else np.shape(bias))
    out = core.apply(spec, x, w, bias)
    index = _check_index("index", ((0,) if unbatched else ()) + tuple(index), out.shape)
    batch, c_out, q = index[0], index[1], index[2:]
    pads = spec.pads(x.shape[2:])
    tables = tap_tables(spec, out.shape[2:], x.shape[2:], pads)  # the forward conv's, zero padding
    per_group_out = w.shape[1]
    per_group_in = w.shape[0] // spec.groups
    group, c_local = divmod(c_out, per_group_out)
    pairs = sorted(itertools.product(*_reach_per_dim(tables, q)), key=lambda c: tuple(p[0] for p in c))
    terms = []
    for ci in range(group * per_group_in, (group + 1) * per_group_in):
        for combo in pairs:
            i = tuple(int(p[0]) for p in combo)
            tap = tuple(int(p[1]) for p in combo)
            terms.append(Term(ci, tap, i, i, _scalar(x[(batch, ci) + i]), _scalar(w[(ci, c_local) + tap])))
    b = 0.0 if bias is None else _scalar(np.asarray(bias)[c_out])
    return Explanation(spec.op, index[1:] if unbatched else index, _scalar(out[index]), tuple(terms), b,
                       spec, pads, (group * per_group_in, (group + 1) * per_group_in - 1))
