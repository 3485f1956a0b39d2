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

from ..arrays import as_real_array
from ..spec_parsing import ntuple
from .deform_engine import DeformConvGrads, deform_conv, deform_conv_backward, sample_columns
from .deform_spec import DeformSpec, Padding

NO_COMPLEX = "torchvision's deform_conv2d has no complex kernel"  # why complex operands are refused

__all__ = ["deform_conv2d", "deform_conv2d_backward", "DeformConvGrads", "deform_conv", "deform_conv_backward",
           "sample_columns"]

IntPair = int | Sequence[int]


class Operands(NamedTuple):
    """A deformable conv's operands read as real arrays (:func:`read_operands`)."""

    input: np.ndarray
    offset: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    mask: np.ndarray | None

    def spec(self, stride: IntPair, padding: Padding, dilation: IntPair, *, groups: int | None = None,
             offset_groups: int | None = None, op: str = "deform_conv2d") -> DeformSpec:
        """The validated :class:`DeformSpec` of these operands and this geometry."""
        return DeformSpec.of(self.input.shape, self.offset.shape, self.weight.shape,
                             mask_shape=None if self.mask is None else self.mask.shape,
                             bias_shape=None if self.bias is None else self.bias.shape, stride=stride,
                             padding=padding, dilation=dilation, groups=groups, offset_groups=offset_groups, op=op)


def read_operands(op: str, input: npt.ArrayLike, offset: npt.ArrayLike, weight: npt.ArrayLike,
                  bias: npt.ArrayLike | None = None, mask: npt.ArrayLike | None = None) -> Operands:
    """Each operand as a real array (npconv's dtype policy); only ``bias`` and ``mask`` may be None."""
    def read(value: npt.ArrayLike, name: str) -> np.ndarray:
        return as_real_array(value, name, op, why=NO_COMPLEX)
    return Operands(read(input, "input"), read(offset, "offset"), read(weight, "weight"),
                    None if bias is None else read(bias, "bias"), None if mask is None else read(mask, "mask"))


def _torchvision_geometry(op: str, stride: IntPair, padding: IntPair,
                          dilation: IntPair) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """torchvision's ``_pair`` of each: an int or two ints (no padding strings, no per-side pairs)."""
    return (ntuple(stride, 2, "stride", op), ntuple(padding, 2, "padding", op), ntuple(dilation, 2, "dilation", op))


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
        An int or a pair (torchvision's ``_pair``); padding is zeros, the same on both sides of
        a dim (ONNX's per-side pads: :func:`npconv.onnx.deform_conv`).
    mask : array_like, optional
        (N, G*kh*kw, oh, ow), channel ``g*kh*kw + t``.  None: deformable conv v1.

    Returns
    -------
    numpy.ndarray
        (N, C_out, oh, ow), in the operands' dtype by npconv's policy (:mod:`npconv.arrays`):
        float32 stays float32, float64 float64, mixed operands promote (float32 with float64:
        float64), float16 is computed in float32, ints and bools are read as float64.

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
    operands = read_operands("deform_conv2d", input, offset, weight, bias, mask)
    spec = operands.spec(*_torchvision_geometry("deform_conv2d", stride, padding, dilation))
    return deform_conv(*operands, spec)


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
    op = "deform_conv2d_backward"
    operands = read_operands(op, input, offset, weight, bias, mask)
    spec = operands.spec(*_torchvision_geometry(op, stride, padding, dilation), op=op)
    gy = as_real_array(grad_output, "grad_output", op, why=NO_COMPLEX)
    return deform_conv_backward(gy, operands.input, operands.offset, operands.weight, operands.mask, spec,
                                with_bias=bias is not None)
