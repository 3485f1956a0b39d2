"""Pictures of a convolution in the visual language of the conv-arithmetic animations.

Blue input grid numbered ``0 .. n-1`` in row-major order, its padding ring drawn dashed
(zero padding blank, reflect / replicate / circular padding labelled with the input number
it copies), the kernel footprint shaded dark (taps only, dilation holes left alone), the
window outlined with the previous stride step dashed, and the cyan output grid filling in.
A transposed convolution is drawn as what it computes: the input with ``stride - 1`` zeros
between elements and ``dilation * (k - 1) - pad`` zeros around it (``output_padding`` more
after), a stride-1 convolution sliding over that (its drawn tap ``j`` is weight tap ``k-1-j``:
the kernel of that equivalent convolution is the transposed one's weight flipped).

Nothing here re-derives index arithmetic: shapes and pads come from
:class:`~npconv.spec.ConvSpec`, every "which input does this tap read" from
:func:`npconv.windows.tap_sources` (the table the engine's window gather copies from).

Frames and sizes (``c`` = cell, ``Ci``/``Co`` = channels, ``P`` = drawn input frame,
``O`` = output, 1-D sizes have ``Ph = Oh = 1``)::

    conv frame:        P = in + pad_lo + pad_hi
    transposed frame:  P = (in - 1) * stride + 1 + 2 * (dilation * (k - 1)) - pad_lo - pad_hi
                           + output_padding            ( = out + ek - 1 )
    frames:            n_frames = Co * prod(O); step t draws output channel t // prod(O) at
                       the row-major position t % prod(O)
    header:            lines = 2 + transposed + (1 if every dim has the same shape formula else ndim)
                       header = c // 2 + lines * (2 * c // 3)
    2-D image:         width  = c * max(Pw + Ow + 3, 16)
                       height = header + c * (max(Ci * (Ph + 1), Co * (Oh + 1)) + 1)
    1-D image:         width  = c * max(max(Pw, Ow) + 2, 16)
                       height = header + c * (2 * Ci + 2 * Co + 1)

Pillow is needed only to draw (``pip install 'npconv[explain]'``); :class:`Geometry` and
:func:`receptive_field` work without it.
"""

from __future__ import annotations

import colorsys
import functools
import math
import pathlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..spec import ConvSpec, is_int
from ..windows import tap_sources, tap_tables
from .shapes import grow_receptive_field

INSTALL_HINT = "pip install 'npconv[explain]'"
MIN_CELL = 12
MIN_WIDTH_CELLS = 16
RF_MIN_WIDTH_CELLS = 20
WHITE, INK, GRID, FAINT, WINDOW = (255, 255, 255), (34, 34, 34), (90, 90, 90), (150, 150, 150), (20, 20, 20)


def _pil():
    """Pillow's Image, ImageDraw and ImageFont, or an ImportError that says what to install."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as error:  # pragma: no cover - Pillow is in the test extra
        raise ImportError(f"npconv.explain.animate draws with Pillow: {INSTALL_HINT}") from error
    return Image, ImageDraw, ImageFont


# ---- colours -------------------------------------------------------------------------
class Palette(NamedTuple):
    """One group's colours: its input channels and its output channels share the hue."""

    input: tuple[int, int, int]    # input cells
    copy: tuple[int, int, int]     # padding cells holding a copy (reflect/replicate/circular)
    tap: tuple[int, int, int]      # kernel taps (the shaded footprint)
    output: tuple[int, int, int]   # output cells computed so far
    current: tuple[int, int, int]  # the output cell being computed


