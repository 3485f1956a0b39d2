"""npconv: PyTorch's convolution family on NumPy, exact to PyTorch's numbers.

>>> import numpy as np, npconv
>>> x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
>>> npconv.functional.conv2d(x, np.ones((1, 1, 3, 3), np.float32), stride=2, padding=1).shape
(1, 1, 3, 3)
"""

from . import functional, grad, nn, optim
from .core import conv
from .io import load, save
from .random import manual_seed
from .spec import ConvSpec

__version__ = "0.1.0"
__all__ = ["conv", "ConvSpec", "functional", "grad", "nn", "optim", "save", "load", "manual_seed",
           "__version__"]
