"""Sliding windows, in any number of spatial dims, without a padded copy of the input.

``im2col`` gathers, for every kernel tap, the input values that tap sees at every output
position: ``cols[n, c, *tap, *out] = padded(x)[n, c, *(out * stride + tap * dilation)]``.
Padding is never materialised: along one dim, the output positions of one tap split into at
most three runs — a left border, the interior and a right border — and each run reads the
source in arithmetic progression (reflect runs backwards, replicate stands still, circular
wraps once, zeros writes zeros).  A tap's block is then one strided slice copy per
combination of runs.

``col2im`` is the adjoint: it adds each tap's block back at ``out * stride + tap * dilation``,
dropping what falls in the padding.  It is ``fold``, and the scatter step of transposed
convolution.
"""

from __future__ import annotations

import itertools
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


def tap_runs(size: int, n_out: int, lo: int, stride: int, offset: int, mode: str) -> list[Run]:
    """Runs of one tap along one dim: output o reads source index o * stride + offset - lo."""
    first = offset - lo  # source index read by output 0
    o_in = min(max(_ceil_div(-first, stride), 0), n_out)  # first output inside the input
    o_out = min(max(_ceil_div(size - first, stride), o_in), n_out)  # first output past it
    runs = []
    if o_in > 0:
        runs.append(_border_run(slice(0, o_in), first, stride, size, mode, left=True))
    if o_out > o_in:
        runs.append(Run(slice(o_in, o_out), first + o_in * stride, stride, o_out - o_in))
    if n_out > o_out:
        runs.append(_border_run(slice(o_out, n_out), first + o_out * stride, stride, size, mode,
                                left=False))
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


def window_blocks(in_spatial, out_spatial, pads, stride, dilation, kernel_size, mode):
    """Yield (tap, dest index, source index or None) for every block of every tap."""
    for tap in np.ndindex(*kernel_size):
        per_dim = [tap_runs(n, o, lo, s, t * d, mode) for n, o, (lo, _), s, d, t in
                   zip(in_spatial, out_spatial, pads, stride, dilation, tap)]
        for combo in itertools.product(*per_dim):
            dest = tuple(run.dest for run in combo)
            zero = any(run.start is None for run in combo)
            yield tap, dest, None if zero else tuple(run.source for run in combo)


def im2col(x: np.ndarray, kernel_size, stride, dilation, pads, out_spatial, mode="zeros",
           out: np.ndarray | None = None) -> np.ndarray:
    """(N, C, *in) -> (N, C, *kernel_size, *out_spatial), padding gathered, never copied."""
    lead = (slice(None), slice(None))
    if out is None:
        out = np.empty(x.shape[:2] + tuple(kernel_size) + tuple(out_spatial), dtype=x.dtype)
    for tap, dest, source in window_blocks(x.shape[2:], out_spatial, pads, stride, dilation,
                                           kernel_size, mode):
        target = lead + tap + dest
        if source is None:
            out[target] = 0
        else:
            out[target] = x[lead + source]
    return out


def col2im(cols: np.ndarray, out_spatial, stride, dilation, pads_lo) -> np.ndarray:
    """(N, C, *k, *grid) -> (N, C, *out_spatial): add each tap back where it was read from.

    Grid position i of tap t lands at ``i * stride + t * dilation - lo``; positions outside
    ``[0, out)`` are padding and are dropped.
    """
    n = len(out_spatial)
    kernel_size, grid = cols.shape[2:2 + n], cols.shape[2 + n:]
    out = np.zeros(cols.shape[:2] + tuple(out_spatial), dtype=cols.dtype)
    lead = (slice(None), slice(None))
    for tap in np.ndindex(*kernel_size):
        spans = [_scatter_span(g, o, lo, s, t * d) for g, o, lo, s, d, t in
                 zip(grid, out_spatial, pads_lo, stride, dilation, tap)]
        if any(span is None for span in spans):
            continue
        dest = tuple(span[0] for span in spans)
        source = tuple(span[1] for span in spans)
        out[lead + dest] += cols[lead + tap + source]
    return out


def _scatter_span(n_grid: int, n_out: int, lo: int, stride: int, offset: int):
    """(dest slice, grid slice) of grid positions i with 0 <= i*stride + offset - lo < n_out."""
    first = offset - lo
    i_start = max(_ceil_div(-first, stride), 0)
    i_stop = min(_ceil_div(n_out - first, stride), n_grid)
    if i_stop <= i_start:
        return None
    q = first + i_start * stride
    return slice(q, q + stride * (i_stop - i_start - 1) + 1, stride), slice(i_start, i_stop)
