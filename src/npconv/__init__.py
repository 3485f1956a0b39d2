"""npconv: PyTorch's convolution family on NumPy, exact to PyTorch's numbers.

>>> import numpy as np, npconv
>>> x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
>>> npconv.functional.conv2d(x, np.ones((1, 1, 3, 3), np.float32), stride=2, padding=1).shape
(1, 1, 3, 3)
"""

# importing npconv sets no environment variable: npconv.cpu.tune_environment() is the advice
from . import compiled, cpu  # noqa: F401
from . import functional, grad, nn, optim  # noqa: E402
from . import convert, keras, models, onnx, ops, separable  # noqa: E402
from .settings import config  # noqa: E402
from .core import conv  # noqa: E402
from .io import load, save  # noqa: E402
from .random import manual_seed  # noqa: E402
from .select import choose_algorithm, set_algorithm, set_autotune  # noqa: E402
from .spec import ConvSpec  # noqa: E402
from .spec_errors import ConvRuleError, ConvRuleTypeError  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402
from .workspace import set_workspace_limit  # noqa: E402

import importlib.metadata as _metadata  # noqa: E402

try:  # single-sourced: the version in pyproject.toml, read from the installed metadata
    __version__ = _metadata.version("npconv")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, not installed
    __version__ = "0+unknown"
__all__ = ["conv", "config", "ConvSpec", "ConvRuleError", "ConvRuleTypeError", "functional", "grad", "nn", "optim", "keras", "models", "onnx", "ops", "convert", "separable", "save", "load", "manual_seed",
           "choose_algorithm", "set_algorithm", "set_autotune", "set_workspace_limit", "set_num_threads",
           "get_num_threads", "__version__"]