def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    return tuple(round(255 * v) for v in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def palette(group: int, groups: int = 1) -> Palette:
    """groups=1: conv-arithmetic blue input, cyan output.  groups>1: group ``g`` turns the hue
    by ``g / groups`` and its input and output channels share that one hue."""
    hue = 0.58 + group / groups
    out_hue = hue - 0.08 if groups == 1 else hue
    return Palette(_hsv(hue, 0.45, 0.92), _hsv(hue, 0.16, 0.98), _hsv(hue, 0.8, 0.42),
                   _hsv(out_hue, 0.55, 0.88), _hsv(out_hue, 0.9, 0.55))


# ---- the geometry: every table a frame needs, built once -----------------------------
class Axis(NamedTuple):
    """One spatial dim of the picture.

    ``sources[p]``: input index the frame position ``p`` holds (-1: a zero);
    ``inputs[p]``: whether ``p`` is an input cell (not padding, not an inserted zero);
    ``taps[o][k]``: frame position of tap ``k`` of output ``o``;
    ``reads[o][k]``: input index that tap reads (-1: a zero), from ``tap_sources``.
    """

    sources: tuple[int, ...]
    inputs: tuple[bool, ...]
    taps: tuple[tuple[int, ...], ...]
    reads: tuple[tuple[int, ...], ...]


LONE_AXIS = Axis((0,), (True,), ((0,),), ((0,),))  # the row axis of a 1-D picture


def _nested(table) -> tuple:
    return tuple(_nested(row) for row in table) if np.ndim(table) > 1 else tuple(int(v) for v in table)


def conv_axis(spec: ConvSpec, dim: int, size: int, n_out: int, lo: int, hi: int) -> Axis:
    """Frame = padded input; output ``o`` tap ``k`` sits at padded position ``o*s + k*d``
    (input position ``o*s + k*d - lo``) and reads ``tap_sources``' entry."""
    s, d, k = spec.stride[dim], spec.dilation[dim], spec.kernel_size[dim]
    frame = size + lo + hi
    sources = tap_sources(size, frame, lo, 1, 1, 1, spec.padding_mode)[:, 0]
    inside = tap_sources(size, frame, lo, 1, 1, 1, "zeros")[:, 0] >= 0
    reads = tap_sources(size, n_out, lo, s, d, k, spec.padding_mode)
    taps = [[o * s + t * d for t in range(k)] for o in range(n_out)]  # input position + lo
    return Axis(_nested(sources), tuple(bool(v) for v in inside), _nested(taps), _nested(reads))


def transposed_border(spec: ConvSpec, dim: int, lo: int, hi: int) -> tuple[int, int]:
    """Zeros before and after the zero-inserted input: ``d*(k-1) - lo`` and
    ``d*(k-1) - hi + output_padding`` (negative: that many stuffed cells are cropped)."""
    reach = spec.effective_kernel[dim] - 1
    return reach - lo, reach - hi + spec.output_padding[dim]


def _unstuff(stuffed, stride: int) -> np.ndarray:
    """Stuffed-grid index -> input index (every ``stride``-th cell), -1 for inserted zeros."""
    stuffed = np.asarray(stuffed)
    return np.where((stuffed >= 0) & (stuffed % stride == 0), stuffed // stride, -1)


def transposed_axis(spec: ConvSpec, dim: int, size: int, n_out: int, lo: int, hi: int) -> Axis:
    """Frame = zero-inserted input with its zero border; a stride-1 window slides over it,
    output ``q`` tap ``k`` at frame position ``q + k*d`` (forward conv over the stuffed grid)."""
    s, d, k = spec.stride[dim], spec.dilation[dim], spec.kernel_size[dim]
    stuffed = (size - 1) * s + 1
    before, after = transposed_border(spec, dim, lo, hi)
    frame = stuffed + before + after
    sources = _unstuff(tap_sources(stuffed, frame, before, 1, 1, 1, "zeros")[:, 0], s)
    reads = _unstuff(tap_sources(stuffed, n_out, before, 1, d, k, "zeros"), s)
    taps = [[q + t * d for t in range(k)] for q in range(n_out)]
    return Axis(_nested(sources), tuple(bool(v >= 0) for v in sources), _nested(taps), _nested(reads))


@dataclass(frozen=True)
class Geometry:
    """Everything the frames draw, built once by :meth:`build`; frames are pure functions of it.

    Shape rules (``ek = dilation * (k - 1) + 1``)::

        conv:        out = floor((in + lo + hi - ek) / stride) + 1
        transposed:  out = (in - 1) * stride - lo - hi + ek + output_padding

    >>> g = Geometry.build((5, 5), 3, stride=2, padding=1)
    >>> g.n_frames, g.frame_shape, g.title[-1]
    (9, (7, 7), 'out = floor((5 + 1 + 1 - 3) / 2) + 1 = 3')
    >>> g.axes[1].taps[2]  # output column 2 puts its taps on padded columns 4, 5, 6
    (4, 5, 6)
    """

    spec: ConvSpec
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    in_channels: int
    out_channels: int
    cell: int
    axes: tuple[Axis, Axis]  # (rows, cols); a 1-D picture's row axis is LONE_AXIS
    title: tuple[str, ...]

    @classmethod
    def build(cls, input_size=(5, 5), kernel_size=3, stride=1, padding=0, dilation=1, groups=1,
              padding_mode="zeros", transposed=False, output_padding=0, in_channels=1,
              out_channels=1, *, cell=28) -> "Geometry":
        """Validate every argument (ValueError naming it) and build the per-dim tables."""
        in_spatial = spatial_size(input_size)
        n = len(in_spatial)
        spec = ConvSpec.build(kernel_size, stride, padding, dilation, groups, padding_mode,
                              transposed, output_padding, ndim=n)
        _check_channels(in_channels, out_channels, spec.groups)
        _check_positive_int("cell", cell, MIN_CELL)
        out_spatial = spec.out_spatial(in_spatial)
        pads = spec.pads(in_spatial)
        make = transposed_axis if spec.transposed else conv_axis
        axes = tuple(make(spec, d, in_spatial[d], out_spatial[d], *pads[d]) for d in range(n))
        axes = (LONE_AXIS,) * (2 - n) + axes
        return cls(spec, in_spatial, out_spatial, pads, in_channels, out_channels, cell, axes,
                   title_lines(spec, in_spatial, out_spatial, pads, (in_channels, out_channels)))

    # ---- counts and shapes ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.in_spatial)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, cols) of the drawn input frame (padded / zero-inserted input)."""
        return len(self.axes[0].sources), len(self.axes[1].sources)

    @property
    def out_shape(self) -> tuple[int, int]:
        """(rows, cols) of the drawn output grid (1-D: one row)."""
        return len(self.axes[0].taps), len(self.axes[1].taps)

    @property
    def n_positions(self) -> int:
        return math.prod(self.out_spatial)

    @property
    def n_frames(self) -> int:
        """``out_channels * prod(out_spatial)``: every output channel, every position."""
        return self.out_channels * self.n_positions

    def target(self, step: int) -> tuple[int, tuple[int, int]]:
        """The output channel and (row, col) that frame ``step`` computes."""
        channel, flat = divmod(step, self.n_positions)
        return channel, divmod(flat, self.out_shape[1])

    def footprint(self, step: int) -> tuple[tuple[int, int], ...]:
        """The frame cells (row, col) under the kernel's taps at ``step``."""
        _, (row, col) = self.target(step)
        rows, cols = self.axes
        return tuple((r, c) for r in rows.taps[row] for c in cols.taps[col])

    def reads(self, step: int) -> tuple[tuple[int, int] | None, ...]:
        """Per tap (same order as :meth:`footprint`), the input (row, col) read; None: a zero."""
        _, (row, col) = self.target(step)
        rows, cols = self.axes
        return tuple((r, c) if r >= 0 and c >= 0 else None
                     for r in rows.reads[row] for c in cols.reads[col])

    # ---- groups ------------------------------------------------------------------------
    def input_group(self, channel: int) -> int:
        return channel // (self.in_channels // self.spec.groups)

    def output_group(self, channel: int) -> int:
        return channel // (self.out_channels // self.spec.groups)

    # ---- layout (see the module docstring) ---------------------------------------------
    @property
    def header_height(self) -> int:
        return self.cell // 2 + (len(self.title) + 1) * (2 * self.cell // 3)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        (ph, pw), (oh, ow), c = self.frame_shape, self.out_shape, self.cell
        if self.ndim == 1:
            return (c * max(max(pw, ow) + 2, MIN_WIDTH_CELLS),
                    self.header_height + c * (2 * self.in_channels + 2 * self.out_channels + 1))
        body = max(self.in_channels * (ph + 1), self.out_channels * (oh + 1))
        return c * max(pw + ow + 3, MIN_WIDTH_CELLS), self.header_height + c * (body + 1)

    def input_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of input channel ``channel``'s grid (below its one-cell label row)."""
        c = self.cell
        return c, self.header_height + channel * (self.frame_shape[0] + 1) * c + c

    def output_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of output channel ``channel``'s grid (below its one-cell label row)."""
        c = self.cell
        if self.ndim == 1:
            return c, self.header_height + (2 * self.in_channels + 2 * channel + 1) * c
        return c * (self.frame_shape[1] + 2), self.header_height + channel * (self.out_shape[0] + 1) * c + c

    def input_cell_box(self, channel: int, row: int, col: int) -> tuple[int, int, int, int]:
        return _box(self.input_origin(channel), row, col, self.cell)

    def output_cell_box(self, channel: int, row: int, col: int) -> tuple[int, int, int, int]:
        return _box(self.output_origin(channel), row, col, self.cell)


def _box(origin, row: int, col: int, cell: int) -> tuple[int, int, int, int]:
    x, y = origin[0] + col * cell, origin[1] + row * cell
    return x, y, x + cell, y + cell


# ---- validation ----------------------------------------------------------------------
def spatial_size(input_size, name: str = "input_size") -> tuple[int, ...]:
    """An int or a 1- or 2-tuple of positive ints; 3-D pictures are refused."""
    size = (input_size,) if is_int(input_size) else input_size
    if not isinstance(size, (tuple, list)) or not size or not all(is_int(v) for v in size):
        raise ValueError(f"{name} must be an int or a tuple of 1 or 2 ints, got {input_size!r}")
    if len(size) > 2:
        raise ValueError(f"{name}={tuple(size)}: only 1-D and 2-D convolutions are drawn "
                         f"(give 1 or 2 spatial sizes)")
    if min(size) < 1:
        raise ValueError(f"{name}={tuple(size)}: every size must be >= 1")
    return tuple(int(v) for v in size)


def _check_positive_int(name: str, value, least: int = 1) -> None:
    if not is_int(value) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def _check_channels(in_channels, out_channels, groups: int) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        _check_positive_int(name, value)
        if value % groups:
            raise ValueError(f"{name}={value} must be divisible by groups={groups} "
                             f"({value} % {groups} = {value % groups})")


# ---- the title -----------------------------------------------------------------------
def _compact(values) -> str:
    """``3`` when every dim agrees, else ``3x2``."""
    values = [str(v) for v in values]
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _pad_text(pads) -> str:
    return _compact(str(lo) if lo == hi else f"({lo},{hi})" for lo, hi in pads)


def spec_line(spec: ConvSpec, in_spatial, pads, channels=(1, 1)) -> str:
    """``conv2d in 5x5 k=3x3 s=2 p=1 d=1 g=1 zeros`` (``ch 2->4`` when channels are not 1->1)."""
    parts = [spec.op, "in " + "x".join(map(str, in_spatial)), "k=" + "x".join(map(str, spec.kernel_size)),
             f"s={_compact(spec.stride)}", f"p={_pad_text(pads)}", f"d={_compact(spec.dilation)}",
             f"g={spec.groups}"]
    parts.append(f"op={_compact(spec.output_padding)}" if spec.transposed else spec.padding_mode)
    if channels != (1, 1):
        parts.append(f"ch {channels[0]}->{channels[1]}")
    return " ".join(parts)


def formula(spec: ConvSpec, dim: int, size: int, n_out: int, pad) -> str:
    """One dim's shape rule with the numbers in, e.g. ``floor((5 + 1 + 1 - 3) / 2) + 1 = 3``."""
    lo, hi = pad
    s, d, k, ek = spec.stride[dim], spec.dilation[dim], spec.kernel_size[dim], spec.effective_kernel[dim]
    if spec.transposed:
        text = f"({size} - 1) * {s} - {lo} - {hi} + {ek} + {spec.output_padding[dim]} = {n_out}"
    else:
        text = f"floor(({size} + {lo} + {hi} - {ek}) / {s}) + 1 = {n_out}"
    return text + (f"   (ek = {d}*({k}-1)+1 = {ek})" if d > 1 else "")


def title_lines(spec: ConvSpec, in_spatial, out_spatial, pads, channels=(1, 1)) -> tuple[str, ...]:
    """Spec line, (transposed: the zeros line), then ``out = ...`` (``out_h``/``out_w`` if the
    dims differ)."""
    lines = [spec_line(spec, in_spatial, pads, channels)]
    if spec.transposed:
        borders = [transposed_border(spec, d, *pads[d]) for d in range(spec.ndim)]
        lines.append(f"zeros: {_compact(s - 1 for s in spec.stride)} between inputs, "
                     f"{_compact(b for b, _ in borders)} before, {_compact(a for _, a in borders)} after; "
                     f"the kernel slides with stride 1")
    bodies = [formula(spec, d, *args) for d, args in enumerate(zip(in_spatial, out_spatial, pads))]
    if len(set(bodies)) == 1:
        return tuple(lines + [f"out = {bodies[0]}"])
    return tuple(lines + [f"out_{name} = {body}" for name, body in zip("hw", bodies)])


def step_caption(geometry: Geometry, step: int) -> str:
    """``step 5/9: output ch 0 (1, 1): 9 taps, 4 on input, 5 on padding``."""
    channel, (row, col) = geometry.target(step)
    rows, cols = geometry.axes
    on_input = sum(rows.inputs[r] and cols.inputs[c] for r, c in geometry.footprint(step))
    where = f"({row}, {col})" if geometry.ndim == 2 else f"({col})"
    other = "zeros" if geometry.spec.transposed else "padding"
    taps = len(geometry.footprint(step))
    return (f"step {step + 1}/{geometry.n_frames}: output ch {channel} {where}: "
            f"{taps} taps, {on_input} on input, {taps - on_input} on {other}")


# ---- drawing helpers -----------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _font(size: int):
    _, _, ImageFont = _pil()
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def _fitted_font(draw, text: str, width: int, size: int):
    """The largest font up to ``size`` in which ``text`` fits ``width`` pixels (at least 7)."""
    while size > 7 and _text_width(draw, text, _font(size)) > width:
        size -= 1
    return _font(size)


def _centred_text(draw, box, text: str, font, fill) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (box[0] + box[2] - (left + right)) / 2
    y = (box[1] + box[3] - (top + bottom)) / 2
    draw.text((x, y), text, font=font, fill=fill)


def _dashed_line(draw, start, end, fill, width: int = 1, dash: int = 3) -> None:
    (x0, y0), (x1, y1) = start, end
    length = max(abs(x1 - x0), abs(y1 - y0))
    for a in range(0, length, 2 * dash):
        b = min(a + dash, length)
        draw.line([(x0 + (x1 - x0) * a / length, y0 + (y1 - y0) * a / length),
                   (x0 + (x1 - x0) * b / length, y0 + (y1 - y0) * b / length)], fill=fill, width=width)


def _dashed_rectangle(draw, box, fill, width: int = 1) -> None:
    x0, y0, x1, y1 = box
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        _dashed_line(draw, start, end, fill, width)


def _label_font(geometry: Geometry):
    """Cell numbers: about 0.45 cell, smaller when the largest number has many digits."""
    digits = len(str(math.prod(geometry.in_spatial) - 1))
    return _font(max(6, min(int(geometry.cell * 0.45), int(1.3 * geometry.cell / digits))))


# ---- one frame -----------------------------------------------------------------------
def _input_cell_look(geometry: Geometry, row: int, col: int, colours: Palette):
    """(fill, dashed outline?, label) of one frame cell, before any kernel shading."""
    rows, cols = geometry.axes
    source_row, source_col = rows.sources[row], cols.sources[col]
    label = ""
    if source_row >= 0 and source_col >= 0:
        label = str(source_row * geometry.in_spatial[-1] + source_col)
    if rows.inputs[row] and cols.inputs[col]:
        return colours.input, False, label
    return (colours.copy if label else WHITE), True, label


def _draw_input_panel(draw, geometry: Geometry, channel: int, shaded: frozenset) -> None:
    colours = palette(geometry.input_group(channel), geometry.spec.groups)
    ox, oy = geometry.input_origin(channel)
    draw.text((ox, oy - geometry.cell * 0.8), f"input ch {channel}", font=_font(geometry.cell * 2 // 5), fill=INK)
    font = _label_font(geometry)
    for row in range(geometry.frame_shape[0]):
        for col in range(geometry.frame_shape[1]):
            fill, dashed, label = _input_cell_look(geometry, row, col, colours)
            tap = (row, col) in shaded
            box = geometry.input_cell_box(channel, row, col)
            draw.rectangle(box, fill=colours.tap if tap else fill)
            if dashed and not tap:
                _dashed_rectangle(draw, box, FAINT)
            else:
                draw.rectangle(box, outline=GRID)
            if label:
                _centred_text(draw, box, label, font, WHITE if tap else INK)


def _window_box(geometry: Geometry, channel: int, step: int) -> tuple[int, int, int, int]:
    cells = geometry.footprint(step)
    first = geometry.input_cell_box(channel, *cells[0])
    last = geometry.input_cell_box(channel, *cells[-1])
    return first[0], first[1], last[2], last[3]


def _draw_window(draw, geometry: Geometry, channel: int, step: int) -> None:
    """The window's outline; the previous step's window dashed (the stride step)."""
    _, (row, col) = geometry.target(step)
    if row or col:
        _dashed_rectangle(draw, _window_box(geometry, channel, step - 1), WINDOW, width=2)
    draw.rectangle(_window_box(geometry, channel, step), outline=WINDOW, width=2)


def output_cell_state(geometry: Geometry, step: int, channel: int, row: int, col: int) -> str:
    """'done', 'current' or 'todo': channels are computed in order, positions row-major."""
    index = (channel * geometry.out_shape[0] + row) * geometry.out_shape[1] + col
    return "done" if index < step else "current" if index == step else "todo"


def _draw_output_panel(draw, geometry: Geometry, channel: int, step: int) -> None:
    colours = palette(geometry.output_group(channel), geometry.spec.groups)
    ox, oy = geometry.output_origin(channel)
    draw.text((ox, oy - geometry.cell * 0.8), f"output ch {channel}", font=_font(geometry.cell * 2 // 5), fill=INK)
    fills = {"done": colours.output, "current": colours.current, "todo": WHITE}
    for row in range(geometry.out_shape[0]):
        for col in range(geometry.out_shape[1]):
            state = output_cell_state(geometry, step, channel, row, col)
            box = geometry.output_cell_box(channel, row, col)
            draw.rectangle(box, fill=fills[state], outline=WINDOW if state == "current" else GRID,
                           width=2 if state == "current" else 1)


def _draw_title(draw, geometry: Geometry, step: int) -> None:
    line = 2 * geometry.cell // 3
    width = geometry.size[0] - 2 * geometry.cell
    for i, text in enumerate(geometry.title + (step_caption(geometry, step),)):
        font = _fitted_font(draw, text, width, line * 3 // 4)
        draw.text((geometry.cell, geometry.cell // 2 + i * line), text, font=font, fill=INK)


def frame(geometry: Geometry, step: int):
    """Frame ``step`` (``0 <= step < geometry.n_frames``) as a PIL RGB image of ``geometry.size``.

    A pure function: the same geometry and step give the same pixels.
    """
    Image, ImageDraw, _ = _pil()
    if not is_int(step) or not 0 <= step < geometry.n_frames:
        raise ValueError(f"step must be an int in range({geometry.n_frames}), got {step!r}")
    image = Image.new("RGB", geometry.size, WHITE)
    draw = ImageDraw.Draw(image)
    _draw_title(draw, geometry, step)
    channel_out, _ = geometry.target(step)
    group = geometry.output_group(channel_out)
    shaded = frozenset(geometry.footprint(step))
    for channel in range(geometry.in_channels):
        in_group = geometry.input_group(channel) == group
        _draw_input_panel(draw, geometry, channel, shaded if in_group else frozenset())
        if in_group:
            _draw_window(draw, geometry, channel, step)
    for channel in range(geometry.out_channels):
        _draw_output_panel(draw, geometry, channel, step)
    return image


MAX_FRAMES = 2048


def animate(path, input_size=(5, 5), kernel_size=3, stride=1, padding=0, dilation=1, groups=1,
            padding_mode="zeros", transposed=False, output_padding=0, in_channels=1, out_channels=1,
            *, cell=28, duration_ms=500) -> pathlib.Path:
    """Write the animated GIF (``out_channels * prod(out_spatial)`` frames, looping) to ``path``.

    Arguments as :meth:`Geometry.build`; ``duration_ms`` per frame.  Sizes and counts are in
    the module docstring.
    """
    _check_positive_int("duration_ms", duration_ms)
    geometry = Geometry.build(input_size, kernel_size, stride, padding, dilation, groups, padding_mode,
                              transposed, output_padding, in_channels, out_channels, cell=cell)
    if geometry.n_frames > MAX_FRAMES:
        raise ValueError(f"input_size={input_size} with out_channels={out_channels} gives "
                         f"{geometry.n_frames} frames (more than {MAX_FRAMES}); draw a smaller input")
    frames = [frame(geometry, step) for step in range(geometry.n_frames)]
    path = pathlib.Path(path)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=duration_ms)
    return path


# ---- receptive field through a chain of layers ---------------------------------------
class FieldStep(NamedTuple):
    """After one layer, per spatial dim: receptive field on the chain's input, and jump."""

    size: tuple[int, ...]
    jump: tuple[int, ...]


LAYER_KEYS = {"kernel_size", "stride", "padding", "dilation", "padding_mode"}


def layer_spec(layer, ndim: int) -> ConvSpec:
    """A dict ``{"kernel_size": 3, "stride": 2, ...}``, a ConvSpec or a conv module's spec."""
    spec = layer if isinstance(layer, ConvSpec) else getattr(layer, "_spec", None)
    if isinstance(layer, dict):
        unknown = set(layer) - LAYER_KEYS
        if unknown or "kernel_size" not in layer:
            raise ValueError(f"layers: a layer dict needs kernel_size and may have "
                             f"{sorted(LAYER_KEYS - {'kernel_size'})}; got keys {sorted(layer)}")
        spec = ConvSpec.build(ndim=ndim, **layer)
    if not isinstance(spec, ConvSpec):
        raise ValueError(f"layers: expected dicts, ConvSpecs or npconv.nn conv modules, got {layer!r}")
    if spec.transposed or spec.ndim != ndim:
        raise ValueError(f"layers: {spec.op} does not fit a chain of {ndim}-D forward convolutions")
    return spec


def _chain_ndim(layers, default: int = 2) -> int:
    """The first module's or tuple kernel_size's rank; ``default`` when every kernel_size is an int."""
    for layer in layers:
        spec = layer if isinstance(layer, ConvSpec) else getattr(layer, "_spec", None)
        if isinstance(spec, ConvSpec):
            return spec.ndim
        if isinstance(layer, dict) and isinstance(layer.get("kernel_size"), (tuple, list)):
            return len(layer["kernel_size"])
    return default


def layer_specs(layers, ndim: int | None = None) -> list[ConvSpec]:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers must be a non-empty list of layers, got {layers!r}")
    ndim = _chain_ndim(layers) if ndim is None else ndim
    return [layer_spec(layer, ndim) for layer in layers]


def receptive_field(layers, ndim: int | None = None) -> list[FieldStep]:
    """Per layer, ``(size, jump)`` per dim: ``rf_l = rf_{l-1} + (ek_l - 1) * jump_{l-1}``,
    ``jump_l = jump_{l-1} * stride_l``, ``rf_0 = jump_0 = 1``.

    >>> [step.size for step in receptive_field([{"kernel_size": 3, "stride": 2}] * 2)]
    [(3, 3), (7, 7)]
    """
    specs = layer_specs(layers, ndim)
    size = jump = (1,) * specs[0].ndim
    steps = []
    for spec in specs:
        size, jump = grow_receptive_field(size, jump, spec.effective_kernel, spec.stride, transposed=False)
        steps.append(FieldStep(size, jump))
    return steps


@dataclass(frozen=True)
class FieldTrace:
    """The grids of a chain and, per grid, the indices (per dim) the last grid's centre reads."""

    specs: tuple[ConvSpec, ...]                # per layer
    shapes: tuple[tuple[int, ...], ...]        # input, then each layer's output spatial shape
    marked: tuple[tuple[tuple[int, ...], ...], ...]  # per grid, per dim: sorted indices depended on
    fields: tuple[FieldStep, ...]              # per layer

    @property
    def extents(self) -> tuple[tuple[int, ...], ...]:
        """Per grid, per dim: last marked index - first + 1 (the visible receptive field)."""
        return tuple(tuple(m[-1] - m[0] + 1 for m in grid) for grid in self.marked)


def _read_back(spec: ConvSpec, in_spatial, out_spatial, wanted) -> tuple[tuple[int, ...], ...]:
    """Per dim, the input indices ``tap_sources`` says the wanted outputs read (zeros fall off)."""
    tables = tap_tables(spec, in_spatial, out_spatial, spec.pads(in_spatial))
    return tuple(tuple(sorted({int(v) for v in table[list(rows)].ravel() if v >= 0}))
                 for table, rows in zip(tables, wanted))


def _chain_input(input_size, ndim: int) -> tuple[int, ...]:
    """The spatial size of a chain's input: ``input_size`` or the tail of ``(N, C, *spatial)``."""
    if isinstance(input_size, (tuple, list)) and len(input_size) == ndim + 2:
        input_size = tuple(input_size)[2:]
    size = spatial_size(input_size)
    if len(size) != ndim:
        raise ValueError(f"input_size={input_size!r} does not match a chain of {ndim}-D layers")
    return size


def trace_receptive_field(layers, input_size) -> FieldTrace:
    """Shapes through the chain and what the centre (``size // 2`` per dim) of the last grid
    depends on in every grid, back-propagated layer by layer through ``tap_sources``.

    ``input_size``: the spatial size, or a full ``(N, C, *spatial)`` shape.
    """
    given = len(input_size) if isinstance(input_size, (tuple, list)) else 1
    specs = layer_specs(layers, _chain_ndim(layers, given - 2 if given > 2 else given)
                        if isinstance(layers, (list, tuple)) else None)  # int kernels: input's rank
    shapes = [_chain_input(input_size, specs[0].ndim)]
    for spec in specs:
        shapes.append(spec.out_spatial(shapes[-1]))
    marked = [tuple((n // 2,) for n in shapes[-1])]
    for spec, shape, out_shape in reversed(list(zip(specs, shapes, shapes[1:]))):
        marked.insert(0, _read_back(spec, shape, out_shape, marked[0]))
    return FieldTrace(tuple(specs), tuple(shapes), tuple(marked), tuple(receptive_field(specs)))


def _grid_shape(spatial) -> tuple[int, int]:
    return (1, spatial[0]) if len(spatial) == 1 else tuple(spatial)


def receptive_field_size(trace: FieldTrace, cell: int) -> tuple[int, int]:
    """``width = cell * max(widest grid + 2, 20)``; ``height = cell // 2 + cell * sum(rows + 2)``
    (per grid: a caption row, its rows, a gap row)."""
    grids = [_grid_shape(s) for s in trace.shapes]
    width = cell * max(max(cols for _, cols in grids) + 2, RF_MIN_WIDTH_CELLS)
    return width, cell // 2 + cell * sum(rows + 2 for rows, _ in grids)


def grid_origin(trace: FieldTrace, cell: int, index: int) -> tuple[int, int]:
    """Top-left pixel of grid ``index`` (0: the input) in the receptive-field picture."""
    above = sum(_grid_shape(s)[0] + 2 for s in trace.shapes[:index])
    return cell, cell // 2 + cell * (above + 1)


def _caption(trace: FieldTrace, index: int) -> str:
    shape = "x".join(map(str, trace.shapes[index]))
    marked = "x".join(map(str, trace.extents[index]))
    if index == 0:
        return f"input {shape}: rf 1, jump 1; the last centre reads {marked} cells here"
    spec, field = trace.specs[index - 1], trace.fields[index - 1]
    return (f"layer {index} k={_compact(spec.kernel_size)} s={_compact(spec.stride)} "
            f"p={_pad_text(spec.pads(trace.shapes[index - 1]))} d={_compact(spec.dilation)} -> {shape}: "
            f"rf {_compact(field.size)}, jump {_compact(field.jump)}; reads {marked} here")


def _draw_field_grid(draw, trace: FieldTrace, index: int, cell: int, caption: str, width: int) -> None:
    ox, oy = grid_origin(trace, cell, index)
    draw.text((ox, oy - cell * 0.85), caption, font=_fitted_font(draw, caption, width, cell * 3 // 5), fill=INK)
    colours, last = palette(0), index == len(trace.shapes) - 1
    rows, cols = _grid_shape(trace.shapes[index])
    marked = trace.marked[index] if len(trace.marked[index]) == 2 else ((0,),) + trace.marked[index]
    base = colours.input if index == 0 else colours.output
    for row in range(rows):
        for col in range(cols):
            hit = row in marked[0] and col in marked[1]
            fill = (colours.current if last else colours.tap) if hit else base
            draw.rectangle(_box((ox, oy), row, col, cell), fill=fill, outline=GRID)


def receptive_field_image(layers, input_size, *, cell: int = 20):
    """The picture :func:`receptive_field_png` writes, as a PIL image."""
    Image, ImageDraw, _ = _pil()
    _check_positive_int("cell", cell, MIN_CELL)
    trace = trace_receptive_field(layers, input_size)
    image = Image.new("RGB", receptive_field_size(trace, cell), WHITE)
    draw = ImageDraw.Draw(image)
    for index in range(len(trace.shapes)):
        _draw_field_grid(draw, trace, index, cell, _caption(trace, index), image.width - 2 * cell)
    return image


def receptive_field_png(path, layers, input_size, *, cell: int = 20) -> pathlib.Path:
    """Write a PNG: one grid per layer (input first), the cells the centre of the last grid
    depends on shaded dark in every earlier grid, each captioned with rf and jump
    (``rf_l = rf_{l-1} + (ek_l - 1) * jump_{l-1}``, ``jump_l = jump_{l-1} * stride_l``)."""
    path = pathlib.Path(path)
    receptive_field_image(layers, input_size, cell=cell).save(path, format="PNG")
    return path
