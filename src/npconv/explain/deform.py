"""One output of a deformable convolution, tap by tap: where each tap samples, the four pixels
it blends, and the sum.

Deformable convolution (Dai et al. 2017, "Deformable Convolutional Networks",
https://arxiv.org/abs/1703.06211; v2 adds a mask: Zhu et al. 2018, https://arxiv.org/abs/1811.11168)
moves every kernel tap of every output by its own fractional offset and reads the input there by
bilinear interpolation.  The rules are those of :func:`npconv.ops.deform_conv2d` (torchvision's):

- tap ``(i, j)`` of output ``(oy, ox)`` sits at the regular position
  ``(oy*stride_h - pad_top + i*dilation_h, ox*stride_w - pad_left + j*dilation_w)`` and samples at
  that position plus its offset ``(dy, dx)``, read from offset channel ``g*2*kh*kw + 2*(i*kw + j)``
  (``dy``) and the next one (``dx``), ``g`` the input channel's offset group;
- a sample point ``(y, x)`` counts only if ``-1 < y < H`` and ``-1 < x < W``; its corners are
  ``(floor(y), floor(x))`` and its three neighbours below and to the right, weighted
  ``(1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx`` with ``ly = y - floor(y)``, ``lx = x - floor(x)``;
  a corner outside the image adds 0;
- the sample is scaled by the mask (v2; 1 without one), multiplied by the weight, and the products
  are added up with the bias last.

Everything here is plain Python on one output at a time, written to be read; the engine's value
of the same output is kept beside the sum so that the two can be compared.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..ops import DeformSpec, deform_conv
from ..ops.deform import read_operands
from .footprint import _at, _check_index, _num
from .shapes import format_table, html_table

__all__ = ["BilinearCorner", "DeformTerm", "DeformExplanation", "explain_deform_output",
           "bilinear_corners", "deformable_example", "DEFORMABLE_EXAMPLE_SETTING"]


@dataclass(frozen=True)
class BilinearCorner:
    """One of the four pixels a sample point blends.

    Attributes
    ----------
    position : tuple of int
        ``(row, column)`` of the pixel (may lie outside the image).
    weight : float
        Its bilinear weight; the four weights of a point add up to 1.
    value : float
        The input there, or 0.0 when ``position`` is outside the image.
    inside : bool
        Whether ``position`` is a pixel of the image.
    """

    position: tuple[int, int]
    weight: float
    value: float
    inside: bool

    @property
    def contribution(self) -> float:
        """``weight * value`` (0 for a corner outside the image)."""
        return self.weight * self.value


@dataclass(frozen=True)
class DeformTerm:
    """One tap of one input channel: where it samples and what it adds.

    Attributes
    ----------
    channel : int
        The input channel read.
    offset_group : int
        The offset group of that channel (whose offsets and mask it uses).
    tap : tuple of int
        The kernel tap ``(i, j)``.
    regular : tuple of int
        Where the tap falls in a plain convolution ``(row, column)``, in input coordinates.
    offset : tuple of float
        ``(dy, dx)``, read from the offset array.
    point : tuple of float
        The sample point ``regular + offset``.
    inside : bool
        Whether the point counts: ``-1 < y < H`` and ``-1 < x < W``.
    corners : tuple of BilinearCorner
        The four pixels blended, in the order top-left, top-right, bottom-left, bottom-right;
        empty when the point is outside (it adds 0 without reading any pixel).
    sample : float
        The bilinear interpolation: the sum of the corners' ``weight * value`` (0 for a point
        outside; NaN for a non-finite one, as the engine gives).
    mask : float
        The mask of this tap (1.0 without a mask).
    weight : float
        The kernel weight of this tap.
    """

    channel: int
    offset_group: int
    tap: tuple[int, int]
    regular: tuple[int, int]
    offset: tuple[float, float]
    point: tuple[float, float]
    inside: bool
    corners: tuple[BilinearCorner, ...]
    sample: float
    mask: float
    weight: float

    @property
    def product(self) -> float:
        """``weight * (mask * sample)``: what this tap adds to the output."""
        return self.weight * (self.mask * self.sample)


@dataclass(frozen=True)
class DeformExplanation:
    """One output of a deformable convolution as the sum of its taps, beside the engine's value.

    ``str(e)`` is :meth:`text`; in Jupyter it shows as the table.  :meth:`records` gives the
    taps as plain dicts.

    Attributes
    ----------
    index : tuple of int
        The output element ``(n, c_out, oy, ox)``.
    value : float
        The engine's value of that element (:func:`npconv.ops.deform_conv2d`'s).
    terms : tuple of DeformTerm
        Every tap of every input channel of the output's group, channel by channel, taps row-major.
    bias : float
        The bias added last (0.0 when none).
    spec : DeformSpec
        The validated geometry.
    tolerance : float
        How far :attr:`total` may be from :attr:`value` by rounding alone: the engine adds the same
        products in another order, in its own dtype.
    """

    index: tuple[int, int, int, int]
    value: float
    terms: tuple[DeformTerm, ...]
    bias: float
    spec: DeformSpec
    tolerance: float

    @property
    def total(self) -> float:
        """The sum of the taps' products, plus the bias."""
        return math.fsum(t.product for t in self.terms) + self.bias

    @property
    def agrees(self) -> bool:
        """Whether :attr:`total` equals the engine's :attr:`value` up to :attr:`tolerance`."""
        if math.isnan(self.total) or math.isnan(self.value):
            return math.isnan(self.total) and math.isnan(self.value)
        return abs(self.total - self.value) <= self.tolerance

    def records(self) -> list[dict[str, Any]]:
        """The taps as dicts (each term's fields, its corners as dicts, and ``product``)."""
        return [{**dataclasses.asdict(t), "product": t.product} for t in self.terms]

    def heading(self) -> str:
        """The output index, the parameters and which input channels it reads."""
        s = self.spec
        first, last = self.terms[0].channel, self.terms[-1].channel
        mask = "mask (v2)" if s.masked else "no mask (v1: every mask 1)"
        return (f"deform_conv2d output{list(self.index)}: stride {s.stride}, padding {s.pads}, "
                f"dilation {s.dilation}, groups {s.groups}, offset groups {s.offset_groups}, {mask}; "
                f"input {s.in_size[0]}x{s.in_size[1]}; reads input channels {first}..{last}, "
                f"{s.taps} taps each")

    def sum_line(self) -> str:
        """``55.8 = 8.75 + 0.5*12 + ... + bias 0.5``: weight * mask * sample for each tap that counts
        (points outside add 0 and are left out; so are the weights when all are 1, and the mask
        without one)."""
        unit = all(t.weight == 1 for t in self.terms)
        factors = [([] if unit else [t.weight]) + ([t.mask] if self.spec.masked else []) + [t.sample]
                   for t in self.terms if t.inside]
        body = " + ".join("*".join(_factor(v) for v in f) for f in factors) or "0"
        if self.bias:
            body += f" + bias {_num(self.bias)}"
        return f"{_num(self.total)} = {body}"

    def rows(self) -> list[list[str]]:
        """The table's cells: a header, then one row per tap."""
        head = ["channel", "tap", "regular", "offset (dy,dx)", "point (y,x)", "inside", "sample", "mask",
                "weight", "product"]
        rows = [[str(t.channel), _at(t.tap), _at(t.regular), _pair(t.offset), _pair(t.point),
                 "yes" if t.inside else "no", _num(t.sample), _num(t.mask), _num(t.weight), _num(t.product)]
                for t in self.terms]
        for column in range(6, 10):  # the numbers, right-aligned (format_table aligns integers only)
            width = max(len(row[column]) for row in [head, *rows])
            for row in rows:
                row[column] = row[column].rjust(width)
        return [head] + rows

    def corner_lines(self) -> list[str]:
        """Per tap, the bilinear blend: ``(row,col) weight*value`` for the four corners."""
        h, w = self.spec.in_size
        lines = ["corners, (row,col) bilinear weight*input value (a corner outside the image adds 0):"]
        for t in self.terms:
            where = f"  channel {t.channel} tap {_at(t.tap)} at {_pair(t.point)}: "
            if not t.inside:
                lines.append(where + (f"outside -1 < y < {h}, -1 < x < {w}: adds 0" if t.sample == 0
                                      else "not a finite point: the sample is NaN"))
                continue
            blend = " + ".join(f"{_at(c.position)} {_num(c.weight)}*"
                               + (_factor(c.value) if c.inside else "0 (outside)") for c in t.corners)
            lines.append(where + f"{blend} = {_num(t.sample)}")
        return lines

    def check_line(self) -> str:
        """The sum beside the engine's value, with a check mark when they agree."""
        mark = "\u2713" if self.agrees else "\u2717"
        bias = f" + bias {_num(self.bias)}" if self.bias else ""
        return (f"{mark} sum of the products{bias} = {_num(self.total)}; "
                f"npconv.ops.deform_conv2d gives {_num(self.value)}")

    def text(self) -> str:
        """The heading, the sum line, the table of taps, each tap's corners and the check."""
        return "\n".join([self.heading(), self.sum_line(), "", format_table(self.rows()), "",
                          *self.corner_lines(), "", self.check_line()])

    __str__ = text

    def _repr_html_(self) -> str:
        import html
        return (f"<p>{html.escape(self.heading())}</p><p>{html.escape(self.sum_line())}</p>"
                f"{html_table(self.rows())}<pre>{html.escape(chr(10).join(self.corner_lines()))}</pre>"
                f"<p>{html.escape(self.check_line())}</p>")


