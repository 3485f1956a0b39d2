"""The deformable convolution engine: operands validated by a :class:`DeformSpec`, in; arrays out.

Per image, the planes are transposed channels-last once; then per run of output positions
(about :data:`CHUNK_TARGET_BYTES` of columns, under the workspace cap) a compiled kernel builds
the table of sample points, another gathers the columns ``(groups, run, K, C/groups)`` and one
GEMM per weight group writes the run's outputs.  The backward walks the same runs: the weight
gradient is ``grad_output @ columns``, the column gradient ``grad_output^T @ weight``, which
the kernels scatter to the input and reduce to the offset and mask gradients.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import compiled, numerics, threads, workspace
from ..arrays import compute_dtypes
from .deform_spec import DeformSpec

__all__ = ["DeformConvGrads", "deform_conv", "deform_conv_backward", "sample_columns", "CHUNK_TARGET_BYTES"]


class DeformConvGrads(NamedTuple):
    """The five gradients of a deformable convolution (``mask`` / ``bias``: None where absent)."""

    input: np.ndarray
    offset: np.ndarray
    mask: np.ndarray | None
    weight: np.ndarray
    bias: np.ndarray | None


def _kernels() -> Any:
    if not compiled.available():  # pragma: no cover - Numba is a dependency
        raise RuntimeError("npconv.ops.deform_conv2d needs Numba's compiled kernels (pip install numba)")
    return compiled.kernels("npconv.ops.deform_kernels")


CHUNK_TARGET_BYTES = 8 * 2**20  # columns of a run of positions: about the L3 cache, as im2col_gemm's boxes


class _Prepared(NamedTuple):
    """One call's operands in the compute dtype, and the per-call constants of the kernels."""

    x: np.ndarray             # (N, C, H*W)
    offset: np.ndarray        # (N, 2*G*K, P)
    mask: np.ndarray          # (N, G*K, P); (1, G*K, 1) of zeros, unread, when not masked
    row_base: np.ndarray      # (K, oh): oy*sh - top + i*dh
    col_base: np.ndarray      # (K, ow)
    channel_runs: np.ndarray  # (R, 4): weight group, offset group, first and end channel
    one: np.floating
    run: int                  # output positions per run


def _prepare(spec: DeformSpec, dtype: np.dtype, x: np.ndarray, offset: np.ndarray, mask: np.ndarray | None,
             backward: bool = False) -> _Prepared:
    n, taps, kw = spec.batch, spec.taps, spec.kernel_size[1]

    def flat(a: np.ndarray, rows: int) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype).reshape(n, rows, a[0, 0].size if n else 0)

    i, j = np.divmod(np.arange(taps), kw)
    (sh, sw), (dh, dw), ((top, _), (left, _)) = spec.stride, spec.dilation, spec.pads
    row_base = (np.arange(spec.out_size[0]) * sh - top + (i * dh)[:, None]).astype(dtype)
    col_base = (np.arange(spec.out_size[1]) * sw - left + (j * dw)[:, None]).astype(dtype)
    masks = flat(mask, spec.offset_groups * taps) if mask is not None else np.zeros((1, spec.offset_groups * taps, 1), dtype)
    run = _run_length(spec, dtype, backward)
    return _Prepared(flat(x, spec.in_channels), flat(offset, 2 * spec.offset_groups * taps), masks,
                     row_base, col_base, _channel_runs(spec), dtype.type(1), run)


