"""One frame of the animation: a pure function of (geometry, step), drawn with Pillow.

Blue input grid numbered ``0 .. n-1`` in row-major order, its padding ring drawn dashed (zero
padding blank, reflect / replicate / circular padding labelled with the input number it
copies), the kernel footprint shaded dark (taps only, dilation holes left alone), the window
outlined with the previous stride step dashed, and the cyan output grid filling in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...spec import is_int
from .captions import step_caption
from .colours import FAINT, GRID, INK, WHITE, WINDOW, Palette, palette
from .drawing import centred_text, dashed_rectangle, fitted_font, font, pil
from .geometry import Geometry

if TYPE_CHECKING:  # annotations only: Pillow is imported when a frame is drawn
    from PIL import Image, ImageDraw

    from .drawing import Colour, Font


def _label_font(geometry: Geometry) -> Font:
    """Cell numbers: about 0.45 cell, smaller when the largest number has many digits."""
    digits = len(str(math.prod(geometry.in_spatial) - 1))
    return font(max(6, min(int(geometry.cell * 0.45), int(1.3 * geometry.cell / digits))))


def input_cell_look(geometry: Geometry, row: int, col: int, colours: Palette) -> tuple[Colour, bool, str]:
    """(fill, dashed outline?, label) of one frame cell, before any kernel shading."""
    rows, cols = geometry.axes
    source_row, source_col = rows.sources[row], cols.sources[col]
    label = ""
    if source_row >= 0 and source_col >= 0:
        label = str(source_row * geometry.in_spatial[-1] + source_col)
    if rows.inputs[row] and cols.inputs[col]:
        return colours.input, False, label
    return (colours.copy if label else WHITE), True, label


def _draw_panel_label(draw: ImageDraw.ImageDraw, geometry: Geometry, origin: tuple[int, int], text: str) -> None:
    """The channel's name in the label row above its grid."""
    x, y = origin
    draw.text((x, y - geometry.cell * 0.8), text, font=font(geometry.cell * 2 // 5), fill=INK)


def _draw_input_panel(draw: ImageDraw.ImageDraw, geometry: Geometry, channel: int,
                      shaded: frozenset[tuple[int, int]]) -> None:
    colours = palette(geometry.input_group(channel), geometry.spec.groups)
    _draw_panel_label(draw, geometry, geometry.input_origin(channel), f"input ch {channel}")
    label_font = _label_font(geometry)
    for row in range(geometry.frame_shape[0]):
        for col in range(geometry.frame_shape[1]):
            fill, dashed, label = input_cell_look(geometry, row, col, colours)
            tap = (row, col) in shaded
            box = geometry.input_cell_box(channel, row, col)
            draw.rectangle(box, fill=colours.tap if tap else fill)
            if dashed and not tap:
                dashed_rectangle(draw, box, FAINT)
            else:
                draw.rectangle(box, outline=GRID)
            if label:
                centred_text(draw, box, label, label_font, WHITE if tap else INK)


def _window_box(geometry: Geometry, channel: int, step: int) -> tuple[int, int, int, int]:
    cells = geometry.footprint(step)
    first = geometry.input_cell_box(channel, *cells[0])
    last = geometry.input_cell_box(channel, *cells[-1])
    return first[0], first[1], last[2], last[3]


def _draw_window(draw: ImageDraw.ImageDraw, geometry: Geometry, channel: int, step: int) -> None:
    """The window's outline; the previous step's window dashed (the stride step)."""
    _, (row, col) = geometry.target(step)
    if row or col:
        dashed_rectangle(draw, _window_box(geometry, channel, step - 1), WINDOW, width=2)
    draw.rectangle(_window_box(geometry, channel, step), outline=WINDOW, width=2)


def output_cell_state(geometry: Geometry, step: int, channel: int, row: int, col: int) -> str:
    """'done', 'current' or 'todo': channels are computed in order, positions row-major."""
    index = (channel * geometry.out_shape[0] + row) * geometry.out_shape[1] + col
    return "done" if index < step else "current" if index == step else "todo"


def _draw_output_panel(draw: ImageDraw.ImageDraw, geometry: Geometry, channel: int, step: int) -> None:
    colours = palette(geometry.output_group(channel), geometry.spec.groups)
    _draw_panel_label(draw, geometry, geometry.output_origin(channel), f"output ch {channel}")
    fills = {"done": colours.output, "current": colours.current, "todo": WHITE}
    for row in range(geometry.out_shape[0]):
        for col in range(geometry.out_shape[1]):
            state = output_cell_state(geometry, step, channel, row, col)
            box = geometry.output_cell_box(channel, row, col)
            draw.rectangle(box, fill=fills[state], outline=WINDOW if state == "current" else GRID,
                           width=2 if state == "current" else 1)


def _draw_header(draw: ImageDraw.ImageDraw, geometry: Geometry, step: int) -> None:
    """The title lines and the step caption, each shrunk to fit inside the margins."""
    layout = geometry.layout
    width = geometry.size[0] - 2 * geometry.cell
    for i, text in enumerate(geometry.title + (step_caption(geometry, step),)):
        line_font = fitted_font(draw, text, width, layout.line_height * 3 // 4)
        draw.text((geometry.cell, geometry.cell // 2 + i * layout.line_height), text, font=line_font, fill=INK)


def frame(geometry: Geometry, step: int) -> Image.Image:
    """Frame ``step`` of the animation as a PIL RGB image of ``geometry.size`` pixels.

    A pure function: the same geometry and step give the same pixels.

    Parameters
    ----------
    geometry : Geometry
        The picture's tables (:meth:`Geometry.build`).
    step : int
        ``0 <= step < geometry.n_frames``: the output cell computed in this frame (channel by
        channel, positions row-major).

    Returns
    -------
    PIL.Image.Image
        The frame.

    Raises
    ------
    ValueError
        ``step`` out of range.
    ImportError
        Pillow is missing (``pip install 'npconv[explain]'``).

    Examples
    --------
    >>> frame(Geometry.build((5, 5), 3, stride=2, padding=1), 0).size
    (448, 320)
    """
    Image, ImageDraw, _ = pil()
    if not is_int(step) or not 0 <= int(step) < geometry.n_frames:
        raise ValueError(f"step must be an int in range({geometry.n_frames}), got {step!r}")
    step = int(step)  # NumPy integers too
    image = Image.new("RGB", geometry.size, WHITE)
    draw = ImageDraw.Draw(image)
    _draw_header(draw, geometry, step)
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
