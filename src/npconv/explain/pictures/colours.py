"""The pictures' colours: conv-arithmetic blue inputs and cyan outputs, one hue per group."""

from __future__ import annotations

import colorsys
from typing import NamedTuple

WHITE, INK, GRID, FAINT, WINDOW = (255, 255, 255), (34, 34, 34), (90, 90, 90), (150, 150, 150), (20, 20, 20)


class Palette(NamedTuple):
    """One group's colours: its input channels and its output channels share the hue."""

    input: tuple[int, int, int]    # input cells
    copy: tuple[int, int, int]     # padding cells holding a copy (reflect/replicate/circular)
    tap: tuple[int, int, int]      # kernel taps (the shaded footprint)
    output: tuple[int, int, int]   # output cells computed so far
    current: tuple[int, int, int]  # the output cell being computed


def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = (round(255 * v) for v in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))
    return red, green, blue


def palette(group: int, groups: int = 1) -> Palette:
    """groups=1: conv-arithmetic blue input, cyan output.  groups>1: group ``g`` turns the hue
    by ``g / groups`` and its input and output channels share that one hue.

    >>> palette(0).input, palette(0).output
    ((129, 184, 235), (101, 224, 224))
    """
    hue = 0.58 + group / groups
    out_hue = hue - 0.08 if groups == 1 else hue
    return Palette(_hsv(hue, 0.45, 0.92), _hsv(hue, 0.16, 0.98), _hsv(hue, 0.8, 0.42),
                   _hsv(out_hue, 0.55, 0.88), _hsv(out_hue, 0.9, 0.55))
