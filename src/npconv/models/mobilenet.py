"""MobileNetV2 (width 1.0) as torchvision builds it: inverted residual blocks, ReLU6, linear bottlenecks.

The state dict keys equal torchvision's (``features.0.0.weight``, ``features.1.conv.0.0.weight``,
``classifier.1.bias``), so a torchvision state dict converted to NumPy loads as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy.typing as npt

from ..nn.activation import ReLU6
from ..nn.adaptive import AdaptiveAvgPool2d
from ..nn.containers import Residual, Sequential
from ..nn.conv import Conv2d, check_module_dtype
from ..nn.layers import Dropout, Flatten, Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm2d
from ..random import generator
from .resnet import kaiming_normal_fan_out, refuse_weights

__all__ = ["Conv2dNormActivation", "InvertedResidual", "MobileNetV2", "mobilenet_v2", "make_divisible"]

# expansion t, output channels c, repeats n, first stride s (torchvision's table)
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below it nor 10% under ``value``.

    Parameters
    ----------
    value : float
        A channel count.
    divisor : int, default 8
        torchvision's ``round_nearest``.

    Returns
    -------
    int
        The rounded channel count.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class Conv2dNormActivation(Sequential):
    """Conv2d, a norm layer and optionally an activation, as torchvision's ``Conv2dNormActivation``.

    Children ``'0'`` (the convolution, ``padding = (kernel_size - 1) // 2``, a bias only when
    asked), ``'1'`` (the norm) and ``'2'`` (the activation, when given).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int, default 3
        Square kernel.
    stride : int, default 1
        Stride.
    groups : int, default 1
        Convolution groups (``in_channels`` for a depthwise conv).
    norm : Module, optional
        The norm layer (default ``BatchNorm2d(out_channels)``).
    activation : Module, optional
        The activation (default ``ReLU6(inplace=True)``); pass ``False`` for none.
    padding : int, optional
        Overrides the "same" padding.
    bias : bool, default False
        Give the convolution a bias.
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv2dNormActivation(3, 8, stride=2)
    >>> layer(np.ones((1, 3, 8, 8), np.float32)).shape, len(layer)
    ((1, 8, 4, 4), 3)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 norm: Module | None = None, activation: Module | bool | None = None, padding: int | None = None,
                 bias: bool = False, dtype: npt.DTypeLike | None = None) -> None:
        padding = (kernel_size - 1) // 2 if padding is None else padding
        layers: list[Module] = [
            Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                   bias=bias, dtype=dtype),
            BatchNorm2d(out_channels, dtype=dtype) if norm is None else norm]
        if activation is None or activation is True:
            layers.append(ReLU6(inplace=True))
        elif isinstance(activation, Module):
            layers.append(activation)
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(Residual):
    """MobileNetV2's block: 1x1 expand (unless t = 1), 3x3 depthwise, 1x1 project; + x when shapes allow.

    A :class:`npconv.nn.Residual` whose body is torchvision's child ``conv`` (a Sequential); the
    identity shortcut is used only when ``use_res_connect`` (stride 1 and ``inp == oup``),
    otherwise the block is just ``conv``.

    Parameters
    ----------
    inp : int
        Input channels.
    oup : int
        Output channels.
    stride : {1, 2}
        Stride of the depthwise conv.
    expand_ratio : int
        Hidden channels = ``round(inp * expand_ratio)``.
    dtype : data-type, optional
        float32 (default) or float64.

    Raises
    ------
    ValueError
        ``stride`` not 1 or 2.

    Examples
    --------
    >>> import numpy as np
    >>> block = InvertedResidual(8, 8, 1, 6)
    >>> block.use_res_connect, block(np.ones((1, 8, 4, 4), np.float32)).shape
    (True, (1, 8, 4, 4))
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dtype: npt.DTypeLike | None = None) -> None:
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        hidden = int(round(inp * expand_ratio))
        layers: list[Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1, dtype=dtype))
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden, dtype=dtype),
                   Conv2d(hidden, oup, 1, bias=False, dtype=dtype), BatchNorm2d(oup, dtype=dtype)]
        super().__init__({"conv": Sequential(*layers)})
        self.stride, self.out_channels = stride, oup
        self.use_res_connect = stride == 1 and inp == oup

    def forward(self, input: Any) -> Any:
        """``x + conv(x)`` when ``use_res_connect``, else ``conv(x)``.

        Parameters
        ----------
        input : array_like
            ``(N, inp, H, W)``.

        Returns
        -------
        numpy.ndarray
            ``(N, oup, H / stride, W / stride)``.
        """
        return super().forward(input) if self.use_res_connect else self.conv(input)

    def backward(self, grad_output: Any) -> Any:
        """d loss / d input of the last forward (parameter gradients added).

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        return super().backward(grad_output) if self.use_res_connect else self.conv.backward(grad_output)


class MobileNetV2(Sequential):
    """torchvision's MobileNetV2 (width 1.0, round_nearest 8) as a Sequential of named children.

    Children ``features`` (stem conv, 17 inverted residual blocks, 1x1 conv to 1280), ``avgpool``
    and ``flatten`` (torchvision calls the functional forms in its forward; they have no state),
    ``classifier`` (Dropout(0.2), Linear).  Initialised as torchvision does: convolutions Kaiming
    normal (fan_out), BatchNorms weight 1 bias 0, Linear N(0, 0.01) with a zero bias.

    Parameters
    ----------
    num_classes : int, default 1000
        Outputs of the classifier.
    dropout : float, default 0.2
        The classifier's dropout probability.
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> net = MobileNetV2(num_classes=4).eval()
    >>> net(np.ones((1, 3, 32, 32), np.float32)).shape, len(net.features)
    ((1, 4), 19)
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, dtype: npt.DTypeLike | None = None) -> None:
        dtype = check_module_dtype(dtype, None)
        channels, last_channel = make_divisible(32), make_divisible(1280)
        features: list[Module] = [Conv2dNormActivation(3, channels, stride=2, dtype=dtype)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out = make_divisible(c)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t, dtype=dtype))
                channels = out
        features.append(Conv2dNormActivation(channels, last_channel, kernel_size=1, dtype=dtype))
        super().__init__(OrderedDict([
            ("features", Sequential(*features)), ("avgpool", AdaptiveAvgPool2d((1, 1))), ("flatten", Flatten(1)),
            ("classifier", Sequential(Dropout(p=dropout), Linear(last_channel, num_classes, dtype=dtype)))]))
        self.last_channel = last_channel
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, Conv2d):
                kaiming_normal_fan_out(module)
            elif isinstance(module, Linear):
                module.weight[...] = generator().normal(0.0, 0.01, module.weight.shape)
                if module.bias is not None:
                    module.bias[...] = 0


def mobilenet_v2(*, weights: Any = None, num_classes: int = 1000, dtype: npt.DTypeLike | None = None) -> MobileNetV2:
    """MobileNetV2 as ``torchvision.models.mobilenet_v2``, randomly initialised.

    Parameters
    ----------
    weights : None
        Must be None: npconv ships architectures only (load a state dict yourself).
    num_classes : int, default 1000
        Outputs of the classifier.
    dtype : data-type, optional
        float32 (default) or float64.

    Returns
    -------
    MobileNetV2
        3,504,872 parameters with 1000 classes.

    Raises
    ------
    ValueError
        ``weights`` is not None.
    """
    refuse_weights(weights, "mobilenet_v2")
    return MobileNetV2(num_classes, dtype=dtype)
