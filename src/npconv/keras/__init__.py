"""Keras 3's convolution layers on npconv's engine: same arguments, weights, shapes and numbers.

``Conv1D/2D/3D``, ``Conv1D/2D/3DTranspose``, ``DepthwiseConv1D/2D`` and ``SeparableConv1D/2D``
take Keras 3's constructor arguments (same order and defaults), hold their weights in Keras's
layouts, build on the first call, and give Keras's output sizes ('same' is SAME_UPPER at any
stride; 'causal' for Conv1D) and values.  Each has ``backward(grad_output)``; weights are
``npconv.nn.Parameter`` arrays carrying ``.grad``, so ``npconv.optim`` trains them (and applies
their Keras constraints after each step).  Automatic names ('conv2d', 'conv2d_1', ...) are
counted per context: :func:`reset_names` starts them again, ``with fresh_names():`` scopes them.

Modules: ``layers`` (the kinds), ``base`` (what they share), ``training`` (regularizers,
constraints, losses), ``kernels`` (Keras and PyTorch weight layouts), ``geometry`` (Keras's
argument and shape rules), ``naming``.

>>> import numpy as np
>>> from npconv import keras
>>> layer = keras.Conv1D(2, 3, padding="causal")
>>> layer(np.ones((1, 5, 1), np.float32)).shape, layer.count_params()
((1, 5, 2), 8)
"""

from . import activations, constraints, geometry, initializers, regularizers
from .naming import fresh_names, reset_names
from .layers import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose,
                     DepthwiseConv1D, DepthwiseConv2D, KerasConv, SeparableConv1D, SeparableConv2D)

__all__ = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
           "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "KerasConv",
           "activations", "initializers", "regularizers", "constraints", "geometry", "reset_names", "fresh_names"]
