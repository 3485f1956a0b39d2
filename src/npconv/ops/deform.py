"""Deformable convolution, v1 and v2 (modulated): torchvision's ``deform_conv2d`` on npconv's engine.

Each tap of the kernel samples the input at its regular place plus a learned fractional
offset, by bilinear interpolation, optionally scaled by a learned mask (v2); the sampled
values of a window are then combined by the weight exactly as a plain convolution combines
the window itself.  So the engine is the plain im2col one with another column builder:

1. a compiled kernel (``deform_kernels``) builds the sampled columns ``(C_in*kh*kw, oh*ow)``
   of one image, the bilinear gather fused with the mask;
2. one GEMM per weight group: ``out_g = weight_g (C_out/g, C_in/g*kh*kw) @ columns_g``;
3. the bias is added last.

The gradients are the same operations backwards: the weight gradient is the GEMM of
``grad_output`` with the columns, the column gradient the GEMM of the weight's transpose with
``grad_output``, which the bilinear weights scatter back to the input; the offset and mask
gradients are the derivatives of each sample, summed over its offset group's channels.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import numpy.typing as npt

from .. import compiled, workspace
from ..arrays import as_real_array, compute_dtypes
from .deform_spec import DeformSpec

__all__ = ["deform_conv2d", "deform_conv2d_backward", "DeformConvGrads", "deform_conv", "deform_conv_backward",
           "sample_columns"]

IntPair = int | Sequence[int]


class DeformConvGrads(NamedTuple):
    """The five gradients of a deformable convolution (``mask`` / ``bias``: None where absent)."""

    input: np.ndarray
    offset: np.ndarray
    mask: np.ndarray | None
    weight: np.ndarray
    bias: np.ndarray | None


def _kernels():
    if not compiled.available():  # pragma: no cover - Numba is a dependency
        raise RuntimeError("npconv.ops.deform_conv2d needs Numba's compiled kernels (pip install numba)")
    return compiled.kernels("npconv.ops.deform_kernels")


def _read_operands(op: str, **operands: npt.ArrayLike | None) -> dict[str, np.ndarray | None]:
    """Each operand as a real array; only ``bias`` and ``mask`` may be None."""
    return {name: None if value is None and name in ("bias", "mask") else as_real_array(value, name, op)
            for name, value in operands.items()}


def _spec_of(op: str, arrays: dict[str, np.ndarray | None], stride: IntPair, padding: IntPair,
             dilation: IntPair) -> DeformSpec:
    shape = {name: None if a is None else a.shape for name, a in arrays.items()}
    return DeformSpec.of(shape["input"], shape["offset"], shape["weight"], mask_shape=shape["mask"],
                         bias_shape=shape["bias"], stride=stride, padding=padding, dilation=dilation, op=op)


def deform_conv2d(input: npt.ArrayLike, offset: npt.ArrayLike, weight: npt.ArrayLike,
                  bias: npt.ArrayLike | None = None, stride: IntPair = (1, 1), padding: IntPair = (0, 0),
                  dilation: IntPair = (1, 1), mask: npt.ArrayLike | None = None) -> np.ndarray:
    """Deformable convolution v1 (no mask) or v2 (with mask), as ``torchvision.ops.deform_conv2d``.

    Tap ``(i, j)`` of output ``(oy, ox)`` samples the input at
    ``y = oy*stride_h - pad_h + i*dilation_h + dy`` and ``x = ox*stride_w - pad_w + j*dilation_w + dx``
    by bilinear interpolation: the point counts only if ``-1 < y < H`` and ``-1 < x < W``, and
    each of its four corners outside the image contributes zero.  With a mask the sample is
    multiplied by it.  The samples of a window are then weighted and summed as in
    :func:`npconv.functional.conv2d`, and the bias is added last.  Zero offsets and a unit (or
    no) mask give ``conv2d`` exactly.

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W).
    offset : array_like
        (N, 2*G*kh*kw, oh, ow): for offset group g and tap t = i*kw + j, channel
        ``g*2*kh*kw + 2*t`` is the row offset dy and the next one the column offset dx.  G, the
        offset groups, is ``offset.shape[1] // (2*kh*kw)``; input channel c belongs to offset
        group ``c // (C_in / G)``, whatever the weight groups.
    weight : array_like
        (C_out, C_in/groups, kh, kw); the weight groups are ``C_in // weight.shape[1]``.
    bias : array_like, optional
        (C_out,).
    stride, padding, dilation : int or pair of ints
        As in conv2d (padding: zeros, the same on both sides of a dim).
    mask : array_like, optional
        (N, G*kh*kw, oh, ow), channel ``g*kh*kw + t``.  None: deformable conv v1.

    Returns
    -------
    numpy.ndarray
        (N, C_out, oh, ow), in the input's dtype (float32 stays float32; see :mod:`npconv.arrays`).

    Raises
    ------
    ConvRuleError
        Before any work, for every shape or group mismatch (the rules of
        :mod:`npconv.ops.deform_spec` and of :class:`npconv.ConvSpec`).
    TypeError
        An operand that is not real numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv.ops import deform_conv2d
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 1, 1))
    >>> offset = np.full((1, 2, 4, 4), 0.5)          # every sample half a pixel down and right
    >>> deform_conv2d(x, offset, w)[0, 0, :2, :2]     # [0, 0, 0, 0]: the mean of x[0:2, 0:2]
    array([[2.5, 3.5],
           [6.5, 7.5]])
    """
    arrays = _read_operands("deform_conv2d", input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    spec = _spec_of("deform_conv2d", arrays, stride, padding, dilation)
    return deform_conv(arrays["input"], arrays["offset"], arrays["weight"], arrays["bias"], arrays["mask"], spec)


def deform_conv2d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike, offset: npt.ArrayLike,
                           weight: npt.ArrayLike, bias: npt.ArrayLike | None = None, stride: IntPair = (1, 1),
                           padding: IntPair = (0, 0), dilation: IntPair = (1, 1),
                           mask: npt.ArrayLike | None = None) -> DeformConvGrads:
    """The gradients of :func:`deform_conv2d` (same arguments, ``grad_output`` first).

    The derivatives are torchvision's: bilinear in each cell, taken on the floor side at
    integer sample coordinates; a sample point outside ``-1 < y < H``, ``-1 < x < W`` has no
    offset or mask gradient.

    Returns
    -------
    DeformConvGrads
        ``(input, offset, mask, weight, bias)``; ``mask`` is None without a mask and ``bias``
        None without a bias.

    Raises
    ------
    ConvRuleError
        As :func:`deform_conv2d`.
    ValueError
        ``grad_output`` not of the output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv.ops import deform_conv2d_backward
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> grads = deform_conv2d_backward(np.ones((1, 1, 4, 4)), x, np.full((1, 2, 4, 4), 0.5), np.ones((1, 1, 1, 1)))
    >>> grads.offset[0, :, 0, 0]                      # d(sum)/d(dy), d(sum)/d(dx) at the first output
    array([4., 1.])
    """
    arrays = _read_operands("deform_conv2d_backward", input=input, offset=offset, weight=weight, bias=bias,
                            mask=mask)
    spec = _spec_of("deform_conv2d_backward", arrays, stride, padding, dilation)
    gy = as_real_array(grad_output, "grad_output", "deform_conv2d_backward")
    return deform_conv_backward(gy, arrays["input"], arrays["offset"], arrays["weight"], arrays["mask"], spec,
                                with_bias=bias is not None)


# ---- the engine: validated operands and their spec ------------------------------------------

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


def _prepare(spec: DeformSpec, dtype: np.dtype, x: np.ndarray, offset: np.ndarray,
             mask: np.ndarray | None) -> _Prepared:
    n, taps, kw = spec.batch, spec.taps, spec.kernel_size[1]

    def flat(a: np.ndarray, rows: int) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype).reshape(n, rows, a[0, 0].size if n else 0)

    i, j = np.divmod(np.arange(taps), kw)
    (sh, sw), (dh, dw), ((top, _), (left, _)) = spec.stride, spec.dilation, spec.pads
    row_base = (np.arange(spec.out_size[0]) * sh - top + (i * dh)[:, None]).astype(dtype)
    col_base = (np.arange(spec.out_size[1]) * sw - left + (j * dw)[:, None]).astype(dtype)
    masks = flat(mask, spec.offset_groups * taps) if mask is not None else np.zeros((1, spec.offset_groups * taps, 1), dtype)
    per_position = 2 * spec.in_channels * taps * dtype.itemsize  # the columns and their gradient
    run = max(1, min(_positions(spec), min(CHUNK_TARGET_BYTES, workspace.limit()) // per_position))
    return _Prepared(flat(x, spec.in_channels), flat(offset, 2 * spec.offset_groups * taps), masks,
                     row_base, col_base, _channel_runs(spec), dtype.type(1), run)


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


def _channels_last_planes(k, prep: _Prepared, n: int) -> np.ndarray:
    """Image n as (H*W + 1, C): each pixel's channels contiguous; the extra last row is zeros."""
    planes = np.empty((prep.x.shape[2] + 1, prep.x.shape[1]), prep.x.dtype)
    k.transpose(prep.x[n], planes[:-1])
    planes[-1] = 0
    return planes


