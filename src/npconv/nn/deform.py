"""torchvision.ops.DeformConv2d on NumPy: a 2-D convolution whose taps sample the input at
learned fractional offsets (Dai et al. 2017, "Deformable Convolutional Networks",
https://arxiv.org/abs/1703.06211), optionally scaled by a learned mask (v2: Zhu et al.
2018, https://arxiv.org/abs/1811.11168).

The module holds the weight and bias and the regular geometry (kernel, stride, padding,
dilation, groups); the offsets and the mask come with each input, usually from a plain
convolution of the same input.  The arithmetic is :func:`npconv.ops.deform_conv2d`'s and
:func:`npconv.ops.deform_conv2d_backward`'s, run through their spec-taking entries
(:func:`npconv.ops.deform_conv`, :func:`npconv.ops.deform_conv_backward`) so that the spec
checks the input against the module's groups and speaks in the module's name.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import ops
from ..ops.deform import NO_COMPLEX, read_operands
from ..arrays import as_real_array
from ..random import generator
from ..spec import ConvSpec, check_groups
from ..spec_errors import worded
from .conv import MODULE_WORDS, check_module_dtype
from .module import Module, Parameter, accumulate_grad

__all__ = ["DeformConv2d"]

IntPair = int | tuple[int, int]


class DeformConv2d(Module):
    """Deformable 2-D convolution with torchvision's constructor, initialisation and repr.

    ``forward(input, offset, mask=None)`` is
    ``npconv.ops.deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)``:
    tap ``(i, j)`` of output ``(oy, ox)`` reads the input, by bilinear interpolation, at
    ``(oy * stride_h - pad_h + i * dil_h + dy, ox * stride_w - pad_w + j * dil_w + dx)``,
    times the mask when one is given.  With zero offsets and no mask it is a :class:`Conv2d`.

    Shapes, for a batch of N and an ``(H_out, W_out)`` output (the plain conv's size)::

        input   (N, in_channels, H, W)                       4-D only, as torchvision
        offset  (N, 2 * G * kh * kw, H_out, W_out)           G offset groups, read from offset
        mask    (N, G * kh * kw, H_out, W_out)               optional (v2)
        weight  (out_channels, in_channels // groups, kh, kw)
        output  (N, out_channels, H_out, W_out)

    Offset channel ``g * 2 * kh * kw + 2 * t`` is the row (y) offset of tap
    ``t = i * kw + j`` in offset group g, the next channel its column (x) offset.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output; both divisible by ``groups``.
    kernel_size : int or tuple of 2 ints
        (kh, kw).
    stride, padding, dilation : int or tuple of 2 ints, default 1, 0, 1
        The regular sampling grid's, as :class:`Conv2d` takes them (zero padding only, same on
        both sides; no padding strings, as torchvision).
    groups : int, default 1
        Weight groups (the offset groups are independent: they come from ``offset.shape[1]``).
    bias : bool, default True
        Add a learnable bias.
    dtype : {numpy.float32, numpy.float64, None}, default None
        The parameters' dtype (float32 when None).
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility.

    Attributes
    ----------
    weight : Parameter
        ``(out_channels, in_channels // groups, kh, kw)``, drawn as torchvision draws it:
        ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
        fan_in = ``in_channels // groups * kh * kw``.
    bias : Parameter or None
        ``(out_channels,)``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    kernel_size, stride, padding, dilation : tuple of 2 ints
        As normalised (torchvision's ``_pair``).

    Raises
    ------
    ValueError
        in_channels or out_channels not a positive integer or not divisible by groups
        (torchvision's words: "in_channels must be divisible by groups"), groups below one,
        a kernel, stride or dilation below one, negative, uneven or string padding, a device
        other than the CPU.
    TypeError
        A dtype other than float32 and float64, a size of the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import functional as F, nn
    >>> layer = nn.DeformConv2d(3, 8, 3, padding=1)
    >>> layer
    DeformConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    >>> offset = np.zeros((2, 2 * 3 * 3, 6, 6), np.float32)   # zero offsets: a plain conv
    >>> y = layer(x, offset)
    >>> y.shape, bool(np.allclose(y, F.conv2d(x, layer.weight, layer.bias, padding=1), atol=1e-5))
    ((2, 8, 6, 6), True)
    >>> grad_input, grad_offset, grad_mask = layer.backward(np.ones_like(y))
    >>> grad_input.shape, grad_offset.shape, grad_mask, layer.weight.grad.shape
    ((2, 3, 6, 6), (2, 18, 6, 6), None, (8, 3, 3, 3))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True, *,
                 dtype: npt.DTypeLike | None = None, device: str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        _check_channel_counts(name, in_channels=in_channels, out_channels=out_channels)
        with worded(MODULE_WORDS):
            check_groups(name, groups)
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a pair of ints (torchvision's DeformConv2d "
                             f"has no padding strings), got padding={padding!r}")
        self._spec = ConvSpec.build(kernel_size, stride, padding, dilation, groups, ndim=2, op=name)
        self._spec.check_channels(in_channels, out_channels)  # torchvision's first refusals
        if any(lo != hi for lo, hi in self._spec.padding):
            raise ValueError(f"{name}: padding must be the same on both sides of a dim (torchvision pads "
                             f"symmetrically), got padding={padding!r}")
        dtype = check_module_dtype(dtype, device)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (self._spec.kernel_size, self._spec.stride,
                                                        self._spec.dilation)
        self.padding = tuple(lo for lo, _ in self._spec.padding)
        self._saved: tuple[np.ndarray, np.ndarray, np.ndarray | None, ops.DeformSpec] | None = None
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, kh, kw), dtype))
        self.bias = Parameter(np.empty(out_channels, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight and bias again, as torchvision's ``reset_parameters`` does.

        ``kaiming_uniform_(weight, a=sqrt(5))`` has bound gain * sqrt(3 / fan_in) with gain =
        sqrt(2 / (1 + a**2)) = sqrt(1/3), so weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in));
        bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too; fan_in = ``weight.shape[1] * kh * kw``.
        Drawn from npconv's generator (``npconv.manual_seed`` seeds it).
        """
        fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)
        self.weight[...] = generator().uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias[...] = generator().uniform(-bound, bound, self.bias.shape)

    @property
    def spec(self) -> ConvSpec:
        """The regular grid's validated :class:`npconv.spec.ConvSpec` (read-only): the plain
        convolution that zero offsets and no mask reduce this layer to."""
        return self._spec

    # ---- forward / backward --------------------------------------------------------
    def forward(self, input: npt.ArrayLike, offset: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> np.ndarray:
        """Deformable convolution of ``input`` with the module's weight and bias.

        Parameters
        ----------
        input : array_like
            ``(N, in_channels, H, W)``.
        offset : array_like
            ``(N, 2 * G * kh * kw, H_out, W_out)``: (dy, dx) per offset group and tap.
        mask : array_like, optional
            ``(N, G * kh * kw, H_out, W_out)``; None is deformable conv v1 (every mask 1).

        Returns
        -------
        numpy.ndarray
            ``(N, out_channels, H_out, W_out)``.

        Raises
        ------
        ValueError
            An input with other than ``in_channels`` channels, or operands that
            :func:`npconv.ops.deform_conv2d` refuses (rank, offset or mask channels and sizes,
            offset groups); the message gives the rule and the numbers.
        TypeError
            Operands that are not real arrays.
        """
        op = type(self).__name__
        operands = read_operands(op, input, offset, self.weight, self.bias, mask)
        x, off, _, _, m = operands
        # groups given: the spec checks the input's channels against the module's (left to
        # infer them, a wrong channel count could pass as other groups)
        spec = operands.spec(self.stride, self.padding, self.dilation, groups=self.groups, op=op)
        self._saved = (x, off, m, spec)
        return ops.deform_conv(x, off, self.weight, self.bias, m, spec)

    def backward(self, grad_output: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Gradients w.r.t. the last forward's input, offset and mask; adds ``weight.grad`` and
        ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        grad_input, grad_offset : numpy.ndarray
            In the shapes of the last forward's input and offset.
        grad_mask : numpy.ndarray or None
            In the mask's shape; None when the forward had no mask.

        Raises
        ------
        RuntimeError
            Called before any forward.
        ValueError
            ``grad_output`` not in the last output's shape.
        """
        op = type(self).__name__
        if self._saved is None:
            raise RuntimeError(f"{op}.backward called before forward")
        x, offset, mask, spec = self._saved
        gy = as_real_array(grad_output, "grad_output", op, why=NO_COMPLEX)
        grads = ops.deform_conv_backward(gy, x, offset, self.weight, mask, spec, with_bias=self.bias is not None)
        accumulate_grad(self.weight, grads.weight)
        if grads.bias is not None:  # computed only when the module has a bias
            accumulate_grad(self.bias, grads.bias)
        return grads.input, grads.offset, grads.mask

    def extra_repr(self) -> str:
        """torchvision's repr fields: channels, kernel and stride, then the settings not at their default.

        Returns
        -------
        str
            For example ``'3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)'``.
        """
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


def _check_channel_counts(op: str, **counts: Any) -> None:
    """Channel counts must be positive ints (torchvision would fail later, on an empty weight)."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{op}: {name} must be a positive integer, got {name}={value!r}")
