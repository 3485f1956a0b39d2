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

from .. import compiled
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
    return {name: None if value is None else as_real_array(value, name, op) for name, value in operands.items()}


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
    >>> deform_conv2d(x, offset, w)[0, 0, 0, 0]       # the mean of x[0:2, 0:2]
    2.5
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

class _Prepared(NamedTuple):
    """One call's operands in the compute dtype, and the per-call constants of the kernels."""

    x: np.ndarray          # (N, C, H*W)
    offset: np.ndarray     # (N, 2*G*K, P)
    mask: np.ndarray       # (N, G*K, P), or (1, 1, 1) unread when not masked
    row_base: np.ndarray   # (K, oh): oy*sh - top + i*dh
    col_base: np.ndarray   # (K, ow)
    one: np.floating
    chunks: int


def _prepare(spec: DeformSpec, dtype: np.dtype, x: np.ndarray, offset: np.ndarray,
             mask: np.ndarray | None) -> _Prepared:
    n, positions = spec.batch, spec.out_size[0] * spec.out_size[1]

    def flat(a: np.ndarray, rows: int) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype).reshape(n, rows, -1)

    taps, (kh, kw) = spec.taps, spec.kernel_size
    i, j = np.divmod(np.arange(taps), kw)
    (sh, sw), (dh, dw), ((top, _), (left, _)) = spec.stride, spec.dilation, spec.pads
    row_base = (np.arange(spec.out_size[0]) * sh - top + (i * dh)[:, None]).astype(dtype)
    col_base = (np.arange(spec.out_size[1]) * sw - left + (j * dw)[:, None]).astype(dtype)
    chunks = max(1, min(spec.in_channels, 4 * _threads()))
    masked = flat(mask, spec.offset_groups * taps) if mask is not None else np.zeros((1, 1, 1), dtype)
    return _Prepared(flat(x, spec.in_channels), flat(offset, 2 * spec.offset_groups * taps), masked,
                     row_base, col_base, dtype.type(1), chunks)


def _threads() -> int:
    import numba
    return numba.get_num_threads()


def _table(k, spec: DeformSpec, prep: _Prepared, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The corners and fractions of image n's samples (see ``deform_kernels``)."""
    shape = (spec.offset_groups, spec.taps, spec.out_size[0] * spec.out_size[1])
    corners = np.empty(shape + (4,), np.int64)
    fracs = np.empty(shape + (2,), prep.row_base.dtype)
    k.sample_table(prep.offset[n], prep.row_base, prep.col_base, spec.in_size[0], spec.in_size[1],
                   spec.kernel_size[1], spec.out_size[1], corners, fracs)
    return corners, fracs


def _image_columns(k, spec: DeformSpec, prep: _Prepared, n: int, table, out: np.ndarray) -> np.ndarray:
    corners, fracs = table
    k.gather_columns(prep.x[n], prep.mask[n if spec.masked else 0], spec.masked, corners, fracs, prep.one,
                     spec.channels_per_offset_group, prep.chunks, out)
    return out


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """(rows, P) -> (groups, rows/groups, P), a view."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


def _weight_matrices(weight: np.ndarray, spec: DeformSpec, dtype: np.dtype) -> np.ndarray:
    """(G_w, C_out/G_w, C_in/G_w*kh*kw): each group's weight as the GEMM's left operand."""
    return np.ascontiguousarray(weight, dtype=dtype).reshape(spec.groups, spec.out_channels // spec.groups, -1)


def _columns_buffer(spec: DeformSpec, dtype: np.dtype) -> np.ndarray:
    return np.empty((spec.in_channels * spec.taps, spec.out_size[0] * spec.out_size[1]), dtype)


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
    w = _weight_matrices(weight, spec, dtype)
    out = np.empty((spec.batch, spec.out_channels) + spec.out_size, dtype)
    columns = _columns_buffer(spec, dtype)
    for n in range(spec.batch):
        _image_columns(k, spec, prep, n, _table(k, spec, prep, n), columns)
        np.matmul(w, _grouped(columns, spec.groups), out=_grouped(out[n].reshape(spec.out_channels, -1), spec.groups))
    if bias is not None:
        out += bias.astype(dtype).reshape(1, -1, 1, 1)
    return out.astype(result, copy=False)


def sample_columns(input: np.ndarray, offset: np.ndarray, mask: np.ndarray | None, spec: DeformSpec) -> np.ndarray:
    """The sampled, mask-scaled columns ``(N, C_in*kh*kw, oh*ow)``, row ``c*kh*kw + i*kw + j``.

    The right operand of the per-group GEMM: ``deform_conv2d`` is ``weight_g @ columns_g``
    plus the bias.  In the compute dtype of ``input``, ``offset`` and ``mask``.
    """
    dtype, _ = compute_dtypes(input, offset, mask)
    k, prep = _kernels(), _prepare(spec, dtype, input, offset, mask)
    out = np.empty((spec.batch,) + _columns_buffer(spec, dtype).shape, dtype)
    for n in range(spec.batch):
        _image_columns(k, spec, prep, n, _table(k, spec, prep, n), out[n])
    return out


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
    w = _weight_matrices(weight, spec, dtype)
    gy = np.ascontiguousarray(grad_output, dtype=dtype).reshape(spec.batch, spec.out_channels, -1)
    grads = _empty_grads(spec, dtype, w.shape)
    columns, grad_columns = _columns_buffer(spec, dtype), _columns_buffer(spec, dtype)
    for n in range(spec.batch):
        table = _table(k, spec, prep, n)
        gy_n = _grouped(gy[n], spec.groups)
        grads["weight"] += gy_n @ _image_columns(k, spec, prep, n, table, columns).reshape(
            spec.groups, -1, columns.shape[1]).transpose(0, 2, 1)
        np.matmul(w.transpose(0, 2, 1), gy_n, out=_grouped(grad_columns, spec.groups))
        _scatter_back(k, spec, prep, n, table, grad_columns, grads)
    return DeformConvGrads(grads["input"].reshape(input.shape).astype(result, copy=False),
                           grads["offset"].reshape(offset.shape).astype(result, copy=False),
                           None if mask is None else grads["mask"].reshape(mask.shape).astype(result, copy=False),
                           grads["weight"].reshape(weight.shape).astype(result, copy=False),
                           gy.sum(axis=(0, 2)).astype(result) if with_bias else None)


def _empty_grads(spec: DeformSpec, dtype: np.dtype, weight_matrices: tuple[int, ...]) -> dict[str, np.ndarray]:
    n, positions = spec.batch, spec.out_size[0] * spec.out_size[1]
    return {"input": np.zeros((n, spec.in_channels, spec.in_size[0] * spec.in_size[1]), dtype),
            "offset": np.zeros((n, 2 * spec.offset_groups * spec.taps, positions), dtype),
            "mask": np.zeros((n, spec.offset_groups * spec.taps, positions), dtype),
            "weight": np.zeros(weight_matrices, dtype)}


def _scatter_back(k, spec: DeformSpec, prep: _Prepared, n: int, table, grad_columns: np.ndarray,
                  grads: dict[str, np.ndarray]) -> None:
    """Image n's input, offset and mask gradients from its column gradient."""
    corners, fracs = table
    mask_n = prep.mask[n if spec.masked else 0]
    k.scatter_input_grad(grad_columns, mask_n, spec.masked, corners, fracs, prep.one,
                         spec.channels_per_offset_group, prep.chunks, grads["input"][n])
    k.coordinate_grads(prep.x[n], grad_columns, mask_n, spec.masked, corners, fracs, prep.one,
                       spec.channels_per_offset_group, grads["offset"][n], grads["mask"][n])
