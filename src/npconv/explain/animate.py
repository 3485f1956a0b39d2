"""An animated GIF of a convolution, one frame per output cell, in the visual language of the
conv-arithmetic animations; the pictures themselves are :mod:`npconv.explain.pictures`.

Frames are counted by :attr:`Geometry.n_frames` (``out_channels * prod(out_spatial)``) and sized
by :attr:`Geometry.size` (:class:`~npconv.explain.pictures.geometry.PanelLayout`):

>>> g = Geometry.build((5, 5), 3, stride=2, padding=1, cell=16)
>>> g.n_frames, g.size
(9, (256, 182))

This module also re-exports the picture API its callers import from here.
"""

from __future__ import annotations

import pathlib

from .pictures.frames import frame
from .pictures.geometry import Geometry, check_positive_int, spatial_size
from .pictures.colours import Palette, palette
from .pictures.receptive_field import (FieldStep, FieldTrace, layer_spec, layer_specs, receptive_field,
                                       receptive_field_image, receptive_field_png, receptive_field_size,
                                       trace_receptive_field)

MAX_FRAMES = 2048

__all__ = ["animate", "MAX_FRAMES", "Geometry", "frame", "spatial_size", "Palette", "palette",
           "FieldStep", "FieldTrace", "layer_spec", "layer_specs", "receptive_field",
           "receptive_field_image", "receptive_field_png", "receptive_field_size", "trace_receptive_field"]


def animate(path, input_size=(5, 5), kernel_size=3, stride=1, padding=0, dilation=1, groups=1,
            padding_mode="zeros", transposed=False, output_padding=0, in_channels=1, out_channels=1,
            *, cell=28, duration_ms=500) -> pathlib.Path:
    """Write the animated GIF (:attr:`Geometry.n_frames` frames of :attr:`Geometry.size`,
    looping) to ``path``.  Arguments as :meth:`Geometry.build`; ``duration_ms`` per frame.
    """
    check_positive_int("duration_ms", duration_ms)
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