def _factor(v: float) -> str:
    """A factor of a product: negative numbers in brackets, as in explain_output's sum line."""
    return f"({_num(v)})" if v < 0 else _num(v)


def _pair(values: Sequence[float]) -> str:
    return "(" + ",".join(_num(v) for v in values) + ")"


# ---- the arithmetic of one tap -----------------------------------------------------------
def bilinear_corners(plane: np.ndarray, point: tuple[float, float]) -> tuple[BilinearCorner, ...]:
    """The four pixels around ``point`` with their bilinear weights and values.

    Parameters
    ----------
    plane : numpy.ndarray
        One input channel, ``(H, W)``.
    point : tuple of float
        ``(y, x)``, finite.

    Returns
    -------
    tuple of BilinearCorner
        Top-left ``(floor(y), floor(x))``, top-right, bottom-left, bottom-right; a corner outside
        the image has value 0.0.

    Examples
    --------
    >>> plane = np.arange(25.).reshape(5, 5)
    >>> [(c.position, c.weight, c.value) for c in bilinear_corners(plane, (1.5, 1.25))]
    [((1, 1), 0.375, 6.0), ((1, 2), 0.125, 7.0), ((2, 1), 0.375, 11.0), ((2, 2), 0.125, 12.0)]
    """
    y, x = point
    top, left = math.floor(y), math.floor(x)
    ly, lx = y - top, x - left  # how far past the top-left corner, each in [0, 1)
    weights = {(top, left): (1 - ly) * (1 - lx), (top, left + 1): (1 - ly) * lx,
               (top + 1, left): ly * (1 - lx), (top + 1, left + 1): ly * lx}
    height, width = plane.shape
    corners = []
    for (row, col), weight in weights.items():
        inside = 0 <= row < height and 0 <= col < width
        corners.append(BilinearCorner((row, col), weight, float(plane[row, col]) if inside else 0.0, inside))
    return tuple(corners)


