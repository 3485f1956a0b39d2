"""ConvNeXt-Tiny as torchvision builds it, with the small modules it needs (LayerNorm2d, Permute,
StochasticDepth, CNBlock), each with its backward.

The state dict keys equal torchvision's (``features.0.0.weight``, ``features.1.0.layer_scale``,
``features.1.0.block.0.weight``, ``classifier.2.bias``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..nn.activation import GELU
from ..nn.adaptive import AdaptiveAvgPool2d
from ..nn.containers import Sequential
from ..nn.conv import Conv2d, check_module_dtype
from ..nn.layers import Flatten, Linear
from ..nn.module import Module, Parameter, accumulate_grad
from ..nn.norm import LayerNorm
from ..random import generator
from .mobilenet import Conv2dNormActivation
from .resnet import refuse_weights

__all__ = ["LayerNorm2d", "Permute", "StochasticDepth", "CNBlock", "ConvNeXt", "convnext_tiny"]

# (input channels, output channels of the downsample after the stage or None, blocks)
CONVNEXT_TINY_SETTING = ((96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3))


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` array, as torchvision's ``LayerNorm2d``.

    Each position's C values are normalised (``normalized_shape = (C,)``); the parameters and
    the state dict are :class:`npconv.nn.LayerNorm`'s.

    Examples
    --------
    >>> import numpy as np
    >>> norm = LayerNorm2d(2, eps=1e-6)
    >>> norm(np.array([[[[1.0]], [[3.0]]]], np.float32)).ravel()
    array([-0.9999995,  0.9999995], dtype=float32)
    """

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """LayerNorm of ``input.permute(0, 2, 3, 1)``, permuted back.

        Parameters
        ----------
        input : array_like
            ``(N, C, H, W)``.

        Returns
        -------
        numpy.ndarray
            The same shape.
        """
        return np.transpose(super().forward(np.transpose(np.asarray(input), (0, 2, 3, 1))), (0, 3, 1, 2))

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """d loss / d input (weight and bias gradients added).

        Parameters
        ----------
        grad_output : array_like
            ``(N, C, H, W)``.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        grad = super().backward(np.transpose(np.asarray(grad_output), (0, 2, 3, 1)))
        return np.transpose(grad, (0, 3, 1, 2))


class Permute(Module):
    """``input.permute(*dims)``, as torchvision's ``Permute`` (a view; no copy).

    Parameters
    ----------
    dims : sequence of int
        The new order of the axes.

    Examples
    --------
    >>> import numpy as np
    >>> Permute([0, 2, 3, 1])(np.zeros((1, 2, 3, 4))).shape
    (1, 3, 4, 2)
    """

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``input`` with its axes in ``dims`` order.

        Parameters
        ----------
        input : array_like
            ``len(dims)`` dims.

        Returns
        -------
        numpy.ndarray
            A transposed view.
        """
        return np.transpose(np.asarray(input), self.dims)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` with the inverse permutation.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        return np.transpose(np.asarray(grad_output), np.argsort(self.dims))


class StochasticDepth(Module):
    """Drops whole residual branches at random in training, as ``torchvision.ops.StochasticDepth``.

    In ``'row'`` mode each sample's branch is kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``; ``'batch'`` keeps or drops the whole batch.  The identity in evaluation
    mode or when ``p == 0``.  Draws from npconv's generator (``npconv.manual_seed``).

    Parameters
    ----------
    p : float
        Drop probability, in [0, 1].
    mode : {'row', 'batch'}
        Per sample or per batch.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1] or another ``mode``.

    Examples
    --------
    >>> import numpy as np
    >>> depth = StochasticDepth(0.5)
    >>> sorted(set(depth(np.ones((100, 1))).ravel().tolist())), depth
    ([0.0, 2.0], StochasticDepth(p=0.5, mode=row))
    """

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("batch", "row"):
            raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
        self.p, self.mode = p, mode
        self._scale: np.ndarray | None = None

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``input`` times a random per-sample (or per-batch) 0 or ``1 / (1 - p)`` in training.

        Parameters
        ----------
        input : array_like
            ``(N, ...)``.

        Returns
        -------
        numpy.ndarray
            The same shape and dtype.
        """
        x = np.asarray(input)
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        survival = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        keep = (generator().random(shape) < survival).astype(x.dtype)
        self._scale = keep / x.dtype.type(survival) if survival > 0 else keep
        return x * self._scale

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` times the last forward's scale.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        grad = np.asarray(grad_output)
        return grad if self._scale is None else grad * self._scale.astype(grad.dtype, copy=False)

    def extra_repr(self) -> str:
        """``'p=0.1, mode=row'``, as torchvision shows it."""
        return f"p={self.p}, mode={self.mode}"


