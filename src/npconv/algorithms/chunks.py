"""What the GEMM-based algorithms share (im2col + GEMM, pointwise, Winograd): boxes of output
positions sized for the cache and the workspace cap, a box of an NC(spatial) array as a strided
matrix BLAS writes in place, and the gradients' partial sums added through a small scratch."""

from __future__ import annotations

import math

import numpy as np

from .. import workspace

def chunks(n_images: int, out_spatial, cell_bytes: int, target: int, fixed: int = 0):
    """Boxes (images, *out positions) whose buffers, ``cell_bytes`` per image and output
    position, stay under the cap less the ``fixed`` scratch the caller holds besides, and
    under the caller's ``target`` (each algorithm's cache-sized aim) down to one output row of
    one image: only the cap splits a row (see :func:`npconv.workspace.boxes`)."""
    budget = workspace.limit() - fixed

    def fits(extents):
        size = math.prod(extents) * cell_bytes
        return size <= budget and (size <= target or extents[:2] == (1, 1))
    return workspace.boxes((n_images,) + tuple(out_spatial), fits)


def matrix(view: np.ndarray, rows: int) -> np.ndarray:
    """(rows, L) view of a box of an NC(spatial) array: single indices, a run, whole dims
    merge into one axis without a copy (a copy would be written to and lost)."""
    flat = view.reshape(rows, -1)
    if flat.size and not np.may_share_memory(flat, view):
        raise AssertionError(f"a box of shape {view.shape} is not a strided matrix")
    return flat


def part_rows(rows: int, row_bytes: int, spare: int) -> int:
    """Rows of a gradient's partial-sum scratch: all of them if they fit in ``spare`` bytes,
    else as many as do (at least one)."""
    return max(1, min(rows, spare // max(row_bytes, 1)))


def add_product(total, a, b, first: bool, rows: int) -> None:
    """total (M, K) = a (M, L) @ b (L, K) when ``first``, else total += it through a scratch of
    ``rows`` rows of total at a time (the product is never formed whole beside the total)."""
    if first:
        np.matmul(a, b, out=total)
        return
    part = workspace.scratch("gradient part", (rows, total.shape[1]), total.dtype)
    for start in range(0, total.shape[0], rows):
        block = part[:min(rows, total.shape[0] - start)]
        np.matmul(a[start:start + rows], b, out=block)
        total[start:start + rows] += block
