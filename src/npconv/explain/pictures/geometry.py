"""The geometry of a convolution picture, Pillow-free: the validated spec, the index tables of
each spatial dim, which output every frame computes, and where every cell lands in pixels.

The picture, in cells of ``cell`` pixels (:class:`PanelLayout` places everything; every pixel
size is read off those placements, never written out twice):

- a header: the title lines and the step caption, ``2 * cell // 3`` pixels each, below half a
  cell of margin;
- one panel per channel: a label row over its grid.  2-D: input channels stacked in the left
  column (their grid is the padded or zero-inserted input frame), output channels in a column
  one cell to the right.  1-D: a single column, the inputs then the outputs;
- a margin of one cell left, right and below; at least ``MIN_WIDTH_CELLS`` cells wide.

>>> g = Geometry.build((5, 5), 3, stride=2, padding=1, cell=12)
>>> g.frame_shape, g.out_shape, g.header_height   # 6 + 3 lines * 8
((7, 7), (3, 3), 30)
>>> g.input_origin(0), g.output_origin(0)        # below a label row; the outputs 1 + 7 + 1 cells in
((12, 42), (108, 42))
>>> g.size                                       # 16 cells wide at least; 42 + 7 rows + 1 margin
(192, 138)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

from ... import spec_errors
from ...spec import ConvSpec, IntOrTuple, Padding, Pads, is_int
from .axes import Axis, picture_axes
from .captions import title_lines

MIN_CELL = 12
MIN_WIDTH_CELLS = 16


# ---- validation ----------------------------------------------------------------------
def spatial_size(input_size: IntOrTuple, name: str = "input_size") -> tuple[int, ...]:
    """An int or a 1- or 2-tuple of positive ints; 3-D pictures are refused.

    Parameters
    ----------
    input_size : int or tuple of 1 or 2 ints
        A picture's spatial input size.
    name : str, default 'input_size'
        The parameter named in a refusal.

    Returns
    -------
    tuple of int
        The sizes as a tuple.

    Raises
    ------
    ValueError
        Not ints, more than 2 dims, or a size below 1.

    Examples
    --------
    >>> spatial_size(5), spatial_size([4, 6])
    ((5,), (4, 6))
    """
    size = (input_size,) if is_int(input_size) else input_size
    if not isinstance(size, (tuple, list)) or not size or not all(is_int(v) for v in size):
        raise ValueError(f"{name} must be an int or a tuple of 1 or 2 ints, got {input_size!r}")
    if len(size) > 2:
        raise ValueError(f"{name}={tuple(size)}: only 1-D and 2-D convolutions are drawn "
                         f"(give 1 or 2 spatial sizes)")
    if min(int(v) for v in size) < 1:
        raise ValueError(f"{name}={tuple(size)}: every size must be >= 1")
    return tuple(int(v) for v in size)


def check_positive_int(name: str, value: object, least: int = 1) -> None:
    """Refuse (ValueError naming ``name``) anything but an int >= ``least``."""
    if not is_int(value) or int(value) < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def _channels_words(error: spec_errors.ConvRule) -> str:
    """The spec's channels-per-group refusal, said the pictures' way."""
    channels, groups = error.numbers["channels"], error.numbers["groups"]
    _, left_over = divmod(channels, groups)
    return (f"{error.param}={channels} must be divisible by groups={groups} "
            f"({channels} % {groups} = {left_over})")


def check_channels(spec: ConvSpec, in_channels: int, out_channels: int) -> None:
    """Positive channel counts that the spec's groups divide (the rule is the spec's)."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        check_positive_int(name, value)
    with spec_errors.worded({"channels_groups": _channels_words}):
        spec.check_channels(in_channels, out_channels)