class CNBlock(Module):
    """ConvNeXt's block: ``x + stochastic_depth(layer_scale * block(x))``.

    ``block`` is torchvision's Sequential: 7x7 depthwise conv, Permute to channels-last,
    LayerNorm (eps 1e-6), Linear to 4x, GELU, Linear back, Permute to channels-first.

    Parameters
    ----------
    dim : int
        Channels.
    layer_scale : float
        Initial value of every entry of the ``(dim, 1, 1)`` parameter ``layer_scale``.
    stochastic_depth_prob : float
        Probability of dropping the branch in training.
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> block = CNBlock(4, 1e-6, 0.0)
    >>> y = block(np.ones((1, 4, 5, 5), np.float32))
    >>> y.shape, float(abs(y - 1).max()) < 1e-4, list(block.state_dict())[:2]
    ((1, 4, 5, 5), True, ['layer_scale', 'block.0.weight'])
    """

    def __init__(self, dim: int, layer_scale: float, stochastic_depth_prob: float,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__()
        dtype = check_module_dtype(dtype, None)
        self.block = Sequential(
            Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True, dtype=dtype), Permute([0, 2, 3, 1]),
            LayerNorm(dim, eps=1e-6, dtype=dtype), Linear(dim, 4 * dim, dtype=dtype), GELU(),
            Linear(4 * dim, dim, dtype=dtype), Permute([0, 3, 1, 2]))
        self.layer_scale = Parameter(np.full((dim, 1, 1), layer_scale, dtype))
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``input + stochastic_depth(layer_scale * block(input))``.

        Parameters
        ----------
        input : array_like
            ``(N, dim, H, W)``.

        Returns
        -------
        numpy.ndarray
            The same shape, in the input's memory layout.
        """
        x = np.asarray(input)
        self._branch = self.block(x)
        return self.stochastic_depth(self.layer_scale * self._branch) + x

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """d loss / d input; adds the gradients of ``layer_scale`` and of the block's parameters.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        grad = np.asarray(grad_output)
        grad_scaled = self.stochastic_depth.backward(grad)
        per_channel = np.sum(grad_scaled * self._branch, axis=(0, 2, 3), dtype=np.float64)
        accumulate_grad(self.layer_scale, np.reshape(per_channel, self.layer_scale.shape))
        return self.block.backward(grad_scaled * self.layer_scale.view(np.ndarray)) + grad


def trunc_normal(array: np.ndarray, std: float = 0.02, low: float = -2.0, high: float = 2.0) -> None:
    """Fill ``array`` from N(0, std) truncated to [low, high] (torch's ``trunc_normal_`` bounds).

    Parameters
    ----------
    array : numpy.ndarray
        Filled in place.
    std : float, default 0.02
        The standard deviation before truncation.
    low, high : float
        Absolute bounds (torch's defaults, -2 and 2).
    """
    values = generator().normal(0.0, std, array.shape)
    outside = (values < low) | (values > high)
    while outside.any():
        values[outside] = generator().normal(0.0, std, int(outside.sum()))
        outside = (values < low) | (values > high)
    array[...] = values


