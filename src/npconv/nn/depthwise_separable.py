"""Depthwise separable convolution (MobileNets, Xception): a depthwise conv, one k x k filter
per input channel (groups = in_channels, ``depth_multiplier`` outputs each), then a 1x1
pointwise conv that mixes the channels.

Per output pixel, for C_in -> C_out channels, a kh x kw kernel and depth multiplier m::

    standard Conv2d       C_in * C_out * kh * kw                 multiply-adds
    depthwise separable   C_in * m * kh * kw + C_in * m * C_out

so the separable layer costs m / C_out + m / (kh * kw) of the standard one (Howard et al.
2017, "MobileNets", eq. 5: 1/N + 1/D_K^2 with m = 1).

Not to be confused with *spatially* separable filters (one k x k filter as a k x 1 and a
1 x k one): :mod:`npconv.separable`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..spec import check_input_rank, parameter_count
from .conv import Conv2d
from .module import Module

__all__ = ["DepthwiseSeparableConv2d", "SeparableCost"]


@dataclass(frozen=True)
class SeparableCost:
    """Parameters and multiply-adds (bias adds not counted) of a depthwise separable layer
    beside the standard ``Conv2d(in_channels, out_channels, kernel_size)`` on the same input.

    Made by :meth:`DepthwiseSeparableConv2d.savings`; ``str()`` of it is a small table.

    Attributes
    ----------
    input_shape, output_shape : tuple of int
        The layer's input and output shapes.
    kernel_size : tuple of int
        (kh, kw).
    depth_multiplier : int
        m: depthwise outputs per input channel.
    separable_parameters, standard_parameters : int
        Weights and biases of each layer.
    separable_macs, standard_macs : int
        Multiply-adds of each layer on this input.
    """

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_size: tuple[int, ...]  # (kh, kw)
    depth_multiplier: int
    separable_parameters: int
    standard_parameters: int
    separable_macs: int
    standard_macs: int

    @property
    def parameter_ratio(self) -> float:
        """separable_parameters / standard_parameters."""
        return self.separable_parameters / self.standard_parameters

    @property
    def mac_ratio(self) -> float:
        """separable_macs / standard_macs."""
        return self.separable_macs / self.standard_macs

    @property
    def textbook_mac_ratio(self) -> float:
        """m / C_out + m / (kh * kw): equal to ``mac_ratio`` (both counts share H_out * W_out)."""
        return self.depth_multiplier * (1 / self.output_shape[-3] + 1 / math.prod(self.kernel_size))

    def __str__(self) -> str:
        (kh, kw), m = self.kernel_size, self.depth_multiplier
        return "\n".join([
            f"{kh}x{kw} kernel, depth multiplier {m}: {self.input_shape} -> {self.output_shape}",
            f"{'':22}{'parameters':>12}{'multiply-adds':>16}",
            f"{'standard Conv2d':<22}{self.standard_parameters:>12,}{self.standard_macs:>16,}",
            f"{'depthwise separable':<22}{self.separable_parameters:>12,}{self.separable_macs:>16,}",
            f"{'ratio':<22}{self.parameter_ratio:>12.4f}{self.mac_ratio:>16.4f}   (textbook "
            f"{m}/{self.output_shape[-3]} + {m}/{kh * kw} = {self.textbook_mac_ratio:.4f})"])


def _check_positive_ints(**named: object) -> None:
    for name, value in named.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"DepthwiseSeparableConv2d: {name} must be a positive integer, got {name}={value!r}")


class DepthwiseSeparableConv2d(Module):
    """A depthwise convolution then a 1x1 pointwise one (MobileNets' separable layer).

    ``depthwise`` (Conv2d, groups = in_channels, in_channels * depth_multiplier outputs)
    then ``pointwise`` (1x1 Conv2d to out_channels).  ``stride``, ``padding``, ``dilation``
    and ``padding_mode`` belong to the depthwise conv; ``bias`` gives both convs a bias, as
    ``torch.nn.Sequential(Conv2d(..., groups=in_channels), Conv2d(..., 1))`` has.

    Parameters
    ----------
    in_channels : int
        C_in.
    out_channels : int
        C_out, produced by the pointwise conv.
    kernel_size : int or tuple of int
        The depthwise kernel.
    stride, padding, dilation : int or tuple of int (padding also str)
        The depthwise conv's, as :class:`Conv2d` takes them.
    bias : bool, default True
        Give both convs a bias.
    depth_multiplier : int, default 1
        m: depthwise outputs per input channel.
    padding_mode : str, default 'zeros'
        The depthwise conv's.
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility.
    dtype : {numpy.float32, numpy.float64, numpy.complex64, numpy.complex128, None}, default None
        The parameters' dtype (float32 when None).

    Attributes
    ----------
    depthwise, pointwise : Conv2d
        The two convolutions.

    Raises
    ------
    ValueError
        in_channels, out_channels or depth_multiplier not a positive int, or what Conv2d refuses.

    Examples
    --------
    >>> layer = DepthwiseSeparableConv2d(32, 64, 3, padding=1)
    >>> layer.savings((1, 32, 112, 112)).mac_ratio == 1 / 64 + 1 / 9
    True
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] = 1, padding: int | str | tuple[int, ...] = 0,
                 dilation: int | tuple[int, ...] = 1, bias: bool = True, depth_multiplier: int = 1,
                 padding_mode: str = "zeros", device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__()
        _check_positive_ints(in_channels=in_channels, out_channels=out_channels, depth_multiplier=depth_multiplier)
        hidden = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, hidden, kernel_size, stride, padding, dilation, groups=in_channels,
                                bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)
        self.pointwise = Conv2d(hidden, out_channels, 1, bias=bias, device=device, dtype=dtype)
        self.in_channels, self.out_channels, self.depth_multiplier = in_channels, out_channels, depth_multiplier
        self.kernel_size, self.stride, self.padding = (self.depthwise.kernel_size, self.depthwise.stride,
                                                       self.depthwise.padding)
        self.dilation, self.padding_mode = self.depthwise.dilation, padding_mode

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``pointwise(depthwise(input))``.

        Parameters
        ----------
        input : array_like
            ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.

        Returns
        -------
        numpy.ndarray
            ``(N, C_out, H_out, W_out)`` (unbatched: without N).
        """
        return self.pointwise(self.depthwise(input))

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last forward's input; adds both convs' parameter gradients.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        return self.depthwise.backward(self.pointwise.backward(grad_output))

    def savings(self, input_shape: Sequence[int]) -> SeparableCost:
        """Parameters and multiply-adds of this layer and of the standard Conv2d with the same
        in/out channels and kernel.

        Parameters
        ----------
        input_shape : sequence of int
            ``(N, C, H, W)`` or ``(C, H, W)``.

        Returns
        -------
        SeparableCost
            Both layers' counts and their ratios.

        Raises
        ------
        ValueError
            A shape of the wrong rank or with other than ``in_channels`` channels.
        """
        shape = tuple(int(v) for v in input_shape)
        batched = check_input_rank("DepthwiseSeparableConv2d", 2, shape)
        if shape[-3] != self.in_channels:
            raise ValueError(f"DepthwiseSeparableConv2d.savings: input_shape {shape} has {shape[-3]} channels, "
                             f"the layer takes in_channels={self.in_channels}")
        out_spatial = self.depthwise.spec.out_spatial(shape[-2:])
        pixels = (shape[0] if batched else 1) * math.prod(out_spatial)
        k, hidden = math.prod(self.kernel_size), self.in_channels * self.depth_multiplier
        bias = self.pointwise.bias is not None
        return SeparableCost(shape, shape[:-3] + (self.out_channels,) + out_spatial, self.kernel_size,
                             self.depth_multiplier, sum(p.size for p in self.parameters()),
                             parameter_count(self.in_channels, self.out_channels, self.kernel_size, 1, bias),
                             pixels * (hidden * k + hidden * self.out_channels),
                             pixels * self.in_channels * self.out_channels * k)
