"""MaxPool2d's compiled kernel for channels-first maps (imported on first use, through
:func:`npconv.compiled.kernels`).

On (N, C, H, W) memory a window's taps along a row are ``stride`` elements apart, and NumPy's
maximum over strided views ran at about 2.4 ns an element (ResNet's stem pool at batch 8:
35 ms); this loop reads each plane once per window row, the planes split among the threads.
Padding is -inf: a tap outside the map is skipped.  NaN wins, as in PyTorch.
"""

import numba
import numpy as np


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
                if row < 0 or row >= height:
                    continue
                for b in range(kernel_w):
                    offset = b * dilation_w - left  # output j reads column j * stride_w + offset
                    first = max(0, (stride_w - 1 - offset) // stride_w)
                    last = min(out_w, (width - 1 - offset) // stride_w + 1)
                    if last <= first:
                        continue
                    source = planes[p, row, first * stride_w + offset:]
                    for j in range(last - first):
                        value = source[j * stride_w]
                        current = best[first + j]
                        best[first + j] = value if (value > current or value != value) else current  # NaN wins
            out[p, i, :] = best
