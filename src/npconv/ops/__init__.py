"""Operators beyond torch.nn, as torchvision.ops has them: deformable convolution (v1 and v2).

>>> import numpy as np
>>> from npconv.ops import deform_conv2d
>>> x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
>>> deform_conv2d(x, np.zeros((1, 18, 3, 3)), w).shape        # zero offsets: conv2d
(1, 3, 3, 3)
"""

from .deform import (DeformConvGrads, deform_conv, deform_conv2d, deform_conv2d_backward, deform_conv_backward,
                     sample_columns)
from .deform_spec import DeformSpec

__all__ = ["deform_conv2d", "deform_conv2d_backward", "DeformConvGrads", "DeformSpec", "deform_conv",
           "deform_conv_backward", "sample_columns"]
