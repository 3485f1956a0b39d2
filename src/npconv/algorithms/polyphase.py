"""Strided transposed convolution as stride-1 convolutions, one per output phase (sub-pixel
decomposition): the polyphase decomposition of an interpolation filter (Vaidyanathan,
*Multirate Systems and Filter Banks*, 1993, ch. 4: upsampling then filtering equals s
shorter filters whose outputs interleave).

A transposed convolution (stride s, dilation d, pads lo/hi, per dim) adds ``x[i] * w[k]``
into output ``o = i*s - lo + k*d``.  The outputs of one *phase* ``o = r + s*q`` (r < s)
receive only the taps with ``(r + lo - k*d) % s == 0``, from input ``i = q + m_k``,
``m_k = (r + lo - k*d) // s``: so each phase is a plain stride-1 cross-correlation of the
input with the taps reversed (``w`` flipped) and the weight's channels swapped per group,
its dilation ``d / gcd(d, s)`` (consecutive taps are ``s / gcd(d, s)`` apart in k), written
into ``out[..., r::s]``.  In n dims the phases are the products of each dim's.  Phases with no
taps (``gcd(d, s) > 1``, or a kernel smaller than the stride) are zeros; a phase whose window
starts before the input or ends after it is zero-padded, one that skips input positions (pads
larger than the kernel reaches) reads a cropped view.  Shi et al. 2016, "Real-Time Single
Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network"
(arXiv:1609.05158), and "Is the deconvolution layer the same as a convolutional layer?"
(arXiv:1609.07009) give the equivalence.

Each phase runs through npconv's planner (:func:`npconv.core.forward`), so it gets the
fastest forward algorithm for its shape: U-Net's 2x2 stride 2 up-conv becomes four 1x1
GEMMs (``pointwise``), DCGAN's 4x4 stride 2 pad 1 four 2x2 convolutions, the input gradient
of a depthwise stride-2 layer four small depthwise convolutions (``depthwise_jit``).  Against
``gemm_col2im`` (one GEMM, then a scatter-add of every tap) the FLOPs are the same; what
changes is that no column buffer of C_out * K values per input position is made and added
back, in exchange for each phase's window gathering (its own algorithm's) and one strided
copy of the phase's output into place.

A weight holding NaN or inf cannot meet the zero padding (0 * inf is NaN where PyTorch adds
nothing): then each phase is cut into boxes whose windows stay inside the input, each run with
the taps that do (:func:`unpadded_pieces`), so NaN and inf land exactly where PyTorch puts them.

Scratch (see :mod:`npconv.workspace`): one phase's weight (C_out * C_in/G * its taps) and
its output for a chunk of images (the phase algorithms return new arrays), besides what the
phase's own algorithm holds; images are chunked so that the weight, the chunk's output and
room for the phase's algorithm at its least (im2col + GEMM's windows of one output, which
any plain convolution can fall back to) fit under the cap together; the phase's algorithm
then runs under the cap less what is held here (npconv.workspace.reserved), so it plans
its own chunks in the rest.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from .. import workspace


def applies(spec, x_shape, w_shape) -> bool:
    """A transposed convolution with a stride above 1 in some dim (stride 1 runs as a plain
    convolution already: npconv.core.as_forward_convolution) and zero padding: the input
    gradient of a reflect/replicate/circular conv is a transposed spec keeping its mode (the
    padded border's gradient folded back onto the input), which gemm_col2im computes."""
    return spec.transposed and not spec.unit_stride and spec.padding_mode == "zeros"


# ---- the phases: pure index arithmetic --------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DimPhase:
    """One dim's phase: outputs ``residue, residue + s, ...`` (``count`` of them) read input
    positions ``start .. stop - 1`` (possibly outside the input) through ``taps``, the kernel
    indices in the forward convolution's order (descending k)."""

    residue: int
    count: int
    taps: tuple[int, ...]
    start: int
    stop: int


def dim_phases(size_out: int, k: int, s: int, d: int, lo: int) -> list[DimPhase]:
    """The s phases of one dim (see the module docstring for the arithmetic)."""
    phases = []
    for r in range(s):
        count = len(range(r, size_out, s))
        taps = tuple(t for t in reversed(range(k)) if (r + lo - t * d) % s == 0)
        if not taps:
            phases.append(DimPhase(r, count, (), 0, 0))
            continue
        first_read, last_read = (r + lo - taps[0] * d) // s, (r + lo - taps[-1] * d) // s  # of output q = 0
        phases.append(DimPhase(r, count, taps, first_read, count + last_read))
    return phases


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of every dim: where it writes, which input it reads, its sub-kernel."""

    dims: tuple[DimPhase, ...]
    strides: tuple[int, ...]
    in_spatial: tuple[int, ...]

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(p.count for p in self.dims)

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(len(p.taps) for p in self.dims)

    @property
    def destination(self) -> tuple[slice, ...]:
        """The spatial slices of the output it fills."""
        return tuple(slice(p.residue, None, s) for p, s in zip(self.dims, self.strides))

    @property
    def crop(self) -> tuple[slice, ...]:
        """The input positions it reads, clipped to the input."""
        return tuple(slice(max(p.start, 0), min(p.stop, i)) for p, i in zip(self.dims, self.in_spatial))

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        """Zeros before and after the cropped input."""
        return tuple((max(-p.start, 0), max(p.stop - i, 0)) for p, i in zip(self.dims, self.in_spatial))

    @property
    def is_zero(self) -> bool:
        """No taps, or every window outside the input: the phase's outputs are 0."""
        return any(not p.taps or c.start >= c.stop for p, c in zip(self.dims, self.crop))

    @property
    def is_empty(self) -> bool:
        return 0 in self.out_spatial


def phases(spec, in_spatial, pads, out_spatial) -> list[Phase]:
    """Every phase with at least one output, in row-major order of residues."""
    per_dim = [dim_phases(o, k, s, d, lo) for o, k, s, d, (lo, _) in
               zip(out_spatial, spec.kernel_size, spec.stride, spec.dilation, pads)]
    every = (Phase(dims, spec.stride, tuple(in_spatial)) for dims in itertools.product(*per_dim))
    return [phase for phase in every if not phase.is_empty]


def phase_dilation(spec) -> tuple[int, ...]:
    """Every phase's dilation: its taps are s / gcd(d, s) apart in k, d / gcd(d, s) in the input."""
    return tuple(d // math.gcd(d, s) for d, s in zip(spec.dilation, spec.stride))


def phase_spec(spec, kernel_size, pads):
    """A phase's (or piece's) plain convolution: stride 1, its taps, its pads."""
    n = spec.ndim
    return spec.with_pads(pads, kernel_size=tuple(kernel_size), stride=(1,) * n,
                          dilation=phase_dilation(spec), transposed=False, output_padding=(0,) * n,
                          op=f"conv{n}d")


def _tap_slice(taps) -> slice:
    """The descending, evenly spaced kernel indices ``taps`` as a slice."""
    step = taps[0] - taps[1] if len(taps) > 1 else 1
    stop = taps[-1] - step
    return slice(taps[0], stop if stop >= 0 else None, -step)


def phase_weight(w, groups: int, phase: Phase, taps=None) -> np.ndarray:
    """(C_in, C_out/G, *k) transposed weight -> the phase's conv weight (C_out, C_in/G, *taps):
    its taps in the forward order (``taps``: slices of them, default all) and in/out channels
    swapped within each group."""
    c_in, c_out_g = w.shape[:2]
    chosen = tuple(p.taps[t] for p, t in zip(phase.dims, taps or (slice(None),) * len(phase.dims)))
    view = w[(slice(None), slice(None)) + tuple(_tap_slice(t) for t in chosen)]
    kernel = tuple(len(t) for t in chosen)
    swapped = view.reshape((groups, c_in // groups, c_out_g) + kernel).swapaxes(1, 2)
    return np.ascontiguousarray(swapped).reshape((groups * c_out_g, c_in // groups) + kernel)


# ---- pieces: boxes of a phase's outputs, each one plain convolution -----------------------

@dataclasses.dataclass(frozen=True)
class Piece:
    """Outputs (slices of the phase's grid) computed as one convolution with some of the
    phase's taps (slices, forward order; None: the outputs are 0) on an input box (``crop``)
    with zeros around it (``pads``)."""

    outputs: tuple[slice, ...]
    taps: tuple[slice, ...] | None
    crop: tuple[slice, ...] = ()
    pads: tuple[tuple[int, int], ...] = ()


def padded_pieces(phase: Phase) -> list[Piece]:
    """The whole phase as one zero-padded convolution (exact for a finite weight)."""
    every = (slice(None),) * len(phase.dims)
    if phase.is_zero:
        return [Piece(every, None)]
    return [Piece(every, every, phase.crop, phase.pads)]


def _dim_runs(p: DimPhase, size_in: int, step: int) -> list[tuple[slice, slice | None, slice | None]]:
    """(outputs, taps, input) runs of one dim whose windows hold the same taps inside the
    input: the taps j with 0 <= start + q + j*step < size_in."""
    q = np.arange(p.count)
    first = p.start + q  # the input read by tap 0
    low = np.clip(-(first // step), 0, len(p.taps))  # ceil(-first / step)
    high = np.clip((size_in - 1 - first) // step + 1, 0, len(p.taps))
    changes = np.flatnonzero((np.diff(low) != 0) | (np.diff(high) != 0)) + 1
    runs = []
    for a, b in zip([0, *changes], [*changes, p.count]):
        j0, j1 = int(low[a]), int(high[a])
        if j0 >= j1:
            runs.append((slice(a, b), None, None))
        else:
            reads = slice(p.start + a + j0 * step, p.start + b - 1 + (j1 - 1) * step + 1)
            runs.append((slice(a, b), slice(j0, j1), reads))
    return runs


def unpadded_pieces(phase: Phase, step: tuple[int, ...]) -> list[Piece]:
    """The phase cut into boxes whose windows lie inside the input, each with the taps that
    do: no padding is read.  A padded zero times an infinite weight would make a NaN where
    PyTorch adds nothing (it skips positions outside the input), so a weight holding NaN or
    inf runs this way; it costs a few small convolutions along the borders."""
    if any(not p.taps for p in phase.dims):
        return padded_pieces(phase)
    per_dim = [_dim_runs(p, i, s) for p, i, s in zip(phase.dims, phase.in_spatial, step)]
    pieces = []
    for runs in itertools.product(*per_dim):
        outputs, taps, crop = zip(*runs)
        zero = any(t is None for t in taps)
        pieces.append(Piece(outputs, None if zero else taps, crop, ((0, 0),) * len(runs)))
    return pieces


# ---- scratch ---------------------------------------------------------------------------

def _phase_algorithm_bytes(phase: Phase, x_shape, itemsize) -> int:
    """Room for the phase's own algorithm: im2col + GEMM's least (the windows of one output,
    C_in * taps values), which any plain convolution can run in (the planner falls back to it)."""
    return x_shape[1] * math.prod(phase.kernel_size) * itemsize


def _held_bytes(phase: Phase, w_shape, groups, itemsize, images: int) -> int:
    """This algorithm's own scratch for a phase: its weight and ``images`` images of its output."""
    c_out = w_shape[1] * groups
    return itemsize * (c_out * (w_shape[0] // groups) * math.prod(phase.kernel_size)
                       + images * c_out * math.prod(phase.out_spatial))


def _planned(spec, x_shape, pads, out_spatial, itemsize) -> list[tuple[Phase, int]]:
    """Every phase with the room its algorithm needs (0 for a zero phase)."""
    return [(phase, 0 if phase.is_zero else _phase_algorithm_bytes(phase, x_shape, itemsize))
            for phase in phases(spec, x_shape[2:], pads, out_spatial)]


def _least(spec, planned, w_shape, itemsize) -> int:
    """The largest phase's weight, its output for one image and the least its algorithm needs."""
    return max((_held_bytes(phase, w_shape, spec.groups, itemsize, 1) + least
                for phase, least in planned if not phase.is_zero), default=0)


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    planned = _planned(spec, x_shape, spec.pads(x_shape[2:]), spec.out_spatial(x_shape[2:]), itemsize)
    return _least(spec, planned, w_shape, itemsize)


def _images_per_chunk(spec, phase, least, x_shape, w_shape, itemsize) -> int:
    """As many images as keep the phase's weight and output beside its algorithm's ``least``
    under the cap (at least one: what one image does not fit has been refused)."""
    weight_only = _held_bytes(phase, w_shape, spec.groups, itemsize, 0)
    per_image = _held_bytes(phase, w_shape, spec.groups, itemsize, 1) - weight_only
    spare = workspace.limit() - weight_only - least
    return max(1, min(x_shape[0], spare // max(per_image, 1)))


# ---- forward ---------------------------------------------------------------------------

def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    """x (N, C_in, *in), w (C_in, C_out/G, *k) -> (N, C_out, *out): transposed, no bias."""
    planned = _planned(spec, x.shape, pads, out_spatial, x.itemsize)
    workspace.require({"polyphase": _least(spec, planned, w.shape, x.itemsize)})
    out = np.empty((x.shape[0], w.shape[1] * spec.groups) + tuple(out_spatial), dtype=x.dtype)
    with np.errstate(all="ignore"):
        finite = bool(np.isfinite(w.sum()))  # an overflowing finite sum takes the exact way too
    for phase, least in planned:
        target = out[(slice(None), slice(None)) + phase.destination]
        pieces = padded_pieces(phase) if finite else unpadded_pieces(phase, phase_dilation(spec))
        chunk = _images_per_chunk(spec, phase, least, x.shape, w.shape, x.itemsize)
        for piece in pieces:
            _run_piece(x, w, spec, phase, piece, chunk, target[(slice(None), slice(None)) + piece.outputs])
    return out


def _run_piece(x, w, spec, phase: Phase, piece: Piece, chunk: int, target) -> None:
    """The piece's convolution, through the planner, ``chunk`` images at a time, into ``target``."""
    if piece.taps is None:
        target[...] = 0
        return
    from .. import core  # core runs the planner, which imports this module
    w_piece = phase_weight(w, spec.groups, phase, piece.taps)
    sub = phase_spec(spec, w_piece.shape[2:], piece.pads)
    source = x[(slice(None), slice(None)) + piece.crop]
    for first in range(0, x.shape[0], chunk):
        images = slice(first, min(first + chunk, x.shape[0]))
        held = _held_bytes(phase, w.shape, spec.groups, x.itemsize, images.stop - first)
        workspace.make_room(held)
        with workspace.reserved(held):
            target[images] = core.forward(sub, source[images], w_piece, piece.pads, target.shape[2:])