def cell_box(origin: tuple[int, int], row: int, col: int, cell: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixels of grid cell (row, col) of the grid at ``origin``."""
    x, y = origin[0] + col * cell, origin[1] + row * cell
    return x, y, x + cell, y + cell


# ---- pixels ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PanelLayout:
    """Where the header and each channel's panel sit, in pixels (see the module docstring)."""

    cell: int
    header_lines: int              # title lines + the step caption
    frame_shape: tuple[int, int]   # (rows, cols) of an input panel's grid
    out_shape: tuple[int, int]     # (rows, cols) of an output panel's grid
    in_channels: int
    out_channels: int
    one_column: bool               # 1-D: outputs below the inputs; 2-D: beside them

    @property
    def line_height(self) -> int:
        """Pixels per header line: two thirds of a cell."""
        return 2 * self.cell // 3

    @property
    def header_height(self) -> int:
        """Pixels above the first label row: half a cell of margin and the header lines."""
        return self.cell // 2 + self.header_lines * self.line_height

    def _grid_top(self, rows_above: int) -> int:
        """Top pixel of a grid with ``rows_above`` cell rows of panels above it in its column."""
        return self.header_height + (rows_above + 1) * self.cell  # + 1: its own label row

    def input_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of input channel ``channel``'s grid: a margin cell in."""
        return self.cell, self._grid_top(channel * (self.frame_shape[0] + 1))

    def output_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of output channel ``channel``'s grid: below the inputs (1-D), or
        right of them past a one-cell gap (2-D)."""
        above = channel * (self.out_shape[0] + 1)
        if self.one_column:
            return self.cell, self._grid_top(self.in_channels * (self.frame_shape[0] + 1) + above)
        return self.cell * (1 + self.frame_shape[1] + 1), self._grid_top(above)

    def _far_corner(self, origin: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
        return origin[0] + shape[1] * self.cell, origin[1] + shape[0] * self.cell

    @property
    def size(self) -> tuple[int, int]:
        """(width, height): a margin cell past the farthest grid; at least MIN_WIDTH_CELLS wide."""
        corners = (self._far_corner(self.input_origin(self.in_channels - 1), self.frame_shape),
                   self._far_corner(self.output_origin(self.out_channels - 1), self.out_shape))
        width = max(max(x for x, _ in corners) + self.cell, MIN_WIDTH_CELLS * self.cell)
        return width, max(y for _, y in corners) + self.cell


# ---- the geometry: every table a frame needs, built once -----------------------------
@dataclass(frozen=True)
class Geometry:
    """Everything the frames draw, built once by :meth:`build`; frames are pure functions of it.

    Output sizes are the spec's (:meth:`ConvSpec.out_spatial`); ``title`` shows each dim's rule
    with the numbers in.

    >>> g = Geometry.build((5, 5), 3, stride=2, padding=1)
    >>> g.n_frames, g.frame_shape, g.title[-1]
    (9, (7, 7), 'out = floor((5 + 1 + 1 - 3) / 2) + 1 = 3')
    >>> g.axes[1].taps[2]  # output column 2 puts its taps on padded columns 4, 5, 6
    (4, 5, 6)
    """

    spec: ConvSpec
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    pads: Pads
    in_channels: int
    out_channels: int
    cell: int
    axes: tuple[Axis, Axis]  # (rows, cols); a 1-D picture's row axis is LONE_AXIS
    title: tuple[str, ...]

    @classmethod
    def build(cls, input_size: IntOrTuple = (5, 5), kernel_size: IntOrTuple = 3, stride: IntOrTuple = 1,
              padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros",
              transposed: bool = False, output_padding: IntOrTuple = 0, in_channels: int = 1,
              out_channels: int = 1, *, cell: int = 28) -> Geometry:
        """Validate every argument (ValueError naming it) and build the per-dim tables.

        Arguments as :func:`npconv.explain.animate` (``cell``: pixels per grid cell, >= 12).
        """
        in_spatial = spatial_size(input_size)
        spec = ConvSpec.build(kernel_size, stride, padding, dilation, groups, padding_mode,
                              transposed, output_padding, ndim=len(in_spatial))
        check_channels(spec, in_channels, out_channels)
        check_positive_int("cell", cell, MIN_CELL)
        out_spatial = spec.out_spatial(in_spatial)
        pads = spec.pads(in_spatial)
        return cls(spec, in_spatial, out_spatial, pads, in_channels, out_channels, cell,
                   picture_axes(spec, in_spatial, out_spatial, pads),
                   title_lines(spec, in_spatial, out_spatial, pads, (in_channels, out_channels)))

    # ---- counts and shapes ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Spatial dims drawn: 1 or 2."""
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
        """Output positions per channel."""
        return math.prod(self.out_spatial)

    @property
    def n_frames(self) -> int:
        """``out_channels * prod(out_spatial)``: every output channel, every position."""
        return self.out_channels * self.n_positions

    def target(self, step: int) -> tuple[int, tuple[int, int]]:
        """The output channel and (row, col) that frame ``step`` computes: channel by channel,
        positions row-major."""
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
        """The group of input channel ``channel``."""
        return channel // self.spec.channels_per_group(self.in_channels)

    def output_group(self, channel: int) -> int:
        """The group of output channel ``channel``."""
        return channel // self.spec.channels_per_group(self.out_channels)

    # ---- pixels ------------------------------------------------------------------------
    @functools.cached_property
    def layout(self) -> PanelLayout:
        """The pixel layout: the title and the step caption over this picture's panels."""
        return PanelLayout(self.cell, len(self.title) + 1, self.frame_shape, self.out_shape,
                           self.in_channels, self.out_channels, one_column=self.ndim == 1)

    @property
    def header_height(self) -> int:
        """:attr:`PanelLayout.header_height`."""
        return self.layout.header_height

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.layout.size

    def input_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of input channel ``channel``'s grid."""
        return self.layout.input_origin(channel)

    def output_origin(self, channel: int) -> tuple[int, int]:
        """Top-left pixel of output channel ``channel``'s grid."""
        return self.layout.output_origin(channel)

    def input_cell_box(self, channel: int, row: int, col: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a cell of an input channel's frame."""
        return cell_box(self.input_origin(channel), row, col, self.cell)

    def output_cell_box(self, channel: int, row: int, col: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a cell of an output channel's grid."""
        return cell_box(self.output_origin(channel), row, col, self.cell)
