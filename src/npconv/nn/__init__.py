"""torch.nn's convolution modules and the companions a CNN needs, on NumPy arrays.

Every module has ``forward`` (also ``module(x)``) and ``backward(grad_output)``; parameters
are :class:`Parameter` arrays carrying ``.grad``.
"""

from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                   LazyConv1d, LazyConv2d, LazyConv3d, LazyConvTranspose1d, LazyConvTranspose2d,
                   LazyConvTranspose3d)
from .fold import Fold, Unfold
from .layers import (AvgPool1d, AvgPool2d, AvgPool3d, Dropout, Flatten, Linear, MaxPool1d, MaxPool2d,
                     MaxPool3d, ReLU)
from .loss import CrossEntropyLoss
from .module import Module, Parameter
from .activation import GELU, Hardsigmoid, Hardswish, Identity, ReLU6, Sigmoid, SiLU, Tanh
from .adaptive import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool2d
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm
from .containers import Concat, Residual, Sequential
from .depthwise_separable import DepthwiseSeparableConv2d
from .deform import DeformConv2d
from .fuse import ConvActivation, fuse

__all__ = ["Module", "Parameter", "Sequential", "Residual", "Concat", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
           "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
           "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d", "Unfold", "Fold",
           "DepthwiseSeparableConv2d", "DeformConv2d",
           "ReLU", "Flatten", "Linear", "Dropout", "MaxPool1d", "MaxPool2d", "MaxPool3d",
           "AvgPool1d", "AvgPool2d", "AvgPool3d", "CrossEntropyLoss",
           "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
           "ReLU6", "SiLU", "GELU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Identity",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
           "fuse", "ConvActivation"]