def _tap_term(x: np.ndarray, offset: np.ndarray, weight: np.ndarray, mask: np.ndarray | None,
              spec: DeformSpec, index: tuple[int, int, int, int], channel: int,
              tap: tuple[int, int]) -> DeformTerm:
    """Where tap ``tap`` of input ``channel`` samples for output ``index``, and what it adds."""
    n, c_out, oy, ox = index
    (i, j), kw = tap, spec.kernel_size[1]
    t = i * kw + j  # the tap's number, row-major
    group = channel // spec.channels_per_offset_group
    regular = (oy * spec.stride[0] - spec.pads[0][0] + i * spec.dilation[0],
               ox * spec.stride[1] - spec.pads[1][0] + j * spec.dilation[1])
    dy = float(offset[n, group * 2 * spec.taps + 2 * t, oy, ox])
    dx = float(offset[n, group * 2 * spec.taps + 2 * t + 1, oy, ox])
    point = (regular[0] + dy, regular[1] + dx)
    height, width = spec.in_size
    inside = -1 < point[0] < height and -1 < point[1] < width  # False for NaN
    corners = bilinear_corners(x[n, channel], point) if inside else ()
    sample = sum(c.contribution for c in corners)  # torchvision's order: top-left first
    if math.isnan(point[0]) or math.isnan(point[1]):
        sample = math.nan  # the engine's rule: a NaN offset is never read as "outside" (an infinite one is)
    m = 1.0 if mask is None else float(mask[n, group * spec.taps + t, oy, ox])
    per_group = weight.shape[1]
    w = float(weight[c_out, channel % per_group, i, j])
    return DeformTerm(channel, group, (i, j), regular, (dy, dx), point, inside, corners, float(sample), m, w)


