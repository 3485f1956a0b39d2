"""ResNet-18 and ResNet-50 as torchvision builds them (v1.5: the stride on the 3x3 conv).

Blocks are :class:`npconv.nn.Residual` containers, so their backward is composed, and the
state dict keys equal torchvision's (``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``,
``fc.bias``): a torchvision state dict converted to NumPy loads as it is.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy.typing as npt

from ..nn.adaptive import AdaptiveAvgPool2d
from ..nn.containers import Residual, Sequential
from ..nn.conv import Conv2d, check_module_dtype
from ..nn.layers import Flatten, Linear, MaxPool2d, ReLU
from ..nn.module import Module
from ..nn.norm import BatchNorm2d
from ..random import generator

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50", "refuse_weights"]


def refuse_weights(weights: Any, name: str) -> None:
    """Raise unless ``weights`` is None: npconv ships architectures, not pretrained weights.

    Parameters
    ----------
    weights : object
        The builder's ``weights`` argument.
    name : str
        The builder's name, for the message.

    Raises
    ------
    ValueError
        ``weights`` is not None.
    """
    if weights is not None:
        raise ValueError(
            f"{name}: weights={weights!r} is not supported: npconv.models ships architectures only "
            f"(no pretrained weights are downloaded). Build with weights=None, then load a state dict: "
            f"model.load_state_dict(npconv.load('{name}.safetensors')), or from PyTorch "
            f"model.load_state_dict({{k: v.numpy() for k, v in torch_model.state_dict().items()}})")


def kaiming_normal_fan_out(conv: Conv2d) -> None:
    """Draw ``conv.weight`` from N(0, 2 / fan_out) (torchvision's ResNet and MobileNet init).

    Parameters
    ----------
    conv : Conv2d
        fan_out = out_channels * kernel height * kernel width; a bias is set to zero.
    """
    weight = conv.weight
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    weight[...] = generator().normal(0.0, math.sqrt(2.0 / fan_out), weight.shape)
    if conv.bias is not None:
        conv.bias[...] = 0


def _conv3x3(inp: int, out: int, stride: int, dtype: npt.DTypeLike | None) -> Conv2d:
    """torchvision's ``conv3x3``: padding 1, no bias."""
    return Conv2d(inp, out, 3, stride=stride, padding=1, bias=False, dtype=dtype)


def _conv1x1(inp: int, out: int, stride: int, dtype: npt.DTypeLike | None) -> Conv2d:
    """torchvision's ``conv1x1``: no bias."""
    return Conv2d(inp, out, 1, stride=stride, bias=False, dtype=dtype)


class BasicBlock(Residual):
    """ResNet-18/34's block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    A :class:`npconv.nn.Residual` whose children are torchvision's ``conv1, bn1, relu, conv2,
    bn2`` and, when the shape changes, ``downsample`` (1x1 conv + BatchNorm); the final ReLU is
    the child ``after``.

    Parameters
    ----------
    inplanes : int
        Input channels.
    planes : int
        Output channels.
    stride : int, default 1
        Stride of ``conv1`` (and of the downsample).
    downsample : Module, optional
        The shortcut (None: the identity).
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> block = BasicBlock(4, 4)
    >>> y = block(np.ones((1, 4, 5, 5), np.float32))
    >>> y.shape, list(block.state_dict())[:3]
    ((1, 4, 5, 5), ['conv1.weight', 'bn1.weight', 'bn1.bias'])
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        body = OrderedDict([("conv1", _conv3x3(inplanes, planes, stride, dtype)),
                            ("bn1", BatchNorm2d(planes, dtype=dtype)), ("relu", ReLU(inplace=True)),
                            ("conv2", _conv3x3(planes, planes, 1, dtype)), ("bn2", BatchNorm2d(planes, dtype=dtype))])
        super().__init__(body, None if downsample is None else {"downsample": downsample}, after=ReLU(inplace=True))
        self.stride = stride


class Bottleneck(Residual):
    """ResNet-50's block: 1x1 reduce, 3x3 (carrying the stride, v1.5), 1x1 expand by 4, + shortcut.

    A :class:`npconv.nn.Residual` with torchvision's ``conv1, bn1, conv2, bn2, conv3, bn3`` and
    ``downsample``.  torchvision's one ``relu`` child, called three times, is here ``relu1``,
    ``relu2`` (in the body) and ``after`` (on the sum): each keeps its own mask for the backward.
    ReLUs have no state, so the state dict keys are torchvision's.

    Parameters
    ----------
    inplanes : int
        Input channels.
    planes : int
        Width of the 3x3 conv; the block outputs ``4 * planes`` channels.
    stride : int, default 1
        Stride of ``conv2`` (and of the downsample).
    downsample : Module, optional
        The shortcut (None: the identity).
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> block = Bottleneck(16, 4)
    >>> block(np.ones((1, 16, 3, 3), np.float32)).shape, list(block.state_dict())[-3:]
    ((1, 16, 3, 3), ['bn3.running_mean', 'bn3.running_var', 'bn3.num_batches_tracked'])
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        out = planes * self.expansion
        body = OrderedDict([
            ("conv1", _conv1x1(inplanes, planes, 1, dtype)), ("bn1", BatchNorm2d(planes, dtype=dtype)),
            ("relu1", ReLU(inplace=True)),
            ("conv2", _conv3x3(planes, planes, stride, dtype)), ("bn2", BatchNorm2d(planes, dtype=dtype)),
            ("relu2", ReLU(inplace=True)),
            ("conv3", _conv1x1(planes, out, 1, dtype)), ("bn3", BatchNorm2d(out, dtype=dtype))])
        super().__init__(body, None if downsample is None else {"downsample": downsample}, after=ReLU(inplace=True))
        self.stride = stride


class ResNet(Sequential):
    """torchvision's ResNet as a :class:`npconv.nn.Sequential` of named children.

    Children: ``conv1`` (7x7/2), ``bn1``, ``relu``, ``maxpool`` (3x3/2), ``layer1`` .. ``layer4``
    (Sequentials of blocks), ``avgpool``, ``flatten`` (torchvision calls ``torch.flatten`` in its
    forward instead; it has no state) and ``fc``.  Convolutions are drawn as torchvision draws
    them (Kaiming normal, fan_out), BatchNorms start at weight 1, bias 0 (``zero_init_residual``
    is False), ``fc`` has Linear's default init.

    Parameters
    ----------
    block : type
        :class:`BasicBlock` or :class:`Bottleneck`.
    layers : sequence of 4 int
        Blocks per stage.
    num_classes : int, default 1000
        Outputs of ``fc``.
    dtype : data-type, optional
        float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=3).eval()
    >>> net(np.ones((2, 3, 32, 32), np.float32)).shape
    (2, 3)
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int] | tuple[int, ...],
                 num_classes: int = 1000, dtype: npt.DTypeLike | None = None) -> None:
        dtype = check_module_dtype(dtype, None)
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must give 4 stage depths, got {len(layers)}: {list(layers)}")
        stem = [("conv1", Conv2d(3, 64, 7, stride=2, padding=3, bias=False, dtype=dtype)),
                ("bn1", BatchNorm2d(64, dtype=dtype)), ("relu", ReLU(inplace=True)),
                ("maxpool", MaxPool2d(kernel_size=3, stride=2, padding=1))]
        stages, inplanes = [], 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stages.append((f"layer{i + 1}", make_layer(block, inplanes, planes, depth, 1 if i == 0 else 2, dtype)))
            inplanes = planes * block.expansion
        head = [("avgpool", AdaptiveAvgPool2d((1, 1))), ("flatten", Flatten(1)),
                ("fc", Linear(512 * block.expansion, num_classes, dtype=dtype))]
        super().__init__(OrderedDict(stem + stages + head))
        for module in self.modules():
            if isinstance(module, Conv2d):
                kaiming_normal_fan_out(module)



def make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, depth: int, stride: int,
               dtype: npt.DTypeLike | None) -> Sequential:
    """One ResNet stage, as torchvision's ``_make_layer``: ``depth`` blocks, the first one strided.

    Parameters
    ----------
    block : type
        :class:`BasicBlock` or :class:`Bottleneck`.
    inplanes : int
        The stage's input channels.
    planes : int
        The blocks' width (output ``planes * block.expansion``).
    depth : int
        Number of blocks.
    stride : int
        The first block's stride.
    dtype : data-type or None
        The parameters' dtype.

    Returns
    -------
    Sequential
        The blocks, children '0', '1', ...; the first has a ``downsample`` when the shape changes.
    """
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = Sequential(_conv1x1(inplanes, out, stride, dtype), BatchNorm2d(out, dtype=dtype))
    blocks: list[Module] = [block(inplanes, planes, stride, downsample, dtype=dtype)]
    blocks += [block(out, planes, dtype=dtype) for _ in range(1, depth)]
    return Sequential(*blocks)


def resnet18(*, weights: Any = None, num_classes: int = 1000, dtype: npt.DTypeLike | None = None) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]) as ``torchvision.models.resnet18``, randomly initialised.

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
    ResNet
        11,689,512 parameters with 1000 classes.

    Raises
    ------
    ValueError
        ``weights`` is not None.
    """
    refuse_weights(weights, "resnet18")
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, dtype)


def resnet50(*, weights: Any = None, num_classes: int = 1000, dtype: npt.DTypeLike | None = None) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]) as ``torchvision.models.resnet50``, randomly initialised.

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
    ResNet
        25,557,032 parameters with 1000 classes.

    Raises
    ------
    ValueError
        ``weights`` is not None.
    """
    refuse_weights(weights, "resnet50")
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, dtype)