def _run_length(spec: DeformSpec, dtype: np.dtype, backward: bool) -> int:
    """Output positions per run: their scratch (columns, and their gradient in the backward; the
    sample table) within the chunk target and, with the channels-last planes (and their
    gradient), under the workspace cap; refused before any work where one position does not fit."""
    table = spec.offset_groups * spec.taps * (4 * 8 + 7 * dtype.itemsize)  # corners, weights, fracs, mask
    copies = 2 if backward else 1
    per_position = copies * spec.in_channels * spec.taps * dtype.itemsize + table
    planes = copies * (spec.in_size[0] * spec.in_size[1] + 1) * spec.in_channels * dtype.itemsize
    workspace.require({"deformable conv": planes + per_position})
    budget = min(CHUNK_TARGET_BYTES, workspace.limit() - planes)
    return max(1, min(_positions(spec), budget // per_position))


def _channel_runs(spec: DeformSpec) -> np.ndarray:
    """(weight group, offset group, first, end) for each run of channels sharing both groups."""
    per_weight, per_offset = spec.in_channels // spec.groups, spec.channels_per_offset_group
    edges = sorted(set(range(0, spec.in_channels, per_weight)) | set(range(0, spec.in_channels, per_offset)))
    ends = edges[1:] + [spec.in_channels]
    return np.array([(c0 // per_weight, c0 // per_offset, c0, c1) for c0, c1 in zip(edges, ends)], np.int64)


def _positions(spec: DeformSpec) -> int:
    return spec.out_size[0] * spec.out_size[1]


def _threads() -> int:
    import numba
    return numba.get_num_threads()


def _runs(spec: DeformSpec, prep: _Prepared) -> list[slice]:
    """Runs of output positions (row-major) whose columns stay within the chunk target."""
    total = _positions(spec)
    return [slice(first, min(first + prep.run, total)) for first in range(0, total, prep.run)]


def _channels_last_planes(k: Any, prep: _Prepared, n: int) -> np.ndarray:
    """Image n as (H*W + 1, C): each pixel's channels contiguous; the extra last row is zeros."""
    planes = np.empty((prep.x.shape[2] + 1, prep.x.shape[1]), prep.x.dtype)
    k.transpose(prep.x[n], planes[:-1])
    planes[-1] = 0
    return planes


class _Table(NamedTuple):
    corners: np.ndarray  # uint64 (run, G, K, 4)
    weights: np.ndarray  # (run, G, K, 4)
    fracs: np.ndarray    # (run, G, K, 2)
    mask: np.ndarray     # (run, G*K) of the mask, or the unread zeros
    run: slice


def _table(k: Any, spec: DeformSpec, prep: _Prepared, n: int, run: slice) -> _Table:
    """Image n's corners, weights and fractions for one run of output positions."""
    shape = (run.stop - run.start, spec.offset_groups, spec.taps)
    corners = np.empty(shape + (4,), np.uint64)
    weights, fracs = np.empty(shape + (4,), prep.one.dtype), np.empty(shape + (2,), prep.one.dtype)
    k.sample_table(prep.offset[n], prep.row_base, prep.col_base, run.start, spec.in_size[0], spec.in_size[1],
                   prep.one, corners, weights, fracs)
    mask = np.ascontiguousarray(prep.mask[n, :, run].T) if spec.masked else prep.mask[0].T
    return _Table(corners, weights, fracs, mask, run)


def _run_columns(k: Any, spec: DeformSpec, prep: _Prepared, planes: np.ndarray, table: _Table,
                 out: np.ndarray) -> np.ndarray:
    """The columns (Gw, run, K, C/Gw) of one run, into ``out``."""
    k.gather_columns(planes, table.mask, spec.masked, table.corners, table.weights, prep.channel_runs,
                     spec.in_channels // spec.groups, out)
    return out


def _buffer(spec: DeformSpec, dtype: np.dtype, count: int) -> np.ndarray:
    """Columns (or their gradient) of ``count`` positions: (Gw, count, K*C/Gw)."""
    return np.empty((spec.groups, count, spec.taps * (spec.in_channels // spec.groups)), dtype)


def _of_run(buffer: np.ndarray, count: int, spec: DeformSpec) -> np.ndarray:
    """A contiguous (Gw, count, K, C/Gw) view at the start of a buffer."""
    size = spec.groups * count * buffer.shape[2]
    return buffer.reshape(-1)[:size].reshape(spec.groups, count, spec.taps, -1)


def _tap_major_weight(weight: np.ndarray, spec: DeformSpec, dtype: np.dtype) -> np.ndarray:
    """(Gw, C_out/Gw, K*C/Gw): each group's weight, taps outer, as the columns are laid out."""
    c_out, per_group = spec.out_channels, spec.in_channels // spec.groups
    w = np.asarray(weight, dtype=dtype).reshape(c_out, per_group, spec.taps).transpose(0, 2, 1)
    return np.ascontiguousarray(w).reshape(spec.groups, c_out // spec.groups, spec.taps * per_group)


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """(rows, P) -> (groups, rows/groups, P), a view."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


def deform_conv(input: np.ndarray, offset: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                mask: np.ndarray | None, spec: DeformSpec) -> np.ndarray:
    """The forward pass for operands already validated by ``spec`` (:meth:`DeformSpec.of`).

    Returns
    -------
    numpy.ndarray
        (N, C_out, oh, ow) in the operands' result dtype.
    """
    dtype, result = compute_dtypes(input, offset, weight, bias, mask)
    k, prep = _kernels(), _prepare(spec, dtype, input, offset, mask)
    with threads.limited(), numerics.quiet():
        out = _forward(k, spec, prep, _tap_major_weight(weight, spec, dtype))
        if bias is not None:
            out += bias.astype(dtype).reshape(1, -1, 1)
    return out.reshape((spec.batch, spec.out_channels) + spec.out_size).astype(result, copy=False)


def _forward(k: Any, spec: DeformSpec, prep: _Prepared, w: np.ndarray) -> np.ndarray:
    """(N, C_out, P) without the bias: per image and run, the columns and one GEMM per group."""
    out = np.empty((spec.batch, spec.out_channels, _positions(spec)), prep.one.dtype)
    buffer = _buffer(spec, prep.one.dtype, prep.run)
    for n in range(spec.batch):
        planes = _channels_last_planes(k, prep, n)
        for run in _runs(spec, prep):
            count = run.stop - run.start
            columns = _run_columns(k, spec, prep, planes, _table(k, spec, prep, n, run), _of_run(buffer, count, spec))
            np.matmul(w, columns.reshape(spec.groups, count, -1).transpose(0, 2, 1),
                      out=_grouped(out[n, :, run], spec.groups))
    return out


def sample_columns(input: np.ndarray, offset: np.ndarray, mask: np.ndarray | None, spec: DeformSpec) -> np.ndarray:
    """The sampled, mask-scaled columns ``(N, C_in*kh*kw, oh*ow)``, row ``c*kh*kw + i*kw + j``.

    What the weight multiplies: ``deform_conv2d`` is, per weight group, ``weight_g`` (as
    ``(C_out/g, C_in/g*kh*kw)``) times these rows, plus the bias.  In the compute dtype of
    ``input``, ``offset`` and ``mask``.
    """
    dtype, _ = compute_dtypes(input, offset, mask)
    k, prep = _kernels(), _prepare(spec, dtype, input, offset, mask)
    out = np.empty((spec.batch, spec.groups, spec.in_channels // spec.groups, spec.taps, _positions(spec)), dtype)
    buffer = _buffer(spec, dtype, prep.run)
    with threads.limited(), numerics.quiet():
        for n in range(spec.batch):
            planes = _channels_last_planes(k, prep, n)
            for run in _runs(spec, prep):
                columns = _run_columns(k, spec, prep, planes, _table(k, spec, prep, n, run),
                                       _of_run(buffer, run.stop - run.start, spec))
                out[n, ..., run] = columns.transpose(0, 3, 2, 1)
    return out.reshape(spec.batch, spec.in_channels * spec.taps, _positions(spec))


def _check_grad_output(spec: DeformSpec, shape: tuple[int, ...]) -> None:
    expected = (spec.batch, spec.out_channels) + spec.out_size
    if tuple(shape) != expected:
        raise ValueError(f"{spec.conv.op}: grad_output has shape {list(shape)}, but this deformable convolution "
                         f"gives {list(expected)}")


def deform_conv_backward(grad_output: np.ndarray, input: np.ndarray, offset: np.ndarray, weight: np.ndarray,
                         mask: np.ndarray | None, spec: DeformSpec, *, with_bias: bool = True) -> DeformConvGrads:
    """The five gradients for operands already validated by ``spec`` (see :func:`deform_conv2d_backward`)."""
    _check_grad_output(spec, grad_output.shape)
    dtype, result = compute_dtypes(grad_output, input, offset, weight, mask)
    k, prep = _kernels(), _prepare(spec, dtype, input, offset, mask, backward=True)
    w = _tap_major_weight(weight, spec, dtype)
    gy = np.ascontiguousarray(grad_output, dtype=dtype).reshape(spec.batch, spec.out_channels, _positions(spec))
    grads = _empty_grads(spec, dtype, w.shape)
    buffers = _buffer(spec, dtype, prep.run), _buffer(spec, dtype, prep.run)
    with threads.limited(), numerics.quiet():
        for n in range(spec.batch):
            planes, grads["planes"][:] = _channels_last_planes(k, prep, n), 0
            for run in _runs(spec, prep):
                _backward_run(k, spec, prep, planes, _table(k, spec, prep, n, run), w, gy[n], buffers, grads, n)
            k.transpose(grads["planes"][:-1], grads["input"][n])
        bias_grad = gy.sum(axis=(0, 2)).astype(result) if with_bias else None

    def shaped(name: str, like: np.ndarray) -> np.ndarray:
        return grads[name].reshape(like.shape).astype(result, copy=False)

    per_group = spec.in_channels // spec.groups
    grads["weight"] = grads["weight"].reshape(spec.out_channels, spec.taps, per_group).transpose(0, 2, 1)
    return DeformConvGrads(shaped("input", input), shaped("offset", offset),
                           None if mask is None else shaped("mask", mask), shaped("weight", weight),
                           bias_grad)


def _empty_grads(spec: DeformSpec, dtype: np.dtype, weight_matrices: tuple[int, ...]) -> dict[str, np.ndarray]:
    n, positions, pixels = spec.batch, _positions(spec), spec.in_size[0] * spec.in_size[1]
    return {"planes": np.zeros((pixels + 1, spec.in_channels), dtype),
            "input": np.zeros((n, spec.in_channels, pixels), dtype),
            "offset": np.zeros((n, 2 * spec.offset_groups * spec.taps, positions), dtype),
            "mask": np.zeros((n, spec.offset_groups * spec.taps, positions), dtype),
            "weight": np.zeros(weight_matrices, dtype)}


def _backward_run(k: Any, spec: DeformSpec, prep: _Prepared, planes: np.ndarray, table: _Table, w: np.ndarray,
                  gy_n: np.ndarray, buffers: tuple[np.ndarray, np.ndarray], grads: dict[str, np.ndarray],
                  n: int) -> None:
    """One run's share of every gradient: two GEMMs, the scatter to the input, the coordinate sums."""
    run, count = table.run, table.run.stop - table.run.start
    columns = _run_columns(k, spec, prep, planes, table, _of_run(buffers[0], count, spec))
    gy_run = _grouped(gy_n[:, run], spec.groups)
    grads["weight"] += gy_run @ columns.reshape(spec.groups, count, -1)
    grad_columns = _of_run(buffers[1], count, spec)
    np.matmul(gy_run.transpose(0, 2, 1), w, out=grad_columns.reshape(spec.groups, count, -1))
    per_group = spec.in_channels // spec.groups
    k.scatter_input_grad(grad_columns, table.mask, spec.masked, table.corners, table.weights, prep.channel_runs,
                         per_group, prep.one, max(1, min(spec.in_channels // 16, _threads())), grads["planes"])
    k.coordinate_grads(planes, grad_columns, table.mask, spec.masked, table.corners, table.fracs,
                       prep.channel_runs, per_group, prep.one, run.start, grads["offset"][n], grads["mask"][n])