def _group_channels(spec: DeformSpec, per_group: int, c_out: int) -> range:
    """The input channels output channel ``c_out`` reads: its weight group's."""
    group = c_out // (spec.out_channels // spec.groups)
    return range(group * per_group, (group + 1) * per_group)


def explain_deform_output(input: npt.ArrayLike, offset: npt.ArrayLike, weight: npt.ArrayLike,
                          bias: npt.ArrayLike | None = None, stride: int | Sequence[int] = 1,
                          padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                          mask: npt.ArrayLike | None = None, *, index: Sequence[int]) -> DeformExplanation:
    """Each tap behind ``npconv.ops.deform_conv2d(...)[index]``: its sample point, the four pixels
    it blends with their weights, the mask, the weight and the product.

    The arguments are :func:`npconv.ops.deform_conv2d`'s, in its order, with the output element
    to explain as the keyword ``index``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, H, W)``.
    offset : array_like
        ``(N, 2*G*kh*kw, oh, ow)``: ``(dy, dx)`` per offset group and tap.
    weight : array_like
        ``(C_out, C_in / groups, kh, kw)``; groups = ``C_in // weight.shape[1]``.
    bias : array_like, optional
        ``(C_out,)``; its entry is added last.
    stride, padding, dilation : int or pair
        As :func:`npconv.ops.deform_conv2d`.
    mask : array_like, optional
        ``(N, G*kh*kw, oh, ow)``; None: deformable conv v1 (every mask 1).
    index : sequence of int
        The output element ``(n, c_out, oy, ox)``.

    Returns
    -------
    DeformExplanation
        The taps (as data: ``.terms`` or ``.records()``), their ``.total`` with the bias, and the
        engine's ``.value`` of the same element.

    Raises
    ------
    ValueError
        A setting :func:`npconv.ops.deform_conv2d` refuses (its message), or ``index`` outside the
        output's shape.

    Examples
    --------
    >>> x = np.arange(25.).reshape(1, 1, 5, 5)          # x[r, c] = 5r + c
    >>> offset = np.zeros((1, 2, 5, 5)); offset[0, :, 1, 1] = (0.5, 0.25)
    >>> e = explain_deform_output(x, offset, np.full((1, 1, 1, 1), 2.), index=(0, 0, 1, 1))
    >>> print(e.sum_line())
    17.5 = 2*8.75
    >>> [c.weight for c in e.terms[0].corners], e.value
    ([0.375, 0.125, 0.375, 0.125], 17.5)
    """
    operands = read_operands("explain_deform_output", input, offset, weight, bias, mask)
    x, off, w, b, m = operands
    spec = operands.spec(stride, padding, dilation, op="explain_deform_output")
    out = deform_conv(x, off, w, b, m, spec)
    n, c_out, oy, ox = _check_index("index", index, out.shape)
    where = (n, c_out, oy, ox)
    terms = tuple(_tap_term(x, off, w, m, spec, where, channel, tap)
                  for channel in _group_channels(spec, w.shape[1], c_out)
                  for tap in np.ndindex(*spec.kernel_size))
    bias_value = 0.0 if b is None else float(b[c_out])
    return DeformExplanation(where, float(out[where]), terms, bias_value, spec,
                             _tolerance(terms, bias_value, out.dtype))


