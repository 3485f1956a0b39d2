"""The receptive field through a chain of forward convolutions: the ``(rf, jump)`` recurrence,
the cells the last grid's centre depends on in every grid (read back through
:func:`npconv.windows.tap_tables`), and a PNG of them.  Only the picture needs Pillow.

Layers are dicts of ConvSpec arguments, ConvSpec instances or npconv.nn conv modules (read
through their public :attr:`~npconv.nn.conv.ConvNd.spec`).
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence, Union

from ...nn.conv import ConvNd
from ...spec import ConvSpec, IntOrTuple
from ...windows import tap_tables
from ..shapes import Extent, grow_receptive_field
from .captions import field_caption
from .colours import GRID, INK, WHITE, palette
from .drawing import fitted_font, pil
from .geometry import MIN_CELL, cell_box, check_positive_int, spatial_size

if TYPE_CHECKING:  # annotations only: Pillow is imported when something is drawn
    from PIL import Image, ImageDraw

# A layer of a chain: a dict of ConvSpec arguments, a ConvSpec or an npconv.nn conv module.
Layer = Union[dict[str, Any], ConvSpec, ConvNd]

RF_MIN_WIDTH_CELLS = 20
LAYER_KEYS = {"kernel_size", "stride", "padding", "dilation", "padding_mode"}


class FieldStep(NamedTuple):
    """After one layer, per spatial dim: receptive field on the chain's input, and jump."""

    size: tuple[int, ...]
    jump: tuple[int, ...]


# ---- the chain's specs ------------------------------------------------------------------
def _given_spec(layer: object) -> ConvSpec | None:
    """The spec a ConvSpec is or a conv module holds; None for anything else."""
    if isinstance(layer, ConvSpec):
        return layer
    return layer.spec if isinstance(layer, ConvNd) else None


def _dict_spec(layer: dict[str, Any], ndim: int) -> ConvSpec:
    unknown = set(layer) - LAYER_KEYS
    if unknown or "kernel_size" not in layer:
        raise ValueError(f"layers: a layer dict needs kernel_size and may have "
                         f"{sorted(LAYER_KEYS - {'kernel_size'})}; got keys {sorted(layer)}")
    return ConvSpec.build(ndim=ndim, **layer)


def layer_spec(layer: Layer, ndim: int) -> ConvSpec:
    """A dict ``{"kernel_size": 3, "stride": 2, ...}``, a ConvSpec or a conv module's ``spec``."""
    spec = _dict_spec(layer, ndim) if isinstance(layer, dict) else _given_spec(layer)
    if spec is None:
        raise ValueError(f"layers: expected dicts, ConvSpecs or npconv.nn conv modules, got {layer!r}")
    if spec.transposed or spec.ndim != ndim:
        raise ValueError(f"layers: {spec.op} does not fit a chain of {ndim}-D forward convolutions")
    return spec


def _chain_ndim(layers: Sequence[Layer], default: int = 2) -> int:
    """The first module's or tuple kernel_size's rank; ``default`` when every kernel_size is an int."""
    for layer in layers:
        spec = _given_spec(layer)
        if spec is not None:
            return spec.ndim
        if isinstance(layer, dict) and isinstance(layer.get("kernel_size"), (tuple, list)):
            return len(layer["kernel_size"])
    return default


