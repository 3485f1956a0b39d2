"""MaxPool2d's compiled kernels for channels-first maps (imported on first use, through
:func:`npconv.compiled.kernels`).

On (N, C, H, W) memory a window's taps along a row are ``stride`` elements apart, and NumPy's
maximum over strided views ran at about 2.4 ns an element (ResNet's stem pool at batch 8:
35 ms).  The forward reads each plane once per window row, the planes split among the
threads, and in training (a kernel of its own) records which tap won (the first maximum, or the first NaN: NaN
wins, as in PyTorch); the backward sends each output's gradient to that tap.
"""

import numba
import numpy as np


@numba.njit(inline="always")
def _run_of_columns(out_w, width, stride_w, offset):
    """The output columns [first, last) whose tap at ``offset`` (column j * stride_w + offset)
    lies inside a row of ``width``."""
    first = max(0, (stride_w - 1 - offset) // stride_w)
    return first, min(out_w, (width - 1 - offset) // stride_w + 1)


@numba.njit(parallel=True, cache=True)
def max_pool_planes(planes, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, top, left, out):
    """out[p, i, j] = the maximum of plane p's window (i, j); planes (P, H, W), out (P, OH, OW).
    Per output row, tap by tap, over the run of output columns whose taps lie inside the map,
    into a row buffer of the thread's own (5x faster than reading and writing ``out`` in place)."""
    height, width, out_w = planes.shape[1], planes.shape[2], out.shape[2]
    for p in numba.prange(planes.shape[0]):
        for i in range(out.shape[1]):
            best = np.full(out_w, -np.inf, planes.dtype)
            for a in range(kernel_h):
                row = i * stride_h - top + a * dilation_h
                if 0 <= row < height:
                    for b in range(kernel_w):
                        offset = b * dilation_w - left
                        first, last = _run_of_columns(out_w, width, stride_w, offset)
                        source = planes[p, row, max(first * stride_w + offset, 0):]
                        for j in range(last - first):
                            value = source[j * stride_w]
                            current = best[first + j]
                            best[first + j] = value if (value > current or value != value) else current
            out[p, i, :] = best


@numba.njit(parallel=True, cache=True)
def max_pool_planes_winners(planes, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, top, left,
                            out, winners):
    """:func:`max_pool_planes` that also records, in winners (P, OH, OW), the winning tap
    a * kernel_w + b: the first maximum, or the first NaN (-1 where every tap is -inf); for a
    training backward (the bookkeeping costs the loop its speed, so evaluation skips it)."""
    height, width, out_w = planes.shape[1], planes.shape[2], out.shape[2]
    for p in numba.prange(planes.shape[0]):
        for i in range(out.shape[1]):
            best = np.full(out_w, -np.inf, planes.dtype)
            which = np.full(out_w, -1, np.int32)
            for a in range(kernel_h):
                row = i * stride_h - top + a * dilation_h
                if 0 <= row < height:
                    for b in range(kernel_w):
                        offset = b * dilation_w - left
                        first, last = _run_of_columns(out_w, width, stride_w, offset)
                        source = planes[p, row, max(first * stride_w + offset, 0):]
                        tap = a * kernel_w + b
                        for j in range(last - first):
                            value = source[j * stride_w]
                            current = best[first + j]
                            take = value > current or (value != value and current == current)
                            best[first + j] = value if take else current
                            which[first + j] = tap if take else which[first + j]
            out[p, i, :] = best
            winners[p, i, :] = which


@numba.njit(parallel=True, cache=True)
def max_pool_planes_backward(grad_output, winners, kernel_w, stride_h, stride_w, dilation_h, dilation_w, top,
                             left, grad_planes):
    """grad_planes (P, H, W), zeroed here, gets each output's gradient at its winning tap (a
    window of -inf only: at its first tap inside the map, as the first maximum)."""
    height, width = grad_planes.shape[1], grad_planes.shape[2]
    for p in numba.prange(grad_planes.shape[0]):
        grad_planes[p] = 0
        for i in range(grad_output.shape[1]):
            for j in range(grad_output.shape[2]):
                tap = winners[p, i, j]
                if tap < 0:  # no tap beat -inf: the first one inside the map
                    tap = 0
                    while True:
                        row = i * stride_h - top + (tap // kernel_w) * dilation_h
                        col = j * stride_w - left + (tap % kernel_w) * dilation_w
                        if 0 <= row < height and 0 <= col < width:
                            break
                        tap += 1
                row = i * stride_h - top + (tap // kernel_w) * dilation_h
                col = j * stride_w - left + (tap % kernel_w) * dilation_w
                grad_planes[p, row, col] += grad_output[p, i, j]
