"""Pillow drawing primitives: fonts that fit, centred text, dashed lines and rectangles.

Pillow is imported only when something is drawn (``pip install 'npconv[explain]'``), so the
geometry, the captions and the receptive-field arithmetic work without it.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # annotations only: Pillow is imported when something is drawn
    from PIL import ImageDraw, ImageFont

    Font = Union[ImageFont.ImageFont, ImageFont.FreeTypeFont]
    Colour = tuple[int, int, int]
    Box = tuple[float, float, float, float]

INSTALL_HINT = "pip install 'npconv[explain]'"


def pil() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Pillow's Image, ImageDraw and ImageFont, or an ImportError that says what to install."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as error:  # pragma: no cover - Pillow is in the test extra
        raise ImportError(f"npconv.explain.animate draws with Pillow: {INSTALL_HINT}") from error
    return Image, ImageDraw, ImageFont


@functools.lru_cache(maxsize=None)
def font(size: int) -> Font:
    """Pillow's default font at ``size`` pixels (Pillow < 10.1: its one bitmap size)."""
    _, _, ImageFont = pil()
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def text_width(draw: ImageDraw.ImageDraw, text: str, text_font: Font) -> int:
    """Width in pixels of ``text`` drawn in ``text_font``."""
    left, _, right, _ = draw.textbbox((0, 0), text, font=text_font)
    return int(right - left)


def fitted_font(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> Font:
    """The largest font up to ``size`` in which ``text`` fits ``width`` pixels (at least 7)."""
    while size > 7 and text_width(draw, text, font(size)) > width:
        size -= 1
    return font(size)


def centred_text(draw: ImageDraw.ImageDraw, box: Box, text: str, text_font: Font, fill: Colour) -> None:
    """``text`` centred in ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=text_font)
    x = (box[0] + box[2] - (left + right)) / 2
    y = (box[1] + box[3] - (top + bottom)) / 2
    draw.text((x, y), text, font=text_font, fill=fill)


def dashed_line(draw: ImageDraw.ImageDraw, start: tuple[int, int], end: tuple[int, int], fill: Colour,
                width: int = 1, dash: int = 3) -> None:
    """A horizontal or vertical line in dashes of ``dash`` pixels."""
    (x0, y0), (x1, y1) = start, end
    length = max(abs(x1 - x0), abs(y1 - y0))
    for a in range(0, length, 2 * dash):
        b = min(a + dash, length)
        draw.line([(x0 + (x1 - x0) * a / length, y0 + (y1 - y0) * a / length),
                   (x0 + (x1 - x0) * b / length, y0 + (y1 - y0) * b / length)], fill=fill, width=width)


def dashed_rectangle(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: Colour,
                     width: int = 1) -> None:
    """The outline of ``box`` (left, top, right, bottom), dashed."""
    x0, y0, x1, y1 = box
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        dashed_line(draw, start, end, fill, width)