def layer_specs(layers: Sequence[Layer], ndim: int | None = None) -> list[ConvSpec]:
    """Each layer's spec (:func:`layer_spec`); ``ndim`` from the first module or tuple kernel."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers must be a non-empty list of layers, got {layers!r}")
    ndim = _chain_ndim(layers) if ndim is None else ndim
    return [layer_spec(layer, ndim) for layer in layers]


# ---- the numbers ---------------------------------------------------------------------------
def receptive_field(layers: Sequence[Layer], ndim: int | None = None) -> list[FieldStep]:
    """The receptive field and jump after each layer of a chain of forward convolutions.

    Per dim, in cells of the chain's input: ``rf_l = rf_{l-1} + (ek_l - 1) * jump_{l-1}`` and
    ``jump_l = jump_{l-1} * stride_l``, from ``rf_0 = jump_0 = 1`` (``ek``: the effective
    kernel ``dilation * (k - 1) + 1``).  Padding moves the field, never widens it.

    Parameters
    ----------
    layers : sequence of dict, ConvSpec or conv module
        Dicts of ``kernel_size`` (and ``stride``, ``padding``, ``dilation``,
        ``padding_mode``), ConvSpecs or npconv.nn conv modules; no transposed ones.
    ndim : int, optional
        Spatial dims; by default the first module's or tuple ``kernel_size``'s, else 2.

    Returns
    -------
    list of FieldStep
        Per layer, ``(size, jump)``, each one int per dim.

    Raises
    ------
    ValueError
        An empty chain, a layer of another kind or rank, or a transposed layer.

    Examples
    --------
    >>> [step.size for step in receptive_field([{"kernel_size": 3, "stride": 2}] * 2)]
    [(3, 3), (7, 7)]
    >>> receptive_field([{"kernel_size": 3, "dilation": 2}, {"kernel_size": 3}])[-1]
    FieldStep(size=(7, 7), jump=(1, 1))
    """
    specs = layer_specs(layers, ndim)
    size: Extent = (1,) * specs[0].ndim
    jump: Extent = size
    steps = []
    for spec in specs:
        size, jump = grow_receptive_field(size, jump, spec.effective_kernel, spec.stride, transposed=False)
        steps.append(FieldStep(_ints(size), _ints(jump)))
    return steps


def _ints(values: Extent) -> tuple[int, ...]:
    """Forward chains only multiply: every rf and jump is whole."""
    return tuple(int(v) for v in values)


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


def _read_back(spec: ConvSpec, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...],
               wanted: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Per dim, the input indices ``tap_sources`` says the wanted outputs read (zeros fall off)."""
    tables = tap_tables(spec, in_spatial, out_spatial, spec.pads(in_spatial))
    return tuple(tuple(sorted({int(v) for v in table[list(rows)].ravel() if v >= 0}))
                 for table, rows in zip(tables, wanted))


def _chain_input(input_size: IntOrTuple, ndim: int) -> tuple[int, ...]:
    """The spatial size of a chain's input: ``input_size`` or the tail of ``(N, C, *spatial)``."""
    if isinstance(input_size, (tuple, list)) and len(input_size) == ndim + 2:
        input_size = tuple(input_size)[2:]
    size = spatial_size(input_size)
    if len(size) != ndim:
        raise ValueError(f"input_size={input_size!r} does not match a chain of {ndim}-D layers")
    return size


