"""The pictures' text: the spec line, each dim's shape rule with the numbers in, the step
caption of a frame and the caption of a receptive-field grid.  Pure strings; no Pillow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from ...spec import ConvSpec, Pads
from .axes import transposed_border

if TYPE_CHECKING:  # annotations only: geometry and receptive_field import this module
    from .geometry import Geometry
    from .receptive_field import FieldTrace


def compact(values: Iterable[object]) -> str:
    """``3`` when every dim agrees, else ``3x2``.

    >>> compact((3, 3)), compact((3, 2))
    ('3', '3x2')
    """
    texts = [str(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def pad_text(pads: Pads) -> str:
    """``1`` for symmetric pads, ``(lo,hi)`` otherwise, compacted over the dims."""
    return compact(str(lo) if lo == hi else f"({lo},{hi})" for lo, hi in pads)


def spec_line(spec: ConvSpec, in_spatial: Sequence[int], pads: Pads, channels: tuple[int, int] = (1, 1)) -> str:
    """``conv2d in 5x5 k=3x3 s=2 p=1 d=1 g=1 zeros`` (``ch 2->4`` when channels are not 1->1)."""
    parts = [spec.op, "in " + "x".join(map(str, in_spatial)), "k=" + "x".join(map(str, spec.kernel_size)),
             f"s={compact(spec.stride)}", f"p={pad_text(pads)}", f"d={compact(spec.dilation)}",
             f"g={spec.groups}"]
    parts.append(f"op={compact(spec.output_padding)}" if spec.transposed else spec.padding_mode)
    if channels != (1, 1):
        parts.append(f"ch {channels[0]}->{channels[1]}")
    return " ".join(parts)


def formula(spec: ConvSpec, dim: int, size: int, n_out: int, pad: tuple[int, int]) -> str:
    """One dim's shape rule (the one :meth:`ConvSpec.out_spatial` applies) with the numbers in.

    >>> formula(ConvSpec.build(3, stride=2, dilation=2, ndim=1), 0, 9, 3, (1, 1))
    'floor((9 + 1 + 1 - 5) / 2) + 1 = 3   (ek = 2*(3-1)+1 = 5)'
    >>> formula(ConvSpec.build(3, stride=2, transposed=True, ndim=1), 0, 3, 7, (0, 0))
    '(3 - 1) * 2 - 0 - 0 + 3 + 0 = 7'
    """
    lo, hi = pad
    s, d, k, ek = spec.stride[dim], spec.dilation[dim], spec.kernel_size[dim], spec.effective_kernel[dim]
    if spec.transposed:
        text = f"({size} - 1) * {s} - {lo} - {hi} + {ek} + {spec.output_padding[dim]} = {n_out}"
    else:
        text = f"floor(({size} + {lo} + {hi} - {ek}) / {s}) + 1 = {n_out}"
    return text + (f"   (ek = {d}*({k}-1)+1 = {ek})" if d > 1 else "")


def _zeros_line(spec: ConvSpec, pads: Pads) -> str:
    borders = [transposed_border(spec, d, *pads[d]) for d in range(spec.ndim)]
    return (f"zeros: {compact(s - 1 for s in spec.stride)} between inputs, "
            f"{compact(b for b, _ in borders)} before, {compact(a for _, a in borders)} after; "
            f"the kernel slides with stride 1")


def title_lines(spec: ConvSpec, in_spatial: Sequence[int], out_spatial: Sequence[int], pads: Pads,
                channels: tuple[int, int] = (1, 1)) -> tuple[str, ...]:
    """Spec line, (transposed: the zeros line), then ``out = ...`` (``out_h``/``out_w`` if the
    dims differ).

    >>> spec = ConvSpec.build(3, stride=2, padding=1, ndim=2)
    >>> title_lines(spec, (5, 5), (3, 3), ((1, 1), (1, 1)))[-1]
    'out = floor((5 + 1 + 1 - 3) / 2) + 1 = 3'
    """
    lines = [spec_line(spec, in_spatial, pads, channels)]
    if spec.transposed:
        lines.append(_zeros_line(spec, pads))
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


def field_caption(trace: FieldTrace, index: int) -> str:
    """Grid ``index`` of a receptive-field picture (0: the input): its layer, shape, rf and jump,
    and the extent the last grid's centre reads there."""
    shape = "x".join(map(str, trace.shapes[index]))
    marked = "x".join(map(str, trace.extents[index]))
    if index == 0:
        return f"input {shape}: rf 1, jump 1; the last centre reads {marked} cells here"
    spec, field = trace.specs[index - 1], trace.fields[index - 1]
    return (f"layer {index} k={compact(spec.kernel_size)} s={compact(spec.stride)} "
            f"p={pad_text(spec.pads(trace.shapes[index - 1]))} d={compact(spec.dilation)} -> {shape}: "
            f"rf {compact(field.size)}, jump {compact(field.jump)}; reads {marked} here")