def _tolerance(terms: Sequence[DeformTerm], bias: float, dtype: np.dtype) -> float:
    """The rounding the engine may differ by: a few units of its dtype's precision per product,
    on the size of the numbers added (the sum of their magnitudes)."""
    size = math.fsum(abs(t.product) for t in terms) + abs(bias)
    return 8 * (len(terms) + 4) * float(np.finfo(dtype).eps) * size


# ---- the example of `npconv explain --deformable` ----------------------------------------
EXAMPLE_OFFSETS = [(0.5, 0.25), (0, 0), (-0.5, 0.5),  # (dy, dx) of taps (0,0), (0,1), ... row-major
                   (0, 0), (0, 0), (0, -0.5),
                   (0.25, -1.75), (1, 0), (2, 1.5)]
EXAMPLE_MASK = [1, 1, 1, 1, 0.5, 1, 1, 0, 1]


def _offset_grid() -> str:
    cells = [_pair(pair) for pair in EXAMPLE_OFFSETS]
    width = max(len(c) for c in cells)
    return "\n".join("  " + "  ".join(c.ljust(width) for c in cells[r:r + 3]).rstrip() for r in (0, 3, 6))


DEFORMABLE_EXAMPLE_SETTING = (
    "A deformable 3x3 conv (v2: with a mask) on a 5x5 input whose cells are numbered 0..24 row by row "
    "(x[r, c] = 5r + c), all-ones kernel, bias 0.5, no padding. Every output uses the same offsets, "
    f"(dy, dx) per tap:\n{_offset_grid()}\n"
    "and the same mask: 1 everywhere but 0.5 on the middle tap and 0 on the bottom-middle one.\n"
    "On x = 5r + c, a sample whose four corners are all inside is 5y + x exactly (bilinear "
    "interpolation of a plane); output[0, 0, 1, 1] is explained below.")


def deformable_example() -> DeformExplanation:
    """The example ``npconv explain --deformable`` prints (:data:`DEFORMABLE_EXAMPLE_SETTING`).

    Taps sample between pixels, one point lies outside the image (tap (2,2): y = 5 is not < 5)
    and one keeps a corner outside it (tap (2,0): x = -0.75 blends column -1, which adds 0).

    Returns
    -------
    DeformExplanation
        Output ``[0, 0, 1, 1]`` of the example.

    Examples
    --------
    >>> e = deformable_example()
    >>> e.agrees, [t.inside for t in e.terms].count(False)
    (True, 1)
    """
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    offset = np.zeros((1, 18, 3, 3))
    offset[0, :, :, :] = np.ravel(EXAMPLE_OFFSETS)[:, None, None]  # channel 2t: dy, 2t + 1: dx
    mask = np.zeros((1, 9, 3, 3))
    mask[0, :, :, :] = np.asarray(EXAMPLE_MASK, float)[:, None, None]
    return explain_deform_output(x, offset, np.ones((1, 1, 3, 3)), np.array([0.5]), mask=mask,
                                 index=(0, 0, 1, 1))