class _Table(NamedTuple):
    corners: np.ndarray  # uint32 (run, G, K, 4)
    weights: np.ndarray  # (run, G, K, 4)
    fracs: np.ndarray    # (run, G, K, 2)
    mask: np.ndarray     # (run, G*K) of the mask, or the unread zeros
    run: slice


def _table(k, spec: DeformSpec, prep: _Prepared, n: int, run: slice) -> _Table:
    """Image n's corners, weights and fractions for one run of output positions."""
    shape = (run.stop - run.start, spec.offset_groups, spec.taps)
    corners = np.empty(shape + (4,), np.uint32)
    weights, fracs = np.empty(shape + (4,), prep.one.dtype), np.empty(shape + (2,), prep.one.dtype)
    k.sample_table(prep.offset[n], prep.row_base, prep.col_base, run.start, spec.in_size[0], spec.in_size[1],
                   prep.one, corners, weights, fracs)
    mask = np.ascontiguousarray(prep.mask[n, :, run].T) if spec.masked else prep.mask[0].T
    return _Table(corners, weights, fracs, mask, run)


def _run_columns(k, spec: DeformSpec, prep: _Prepared, planes: np.ndarray, table: _Table,
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
    w = _tap_major_weight(weight, spec, dtype)
    out = np.empty((spec.batch, spec.out_channels, _positions(spec)), dtype)
    buffer = _buffer(spec, dtype, prep.run)
    for n in range(spec.batch):
        planes = _channels_last_planes(k, prep, n)
        for run in _runs(spec, prep):
            count = run.stop - run.start
            columns = _run_columns(k, spec, prep, planes, _table(k, spec, prep, n, run), _of_run(buffer, count, spec))
            np.matmul(w, columns.reshape(spec.groups, count, -1).transpose(0, 2, 1),
                      out=_grouped(out[n, :, run], spec.groups))
    if bias is not None:
        out += bias.astype(dtype).reshape(1, -1, 1)
    return out.reshape((spec.batch, spec.out_channels) + spec.out_size).astype(result, copy=False)


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
    for n in range(spec.batch):
        planes = _channels_last_planes(k, prep, n)
        for run in _runs(spec, prep):
            columns = _run_columns(k, spec, prep, planes, _table(k, spec, prep, n, run),
                                   _of_run(buffer, run.stop - run.start, spec))
            out[n, ..., run] = columns.transpose(0, 3, 2, 1)
    return out.reshape(spec.batch, spec.in_channels * spec.taps, -1)


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
    k, prep = _kernels(), _prepare(spec, dtype, input, offset, mask)
    w = _tap_major_weight(weight, spec, dtype)
    gy = np.ascontiguousarray(grad_output, dtype=dtype).reshape(spec.batch, spec.out_channels, _positions(spec))
    grads = _empty_grads(spec, dtype, w.shape)
    buffers = _buffer(spec, dtype, prep.run), _buffer(spec, dtype, prep.run)
    for n in range(spec.batch):
        planes, grads["planes"][:] = _channels_last_planes(k, prep, n), 0
        for run in _runs(spec, prep):
            _backward_run(k, spec, prep, planes, _table(k, spec, prep, n, run), w, gy[n], buffers, grads, n)
        k.transpose(grads["planes"][:-1], grads["input"][n])

    def shaped(name: str, like: np.ndarray) -> np.ndarray:
        return grads[name].reshape(like.shape).astype(result, copy=False)

    per_group = spec.in_channels // spec.groups
    grads["weight"] = grads["weight"].reshape(spec.out_channels, spec.taps, per_group).transpose(0, 2, 1)
    return DeformConvGrads(shaped("input", input), shaped("offset", offset),
                           None if mask is None else shaped("mask", mask), shaped("weight", weight),
                           gy.sum(axis=(0, 2)).astype(result) if with_bias else None)


def _empty_grads(spec: DeformSpec, dtype: np.dtype, weight_matrices: tuple[int, ...]) -> dict[str, np.ndarray]:
    n, positions, pixels = spec.batch, _positions(spec), spec.in_size[0] * spec.in_size[1]
    return {"planes": np.zeros((pixels + 1, spec.in_channels), dtype),
            "input": np.zeros((n, spec.in_channels, pixels), dtype),
            "offset": np.zeros((n, 2 * spec.offset_groups * spec.taps, positions), dtype),
            "mask": np.zeros((n, spec.offset_groups * spec.taps, positions), dtype),
            "weight": np.zeros(weight_matrices, dtype)}


def _backward_run(k, spec: DeformSpec, prep: _Prepared, planes: np.ndarray, table: _Table, w: np.ndarray,
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
