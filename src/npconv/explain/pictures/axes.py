"""One spatial dim of a picture as index tables: what each drawn cell holds, where each
output's kernel taps sit on the drawn frame, and which input each tap reads.

Nothing here re-derives the engine's index arithmetic: every "which input does this tap
read" comes from :func:`npconv.windows.tap_sources`, the table the window gather copies from.
A transposed convolution is drawn as what it computes: a stride-1 convolution over the input
with ``stride - 1`` zeros between elements and a border of zeros around it
(:func:`transposed_border`).  Its drawn tap ``j`` is weight tap ``k - 1 - j``: the kernel of
that equivalent convolution is the transposed one's weight flipped.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import numpy.typing as npt

from ...spec import ConvSpec, Pads
from ...windows import tap_sources


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


def _nested(table: npt.ArrayLike) -> tuple:
    array = np.asarray(table)
    return tuple(_nested(row) for row in array) if array.ndim > 1 else tuple(int(v) for v in array)


def conv_axis(spec: ConvSpec, dim: int, size: int, n_out: int, lo: int, hi: int) -> Axis:
    """Frame = the padded input (``size + lo + hi`` cells); output ``o`` tap ``k`` sits at
    padded position ``o*s + k*d`` (input position ``o*s + k*d - lo``) and reads ``tap_sources``'
    entry.

    >>> axis = conv_axis(ConvSpec.build(3, padding=1, padding_mode="reflect", ndim=1), 0, 4, 4, 1, 1)
    >>> axis.sources, axis.taps[0], axis.reads[0]
    ((1, 0, 1, 2, 3, 2), (0, 1, 2), (1, 0, 1))
    """
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


def _unstuff(stuffed: npt.ArrayLike, stride: int) -> np.ndarray:
    """Stuffed-grid index -> input index (every ``stride``-th cell), -1 for inserted zeros."""
    stuffed = np.asarray(stuffed)
    return np.where((stuffed >= 0) & (stuffed % stride == 0), stuffed // stride, -1)


def transposed_axis(spec: ConvSpec, dim: int, size: int, n_out: int, lo: int, hi: int) -> Axis:
    """Frame = the zero-inserted input (``(size-1)*s + 1`` cells) inside its zero border; a
    stride-1 window slides over it, output ``q`` tap ``k`` at frame position ``q + k*d``.

    >>> spec = ConvSpec.build(3, stride=2, padding=1, transposed=True, output_padding=1, ndim=1)
    >>> axis = transposed_axis(spec, 0, 3, 6, 1, 1)
    >>> axis.sources, axis.reads[1]
    ((-1, 0, -1, 1, -1, 2, -1, -1), (0, -1, 1))
    """
    s, d, k = spec.stride[dim], spec.dilation[dim], spec.kernel_size[dim]
    stuffed = (size - 1) * s + 1
    before, after = transposed_border(spec, dim, lo, hi)
    frame = stuffed + before + after
    sources = _unstuff(tap_sources(stuffed, frame, before, 1, 1, 1, "zeros")[:, 0], s)
    reads = _unstuff(tap_sources(stuffed, n_out, before, 1, d, k, "zeros"), s)
    taps = [[q + t * d for t in range(k)] for q in range(n_out)]
    return Axis(_nested(sources), tuple(bool(v >= 0) for v in sources), _nested(taps), _nested(reads))


def picture_axes(spec: ConvSpec, in_spatial: Sequence[int], out_spatial: Sequence[int],
                 pads: Pads) -> tuple[Axis, Axis]:
    """(rows, cols) axes of the picture; a 1-D picture's row axis is :data:`LONE_AXIS`."""
    make = transposed_axis if spec.transposed else conv_axis
    axes = [make(spec, d, in_spatial[d], out_spatial[d], *pads[d]) for d in range(spec.ndim)]
    if len(axes) == 1:
        return LONE_AXIS, axes[0]
    rows, cols = axes
    return rows, cols
