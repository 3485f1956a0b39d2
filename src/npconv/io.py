"""Weight files: ``.safetensors`` (the safetensors package's NumPy API) and ``.npz``.

Nothing is ever unpickled: ``.npz`` files are read with ``allow_pickle=False`` and object
arrays are refused on the way in and out.  A malformed or truncated file raises
``ValueError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

FORMATS = (".safetensors", ".npz")


def _format(path) -> str:
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise ValueError(f"weight file {str(path)!r}: unknown format {suffix!r}, expected one of {FORMATS}")
    return suffix


def _plain_arrays(state_dict) -> dict:
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"state_dict[{key!r}] is an object array; weight files hold numbers only")
        arrays[key] = np.ascontiguousarray(array).view(np.ndarray)
    return arrays


def save(state_dict, path) -> None:
    """Write a state dict (name -> array) as .safetensors or .npz, chosen by the suffix."""
    arrays = _plain_arrays(state_dict)
    if _format(path) == ".npz":
        np.savez(path, **arrays)
    else:
        _safetensors().save_file(arrays, str(path))


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read a state dict written by :func:`save` (or by PyTorch's safetensors export)."""
    kind = _format(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist")
    try:
        if kind == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return OrderedDict((key, archive[key]) for key in archive.files)
        return OrderedDict(_safetensors().load_file(str(path)).items())
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"weight file {str(path)!r} is not a valid {kind} file: {error}") from None
    except Exception as error:  # safetensors' own error type for malformed headers
        if type(error).__name__ == "SafetensorError":
            raise ValueError(f"weight file {str(path)!r} is not a valid {kind} file: {error}") from None
        raise


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("reading and writing .safetensors needs the safetensors package: "
                          "pip install 'npconv[safetensors]' (or use .npz)") from None
    return safetensors.numpy