def trace_receptive_field(layers: Sequence[Layer], input_size: IntOrTuple) -> FieldTrace:
    """Shapes through the chain and what the centre (``size // 2`` per dim) of the last grid
    depends on in every grid, back-propagated layer by layer through ``tap_sources``.

    ``input_size``: the spatial size, or a full ``(N, C, *spatial)`` shape.

    >>> trace_receptive_field([{"kernel_size": 3, "stride": 2}], 9).marked
    (((4, 5, 6),), ((2,),))
    """
    given = len(input_size) if isinstance(input_size, (tuple, list)) else 1
    specs = layer_specs(layers, _chain_ndim(layers, given - 2 if given > 2 else given)
                        if isinstance(layers, (list, tuple)) else None)  # int kernels: input's rank
    shapes = [_chain_input(input_size, specs[0].ndim)]
    for spec in specs:
        shapes.append(spec.out_spatial(shapes[-1]))
    marked: list[tuple[tuple[int, ...], ...]] = [tuple((n // 2,) for n in shapes[-1])]
    for spec, shape, out_shape in reversed(list(zip(specs, shapes, shapes[1:]))):
        marked.insert(0, _read_back(spec, shape, out_shape, marked[0]))
    return FieldTrace(tuple(specs), tuple(shapes), tuple(marked), tuple(receptive_field(specs)))


# ---- the picture's layout: one column of grids, each a caption row, its rows, a gap row ----
def _grid_shape(spatial: Sequence[int]) -> tuple[int, int]:
    return (1, spatial[0]) if len(spatial) == 1 else (spatial[0], spatial[1])


def grid_origin(trace: FieldTrace, cell: int, index: int) -> tuple[int, int]:
    """Top-left pixel of grid ``index`` (0: the input): a margin cell in, half a cell down,
    below the grids above (caption, rows, gap each) and its own caption row."""
    above = sum(_grid_shape(s)[0] + 2 for s in trace.shapes[:index])
    return cell, cell // 2 + cell * (above + 1)


def receptive_field_size(trace: FieldTrace, cell: int) -> tuple[int, int]:
    """(width, height): a margin cell right of the widest grid (at least RF_MIN_WIDTH_CELLS
    cells wide) and the last grid's gap row below it.

    >>> receptive_field_size(trace_receptive_field([{"kernel_size": 3}], 25), 10)
    (270, 65)
    """
    last = len(trace.shapes) - 1
    widest = max(_grid_shape(s)[1] for s in trace.shapes)
    _, top = grid_origin(trace, cell, last)
    bottom = top + cell * (_grid_shape(trace.shapes[last])[0] + 1)  # its rows, its gap row
    return cell * max(1 + widest + 1, RF_MIN_WIDTH_CELLS), bottom


# ---- the picture -------------------------------------------------------------------------
def _draw_field_grid(draw: ImageDraw.ImageDraw, trace: FieldTrace, index: int, cell: int, width: int) -> None:
    ox, oy = grid_origin(trace, cell, index)
    caption = field_caption(trace, index)
    draw.text((ox, oy - cell * 0.85), caption, font=fitted_font(draw, caption, width, cell * 3 // 5), fill=INK)
    colours, last = palette(0), index == len(trace.shapes) - 1
    rows, cols = _grid_shape(trace.shapes[index])
    marked = trace.marked[index] if len(trace.marked[index]) == 2 else ((0,),) + trace.marked[index]
    base = colours.input if index == 0 else colours.output
    for row in range(rows):
        for col in range(cols):
            hit = row in marked[0] and col in marked[1]
            fill = (colours.current if last else colours.tap) if hit else base
            draw.rectangle(cell_box((ox, oy), row, col, cell), fill=fill, outline=GRID)


def receptive_field_image(layers: Sequence[Layer], input_size: IntOrTuple, *, cell: int = 20) -> Image.Image:
    """The picture :func:`receptive_field_png` writes, as a PIL RGB image."""
    Image, ImageDraw, _ = pil()
    check_positive_int("cell", cell, MIN_CELL)
    trace = trace_receptive_field(layers, input_size)
    image = Image.new("RGB", receptive_field_size(trace, cell), WHITE)
    draw = ImageDraw.Draw(image)
    for index in range(len(trace.shapes)):
        _draw_field_grid(draw, trace, index, cell, image.width - 2 * cell)
    return image


def receptive_field_png(path: str | os.PathLike[str], layers: Sequence[Layer], input_size: IntOrTuple, *,
                        cell: int = 20) -> pathlib.Path:
    """Write a PNG of the receptive field through a chain of forward convolutions.

    One grid per layer, the input first; the cells the centre of the last grid depends on
    (read back through the engine's index tables) are shaded dark in every earlier grid, and
    each grid's caption gives its rf and jump (:func:`receptive_field`'s recurrence).

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the PNG.
    layers : sequence of dict, ConvSpec or conv module
        As :func:`receptive_field`.
    input_size : int or tuple of int
        The spatial size (1-D or 2-D), or a full ``(N, C, *spatial)`` shape.
    cell : int, default 20
        Pixels per grid cell (at least 12).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        As :func:`receptive_field`, or an input size that does not fit the chain.
    ImportError
        Pillow is missing (``pip install 'npconv[explain]'``).

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> layers = [{"kernel_size": 3}, {"kernel_size": 3, "stride": 2}]
    >>> png = receptive_field_png(os.path.join(tempfile.mkdtemp(), "rf.png"), layers, (9, 9))
    >>> with Image.open(png) as picture:
    ...     picture.size
    (400, 510)
    """
    path = pathlib.Path(path)
    receptive_field_image(layers, input_size, cell=cell).save(path, format="PNG")
    return path
