"""torchvision's classic image classifiers on npconv: the same architectures, module names and
state dict keys, so a torchvision state dict (converted to NumPy arrays) loads as it is.

No pretrained weights are shipped or downloaded: build with ``weights=None`` and load a state
dict (``model.load_state_dict(npconv.load("resnet18.safetensors"))``).  Every model trains:
``forward``, ``backward`` and the optimizers of :mod:`npconv.optim`.
"""

from __future__ import annotations

from .convnext import CNBlock, ConvNeXt, LayerNorm2d, Permute, StochasticDepth, convnext_tiny
from .mobilenet import Conv2dNormActivation, InvertedResidual, MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50

__all__ = ["resnet18", "resnet50", "mobilenet_v2", "convnext_tiny", "ResNet", "BasicBlock", "Bottleneck",
           "MobileNetV2", "InvertedResidual", "Conv2dNormActivation", "ConvNeXt", "CNBlock", "LayerNorm2d",
           "Permute", "StochasticDepth"]
