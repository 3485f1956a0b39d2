"""An animated GIF of a convolution, one frame per output cell, in the visual language of the
conv-arithmetic animations; the pictures themselves are :mod:`npconv.explain.pictures`.

:func:`animate` is also ``npconv.explain.animate`` (this module was ``npconv.explain.animate``
before the function took that name).

Frames are counted by :attr:`Geometry.n_frames` (``out_channels * prod(out_spatial)``) and sized
by :attr:`Geometry.size` (:class:`~npconv.explain.pictures.geometry.PanelLayout`):

>>> g = Geometry.build((5, 5), 3, stride=2, padding=1, cell=16)
>>> g.n_frames, g.size
(9, (256, 182))

This module also re-exports the picture API its callers import from here.
"""

from __future__ import annotations

import os
import pathlib

from .pictures.frames import frame
from .pictures.geometry import Geometry, check_positive_int, spatial_size
from ..spec import IntOrTuple, Padding
from .pictures.colours import Palette, palette
from .pictures.receptive_field import (FieldStep, FieldTrace, layer_spec, layer_specs, receptive_field,
                                       receptive_field_image, receptive_field_png, receptive_field_size,
                                       trace_receptive_field)

MAX_FRAMES = 2048

__all__ = ["animate", "MAX_FRAMES", "Geometry", "frame", "spatial_size", "Palette", "palette",
           "FieldStep", "FieldTrace", "layer_spec", "layer_specs", "receptive_field",
           "receptive_field_image", "receptive_field_png", "receptive_field_size", "trace_receptive_field"]


def animate(path: str | os.PathLike[str], input_size: IntOrTuple = (5, 5), kernel_size: IntOrTuple = 3,
            stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
            padding_mode: str = "zeros", transposed: bool = False, output_padding: IntOrTuple = 0,
            in_channels: int = 1, out_channels: int = 1, *, cell: int = 28,
            duration_ms: int = 500) -> pathlib.Path:
    """Write an animated GIF of a 1-D or 2-D convolution, one frame per output cell.

    Each frame shows the padded (or, transposed, zero-inserted) input numbered row by row, the
    kernel's taps shaded (dilation holes left alone), the previous stride step dashed, and the
    output filling in, channel by channel; the title gives the spec and each dim's shape rule
    with the numbers in.  Frames: ``out_channels * prod(out_spatial)``
    (:attr:`Geometry.n_frames`), each of :attr:`Geometry.size` pixels; the GIF loops.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the GIF.
    input_size : int or tuple of 1 or 2 ints, default (5, 5)
        The spatial size of the input (an int: 1-D).
    kernel_size, stride, padding, dilation, groups, padding_mode, transposed, output_padding
        As :class:`npconv.nn.Conv2d` / :class:`npconv.nn.ConvTranspose2d`.
    in_channels, out_channels : int, default 1
        Channels drawn; each group has its own colour.
    cell : int, default 28
        Pixels per grid cell (at least 12).
    duration_ms : int, default 500
        Milliseconds per frame.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        A setting the convolution refuses, a 3-D input, or more than :data:`MAX_FRAMES` frames;
        the message names the parameter.
    ImportError
        Pillow is missing (``pip install 'npconv[explain]'``).

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> gif = animate(os.path.join(tempfile.mkdtemp(), "conv.gif"), (5, 5), 3, stride=2, padding=1)
    >>> with Image.open(gif) as picture:
    ...     picture.n_frames, picture.size
    (9, (448, 320))
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
