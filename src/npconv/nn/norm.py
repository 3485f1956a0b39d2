"""Normalisation layers as ``torch.nn``'s: BatchNorm1d/2d/3d (from :mod:`npconv.nn.norm_batch`),
LayerNorm and GroupNorm, each with an explicit backward.

Statistics are summed in float64 whatever the input's dtype; outputs and gradients come back
in the input's dtype and memory layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import compiled
from ..arrays import as_real_array
from .conv import check_module_dtype
from .module import Module, Parameter, accumulate_grad
from .norm_batch import (REAL_ONLY, Axes, BatchNorm1d, BatchNorm2d, BatchNorm3d, check_count, input_grad,
                         normalize, verify_batch_size)

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm"]


def _gradients(gy: np.ndarray, xhat: np.ndarray, invstd: np.ndarray, weight: np.ndarray | None,
               axes: Axes) -> np.ndarray:
    """d loss / d x through ``xhat * weight`` with xhat normalised over ``axes`` (weight
    broadcast to xhat's shape, or None)."""
    g = gy if weight is None else gy * weight.astype(gy.dtype)
    mean_g = g.mean(axis=axes, dtype=np.float64, keepdims=True)
    mean_gx = np.multiply(g, xhat).mean(axis=axes, dtype=np.float64, keepdims=True)
    return input_grad(g, xhat, invstd, mean_g, mean_gx)


def _one_axis_view(x: np.ndarray) -> tuple[int, int, int] | None:
    """(outer, C, inner) when x's last axis (C) can be normalised by the compiled kernel on x's
    memory as it lies: C-contiguous rows, or an NCHW map permuted to (N, H, W, C); else None."""
    if not compiled.available() or x.dtype not in (np.float32, np.float64) or x.size < 4096:
        return None
    channels = x.shape[-1]
    if x.flags.c_contiguous:
        return x.size // max(channels, 1), channels, 1
    if x.ndim >= 3 and np.moveaxis(x, -1, 1).flags.c_contiguous:
        return x.shape[0], channels, int(np.prod(x.shape[1:-1]))
    return None


def _as_outer_channels_inner(array: np.ndarray, view: tuple[int, int, int]) -> np.ndarray:
    """``array`` (laid out as the input) as its (outer, C, inner) memory view."""
    if view[2] == 1:
        return array.reshape(view)
    return np.moveaxis(array, -1, 1).reshape(view)


class LayerNorm(Module):
    """Normalisation over the last ``len(normalized_shape)`` dims of each sample, as ``torch.nn.LayerNorm``.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The trailing shape normalised over (an int is one dim).
    eps : float, default 1e-5
        Added to the variance before its square root.
    elementwise_affine : bool, default True
        Learn an elementwise ``weight`` (ones) and ``bias`` (zeros) of ``normalized_shape``.
    bias : bool, default True
        Learn the bias (with ``elementwise_affine``).
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility; npconv runs on the CPU.
    dtype : {numpy.float32, numpy.float64, None}, default None
        The parameters' dtype (float32 when None).

    Examples
    --------
    >>> import numpy as np
    >>> ln = LayerNorm(3)
    >>> y = ln(np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]]))
    >>> y.round(4)
    array([[-0.9258, -0.4629,  1.3887],
           [-0.7071, -0.7071,  1.4142]])
    >>> ln.backward(np.ones_like(y)).round(4), ln.bias.grad
    (array([[0., 0., 0.],
           [0., 0., 0.]]), array([2., 2., 2.], dtype=float32))
    """

    _xhat: Any  # x-hat, or (x, mean) after an evaluation forward (x-hat made if a backward asks)

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: str | None = None, dtype: npt.DTypeLike | None = None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        self.normalized_shape = tuple(shape)
        for size in self.normalized_shape:
            check_count(size, "normalized_shape", "LayerNorm")
        dtype = check_module_dtype(dtype, device)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        """Weight 1 and bias 0."""
        if self.weight is not None:
            self.weight[...] = 1
        if self.bias is not None:
            self.bias[...] = 0

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing dims.

        Parameters
        ----------
        input : array_like
            ``(*, *normalized_shape)``.

        Returns
        -------
        numpy.ndarray
            The same shape, dtype and memory layout.

        Raises
        ------
        ValueError
            The input's trailing dims are not ``normalized_shape`` (PyTorch's words).
        TypeError
            A complex or non-numeric input.
        """
        x = as_real_array(input, "input", "LayerNorm", why=REAL_ONLY)
        count = len(self.normalized_shape)
        if x.ndim < count or x.shape[x.ndim - count:] != self.normalized_shape:
            wanted = ", ".join(["*"] + [str(size) for size in self.normalized_shape])
            raise ValueError(f"Given normalized_shape={list(self.normalized_shape)}, expected input with shape "
                             f"[{wanted}], but got input of size{list(x.shape)}")
        self._axes: Axes = tuple(range(x.ndim - count, x.ndim))
        compiled_view = _one_axis_view(x) if count == 1 else None
        if compiled_view is not None:
            return self._compiled_forward(x, compiled_view)
        self._xhat, _, var = normalize(x, self._axes, self.eps)
        self._invstd = 1.0 / np.sqrt(var + self.eps)
        y = self._xhat.copy(order="K") if self.weight is None else self._xhat * np.asarray(self.weight, x.dtype)
        y = y if self.bias is None else y + np.asarray(self.bias, x.dtype)
        return y  # never the kept x-hat itself: an in-place layer after this one must not change it

    def _compiled_forward(self, x: np.ndarray, view: tuple[int, int, int]) -> np.ndarray:
        """One normalised axis, through the compiled kernel on x's memory seen as (outer, C,
        inner); x-hat kept for the backward in training, the statistics in evaluation."""
        channels = x.shape[-1]
        weight = np.ones(channels, x.dtype) if self.weight is None else np.asarray(self.weight, x.dtype)
        bias = np.zeros(channels, x.dtype) if self.bias is None else np.asarray(self.bias, x.dtype)
        out = np.empty_like(x)
        xhat = np.empty_like(x) if self.training else np.empty((0, 0, 0), x.dtype)
        mean, invstd = np.empty((view[0], view[2])), np.empty((view[0], view[2]))
        memory = _as_outer_channels_inner
        compiled.kernels("norm_jit_kernels").layer_norm(
            memory(x, view), weight, bias, float(self.eps), memory(out, view),
            memory(xhat, view) if xhat.size else xhat, mean, invstd)
        stats_shape = x.shape[:-1] + (1,)
        self._invstd = invstd.reshape(stats_shape)
        self._xhat = xhat if xhat.size else (x, mean.reshape(stats_shape))  # evaluation: made if asked
        return out

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input; adds ``weight.grad`` and ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        if isinstance(self._xhat, tuple):  # an evaluation-mode forward kept x and its statistics
            x, mean = self._xhat
            self._xhat = ((x - mean) * self._invstd).astype(x.dtype)
        xhat = self._xhat
        gy = np.asarray(grad_output, dtype=xhat.dtype)
        leading = tuple(range(gy.ndim - len(self._axes)))
        accumulate_grad(self.weight, np.multiply(gy, xhat).sum(axis=leading, dtype=np.float64))
        accumulate_grad(self.bias, gy.sum(axis=leading, dtype=np.float64))
        weight = None if self.weight is None else np.asarray(self.weight, np.float64)
        return _gradients(gy, xhat, self._invstd, weight, self._axes)

    def extra_repr(self) -> str:
        """``'(4,), eps=1e-05, elementwise_affine=True, bias=True'``, as PyTorch shows it."""
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalisation over groups of channels of each sample, as ``torch.nn.GroupNorm``.

    Parameters
    ----------
    num_groups : int
        The number of groups the channels (dim 1) are split into.
    num_channels : int
        C; a multiple of ``num_groups``.
    eps : float, default 1e-5
        Added to the variance before its square root.
    affine : bool, default True
        Learn a per-channel ``weight`` (ones) and ``bias`` (zeros).
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility; npconv runs on the CPU.
    dtype : {numpy.float32, numpy.float64, None}, default None
        The parameters' dtype (float32 when None).
    bias : bool, default True (keyword only)
        Learn the bias (with ``affine``).

    Raises
    ------
    ValueError
        ``num_channels`` is not a multiple of ``num_groups`` (PyTorch's words).

    Examples
    --------
    >>> import numpy as np
    >>> gn = GroupNorm(2, 4)
    >>> y = gn(np.array([[0.0, 2.0, 5.0, 7.0]]))
    >>> y.round(4), gn.backward(np.ones_like(y)).shape
    (array([[-1.,  1., -1.,  1.]]), (1, 4))
    """

    _xhat: np.ndarray

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: str | None = None, dtype: npt.DTypeLike | None = None, *, bias: bool = True) -> None:
        super().__init__()
        check_count(num_groups, "num_groups", "GroupNorm")
        check_count(num_channels, "num_channels", "GroupNorm")
        if num_groups == 0 or num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        dtype = check_module_dtype(dtype, device)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(np.ones(num_channels, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype)) if affine and bias else None

    def reset_parameters(self) -> None:
        """Weight 1 and bias 0."""
        if self.weight is not None:
            self.weight[...] = 1
        if self.bias is not None:
            self.bias[...] = 0

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """Normalise each sample's channel groups, then scale and shift each channel.

        Parameters
        ----------
        input : array_like
            ``(N, C, *)``; any strides (the layout is kept).

        Returns
        -------
        numpy.ndarray
            The same shape, dtype and memory layout.

        Raises
        ------
        ValueError
            Fewer than 2 dims, a channel count that is not a multiple of ``num_groups`` or
            not ``num_channels``, or a single value per group (PyTorch's words).
        TypeError
            A complex or non-numeric input.
        """
        x = as_real_array(input, "input", "GroupNorm", why=REAL_ONLY)
        self._check_input(x)
        grouped = self._grouped(x)
        self._axes: Axes = tuple(range(2, grouped.ndim))
        self._xhat, _, var = normalize(grouped, self._axes, self.eps)
        self._invstd = 1.0 / np.sqrt(var + self.eps)
        y = self._xhat.copy(order="K") if self.weight is None else self._xhat  # never the kept x-hat itself
        if self.weight is not None:
            y = y * self._per_channel(np.asarray(self.weight, x.dtype), grouped.ndim)
        if self.bias is not None:
            y = y + self._per_channel(np.asarray(self.bias, x.dtype), grouped.ndim)
        return y.reshape(x.shape)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input; adds ``weight.grad`` and ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        xhat = self._xhat
        gy_flat = np.asarray(grad_output, dtype=xhat.dtype)
        gy = self._grouped(gy_flat)
        per_channel_axes = (0,) + tuple(range(3, gy.ndim))
        accumulate_grad(self.weight, np.multiply(gy, xhat).sum(axis=per_channel_axes, dtype=np.float64).reshape(-1))
        accumulate_grad(self.bias, gy.sum(axis=per_channel_axes, dtype=np.float64).reshape(-1))
        weight = None if self.weight is None else self._per_channel(np.asarray(self.weight, np.float64), gy.ndim)
        return _gradients(gy, xhat, self._invstd, weight, self._axes).reshape(gy_flat.shape)

    def extra_repr(self) -> str:
        """``'2, 4, eps=1e-05, affine=True, bias=True'``, as PyTorch shows it."""
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")

    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim < 2:
            raise ValueError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
        channels, groups = x.shape[1], self.num_groups
        if channels % groups != 0:
            raise ValueError(f"Expected number of channels in input to be divisible by num_groups, but got "
                             f"input of shape {list(x.shape)} and num_groups={groups}")
        if self.weight is not None and channels != self.num_channels:
            raise ValueError(f"Expected weight to be a vector of size equal to the number of channels in input, "
                             f"but got weight of shape [{self.num_channels}] and input of shape {list(x.shape)}")
        verify_batch_size([x.shape[0] * channels // groups, groups] + list(x.shape[2:]), torch_size=False)

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, *)`` as ``(N, groups, C // groups, *)``: a view whatever the strides."""
        return x.reshape((x.shape[0], self.num_groups, x.shape[1] // self.num_groups) + x.shape[2:])

    def _per_channel(self, values: np.ndarray, ndim: int) -> np.ndarray:
        """A per-channel vector shaped to broadcast over the grouped view."""
        return values.reshape((1, self.num_groups, -1) + (1,) * (ndim - 3))
