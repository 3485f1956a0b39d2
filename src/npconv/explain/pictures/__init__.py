"""Pictures of a convolution in the visual language of the conv-arithmetic animations.

One module per concern, in the order they build on each other:

- :mod:`.axes`: one spatial dim as index tables (what each drawn cell holds, where each tap
  sits, which input it reads), straight from :func:`npconv.windows.tap_sources`;
- :mod:`.captions`: the title (spec line, each dim's shape rule with the numbers in) and the
  step caption;
- :mod:`.geometry`: :class:`Geometry` (validated arguments, the tables, which output each
  frame computes) and :class:`PanelLayout` (every pixel position and size);
- :mod:`.colours`: one hue per group;
- :mod:`.drawing`: Pillow primitives (fonts that fit, centred text, dashed outlines);
- :mod:`.frames`: :func:`frame`, a pure function of (geometry, step);
- :mod:`.receptive_field`: the ``(rf, jump)`` recurrence through a chain of layers, what the
  last grid's centre reads in every grid, and its PNG.

Only drawing needs Pillow (``pip install 'npconv[explain]'``); everything else imports and runs
without it.  :func:`npconv.explain.animate` writes the GIF.
"""

from .axes import Axis, conv_axis, transposed_axis, transposed_border
from .colours import Palette, palette
from .frames import frame
from .geometry import Geometry, PanelLayout, spatial_size
from .receptive_field import (FieldStep, FieldTrace, layer_spec, layer_specs, receptive_field,
                              receptive_field_image, receptive_field_png, receptive_field_size,
                              trace_receptive_field)

__all__ = ["Axis", "conv_axis", "transposed_axis", "transposed_border", "Palette", "palette", "frame",
           "Geometry", "PanelLayout", "spatial_size", "FieldStep", "FieldTrace", "layer_spec",
           "layer_specs", "receptive_field", "receptive_field_image", "receptive_field_png",
           "receptive_field_size", "trace_receptive_field"]