class ConvNeXt(Sequential):
    """torchvision's ConvNeXt as a Sequential of ``features``, ``avgpool`` and ``classifier``.

    ``features``: the stem (4x4/4 conv + LayerNorm2d), then per stage a Sequential of
    :class:`CNBlock` and, between stages, a downsample (LayerNorm2d + 2x2/2 conv).  The
    stochastic depth probability grows linearly from 0 (first block) to
    ``stochastic_depth_prob`` (last block).  ``classifier``: LayerNorm2d, Flatten, Linear.
    Convolutions and Linears are drawn from N(0, 0.02) truncated to [-2, 2], biases zero.

    Parameters
    ----------
    block_setting : sequence of (int, int or None, int)
        Per stage: channels, channels after its downsample (None: last stage), blocks.
    stochastic_depth_prob : float, default 0.0
        The last block's drop probability.
    layer_scale : float, default 1e-6
        Initial ``layer_scale`` of every block.
    num_classes : int, default 1000
        Outputs of the classifier.
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> net = ConvNeXt([(8, 16, 1), (16, None, 1)], num_classes=3).eval()
    >>> net(np.ones((2, 3, 16, 16), np.float32)).shape, list(net.state_dict())[4]
    ((2, 3), 'features.1.0.layer_scale')
    """

    def __init__(self, block_setting: Sequence[tuple[int, int | None, int]] = CONVNEXT_TINY_SETTING,
                 stochastic_depth_prob: float = 0.0, layer_scale: float = 1e-6, num_classes: int = 1000,
                 dtype: npt.DTypeLike | None = None) -> None:
        dtype = check_module_dtype(dtype, None)
        if not block_setting:
            raise ValueError("The block_setting should not be empty")
        first = block_setting[0][0]
        layers: list[Module] = [Conv2dNormActivation(3, first, kernel_size=4, stride=4, padding=0, bias=True,
                                                     norm=LayerNorm2d(first, eps=1e-6, dtype=dtype),
                                                     activation=False, dtype=dtype)]
        total, block_id = sum(depth for _, _, depth in block_setting), 0
        for channels, out, depth in block_setting:
            stage: list[Module] = []
            for _ in range(depth):
                drop = stochastic_depth_prob * block_id / (total - 1.0) if total > 1 else 0.0
                stage.append(CNBlock(channels, layer_scale, drop, dtype=dtype))
                block_id += 1
            layers.append(Sequential(*stage))
            if out is not None:
                layers.append(Sequential(LayerNorm2d(channels, eps=1e-6, dtype=dtype),
                                         Conv2d(channels, out, kernel_size=2, stride=2, dtype=dtype)))
        last = block_setting[-1][1] or block_setting[-1][0]
        super().__init__(OrderedDict([
            ("features", Sequential(*layers)), ("avgpool", AdaptiveAvgPool2d(1)),
            ("classifier", Sequential(LayerNorm2d(last, eps=1e-6, dtype=dtype), Flatten(1),
                                      Linear(last, num_classes, dtype=dtype)))]))
        for module in self.modules():
            if isinstance(module, (Conv2d, Linear)):
                trunc_normal(module.weight, std=0.02)
                if module.bias is not None:
                    module.bias[...] = 0


def convnext_tiny(*, weights: Any = None, num_classes: int = 1000, stochastic_depth_prob: float = 0.1,
                  dtype: npt.DTypeLike | None = None) -> ConvNeXt:
    """ConvNeXt-Tiny as ``torchvision.models.convnext_tiny``, randomly initialised.

    Parameters
    ----------
    weights : None
        Must be None: npconv ships architectures only (load a state dict yourself).
    num_classes : int, default 1000
        Outputs of the classifier.
    stochastic_depth_prob : float, default 0.1
        The last block's drop probability in training (torchvision's default for Tiny).
    dtype : data-type, optional
        float32 (default) or float64.

    Returns
    -------
    ConvNeXt
        28,589,128 parameters with 1000 classes.

    Raises
    ------
    ValueError
        ``weights`` is not None.
    """
    refuse_weights(weights, "convnext_tiny")
    return ConvNeXt(CONVNEXT_TINY_SETTING, stochastic_depth_prob, 1e-6, num_classes, dtype)
