"""Sliding windows, in any number of spatial dims, without a padded copy of the input.

``im2col`` gathers, for every kernel tap, the input values that tap sees at every output
position: ``cols[n, c, *tap, *out] = padded(x)[n, c, *(out * stride + tap * dilation)]``.
Padding is never materialised: along one dim, the output positions of one tap split into at
most three runs — a left border, the interior and a right border — and each run reads the
source in arithmetic progression (reflect runs backwards, replicate stands still, circular
wraps once, zeros writes zeros).  A tap's block is then one strided slice copy per
combination of runs.

``col2im`` is the adjoint: it adds each block back where it was read from (dropping zero
padding, folding reflect/replicate/circular padding back onto the input).  It is ``fold``,
the scatter step of transposed convolution, and the input gradient of every padding mode.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Run:
    """Output positions ``dest`` read source ``start, start + step, ...`` (None: zeros)."""

    dest: slice
    start: int | None
    step: int
    length: int

    @property
    def source(self) -> slice:
        if self.step == 0:  # replicate: one source element, broadcast over the run
            return slice(self.start, self.start + 1)
        stop = self.start + self.step * (self.length - 1) + (1 if self.step > 0 else -1)
        return slice(self.start, stop if stop >= 0 else None, self.step)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tap_runs(size: int, n_out: int, lo: int, stride: int, offset: int, mode: str,
             end: int | None = None) -> list[Run]:
    """Runs of one tap along one dim: output o reads source index o * stride + offset - lo.

    Source indices at or past ``end`` (default: never) read zeros whatever the mode: windows
    that overhang the padded input (Winograd's last tiles) see zeros there.
    """
    first = offset - lo  # source index read by output 0
    o_in = min(max(_ceil_div(-first, stride), 0), n_out)  # first output inside the input
    o_out = min(max(_ceil_div(size - first, stride), o_in), n_out)  # first output past it
    o_end = n_out if end is None else min(max(_ceil_div(end - first, stride), o_out), n_out)
    runs = []
    if o_in > 0:
        runs.append(_border_run(slice(0, o_in), first, stride, size, mode, left=True))
    if o_out > o_in:
        runs.append(Run(slice(o_in, o_out), first + o_in * stride, stride, o_out - o_in))
    if o_end > o_out:
        runs.append(_border_run(slice(o_out, o_end), first + o_out * stride, stride, size, mode,
                                left=False))
    if n_out > o_end:
        runs.append(Run(slice(o_end, n_out), None, 0, n_out - o_end))
    return runs


def _border_run(dest: slice, p: int, stride: int, size: int, mode: str, left: bool) -> Run:
    """Run of outputs whose first padded source index p lies before 0 (left) or past size."""
    length = dest.stop - dest.start
    if mode == "zeros":
        return Run(dest, None, 0, length)
    if mode == "replicate":
        return Run(dest, 0 if left else size - 1, 0, length)
    if mode == "circular":
        return Run(dest, p + size if left else p - size, stride, length)
    # reflect about the first/last element, without repeating it
    return Run(dest, -p if left else 2 * (size - 1) - p, -stride, length)


def window_blocks(in_spatial, out_spatial, pads, stride, dilation, kernel_size, mode, ends=None):
    """Yield (dest index into the (*kernel, *out) axes, runs) for every block of the windows.

    ``cols[*t, *o]`` reads padded position ``o * stride + t * dilation``; the relation is
    symmetric, so the loop runs over whichever of taps and output positions is shorter (a
    weight gradient has a kernel as large as the image and few output positions), and the
    runs cover the other.
    """
    by_tap = math.prod(kernel_size) <= math.prod(out_spatial)
    outer, inner = (kernel_size, out_spatial) if by_tap else (out_spatial, kernel_size)
    outer_step, inner_step = (dilation, stride) if by_tap else (stride, dilation)
    ends = ends or (None,) * len(in_spatial)
    for fixed in np.ndindex(*outer):
        per_dim = [tap_runs(size, count, lo, step, f * f_step, mode, end) for size, count, (lo, _), step, f, f_step, end
                   in zip(in_spatial, inner, pads, inner_step, fixed, outer_step, ends)]
        for combo in itertools.product(*per_dim):
            spans = tuple(run.dest for run in combo)
            yield (fixed + spans if by_tap else spans + fixed), combo


def im2col(x: np.ndarray, kernel_size, stride, dilation, pads, out_spatial, mode="zeros",
           out: np.ndarray | None = None, ends=None) -> np.ndarray:
    """(N, C, *in) -> (N, C, *kernel_size, *out_spatial), padding gathered, never copied.

    ``out`` may be any view of that shape (a transposed buffer, for one); ``ends``: per dim,
    the source index from which everything reads as zero (see :func:`tap_runs`).
    """
    lead = (slice(None), slice(None))
    if out is None:
        out = np.empty(x.shape[:2] + tuple(kernel_size) + tuple(out_spatial), dtype=x.dtype)
    for dest, runs in window_blocks(x.shape[2:], out_spatial, pads, stride, dilation, kernel_size, mode, ends):
        if any(run.start is None for run in runs):
            out[lead + dest] = 0
        else:
            out[lead + dest] = x[lead + tuple(run.source for run in runs)]
    return out


def col2im(cols: np.ndarray, image_spatial, stride, dilation, pads, mode="zeros",
           out: np.ndarray | None = None) -> np.ndarray:
    """The adjoint of :func:`im2col`: (N, C, *k, *grid) -> (N, C, *image_spatial).

    Every block is added back where ``im2col`` read it from: zero padding drops it, reflect /
    circular add it to the mirrored / wrapped positions, replicate sums it into the edge.
    ``out`` (default: zeros) is added into: a grid chunk at grid offset o0 is added in place
    by passing pads with lo shifted by ``-o0 * stride``, as for :func:`im2col`.
    """
    n = len(image_spatial)
    kernel_size, grid = cols.shape[2:2 + n], cols.shape[2 + n:]
    if out is None:
        out = np.zeros(cols.shape[:2] + tuple(image_spatial), dtype=cols.dtype)
    lead = (slice(None), slice(None))
    for dest, runs in window_blocks(image_spatial, grid, pads, stride, dilation, kernel_size, mode):
        if any(run.start is None for run in runs):
            continue
        block = cols[lead + dest]  # (N, C, *run lengths)
        still = tuple(2 + d for d, run in enumerate(runs) if run.step == 0)
        if still:  # replicate: the whole run came from one edge element
            block = block.sum(axis=still, keepdims=True)
        out[lead + tuple(run.source for run in runs)] += block
    return out


NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def padded_block(x: np.ndarray, pads, mode: str, start, shape, out: np.ndarray | None = None) -> np.ndarray:
    """(N, C, *shape): the block of the padded input from padded position ``start`` per spatial
    dim, gathered in any mode (windows of one tap), without a padded copy of the whole input."""
    ones = (1,) * len(shape)
    shifted = tuple((lo - s, hi) for (lo, hi), s in zip(pads, start))
    view = None if out is None else out.reshape(out.shape[:2] + ones + tuple(shape))
    return im2col(x, ones, ones, ones, shifted, shape, mode, view).reshape(x.shape[:2] + tuple(shape))


def padded_copy(x: np.ndarray, pads, mode: str) -> np.ndarray:
    """(N, C, *in) padded by (lo, hi) per spatial dim in ``mode``: for the algorithms that need
    the padded block itself (FFT, direct depthwise), not windows of it."""
    return np.pad(x, [(0, 0), (0, 0), *pads], mode=NUMPY_PAD_MODES[mode])


def tap_sources(size: int, n_out: int, lo: int, stride: int, dilation: int, kernel: int,
                mode: str) -> np.ndarray:
    """(n_out, kernel) source index each output reads through each tap along one dim; -1: zeros.

    The same runs :func:`im2col` copies, written out one index at a time: the teaching code
    (``npconv.explain``) answers every "which input made this output" question from it.

    >>> tap_sources(4, 4, 1, 1, 1, 3, "reflect").tolist()
    [[1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 2]]
    """
    table = np.full((n_out, kernel), -1, dtype=np.int64)
    for tap in range(kernel):
        for run in tap_runs(size, n_out, lo, stride, tap * dilation, mode):
            if run.start is not None:
                table[run.dest, tap] = run.start + run.step * np.arange(run.length)
    return table


def tap_tables(spec, in_spatial, out_spatial, pads) -> list[np.ndarray]:
    """:func:`tap_sources` for every spatial dim of a spec: one (out_d, k_d) table per dim."""
    return [tap_sources(size, n_out, lo, s, d, k, spec.padding_mode) for size, n_out, (lo, _), s, d, k
            in zip(in_spatial, out_spatial, pads, spec.stride, spec.dilation, spec.kernel_size)]
