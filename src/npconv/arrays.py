"""The dtype policy: which arrays npconv takes, the dtype it computes in and the dtype it returns.

- float32 in -> float32 out, float64 -> float64;
- float16 is computed in float32 and returned as float16 (as PyTorch's CPU kernels accumulate);
- operands of different float dtypes are promoted with NumPy's rules (float32 + float64 -> float64);
- bool and integer arrays (and array-likes such as nested lists of ints) become float64;
- anything else (complex, strings, objects, ragged lists) is refused with ``TypeError``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SUPPORTED_FLOATS = (np.float16, np.float32, np.float64)


def as_real_array(value: npt.ArrayLike | None, name: str, op: str = "conv") -> np.ndarray:
    """``value`` as an ndarray of a supported float dtype, refusing what cannot be one.

    Parameters
    ----------
    value : array_like
        float16/32/64 stay as they are; bools and ints become float64.
    name, op : str
        The operand's and the caller's names, for messages.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TypeError
        None, complex, strings, objects, ragged lists.

    Examples
    --------
    >>> as_real_array([[1, 2]], "input").dtype
    dtype('float64')
    """
    if value is None:
        raise TypeError(f"{op}: {name} must be an array, got None")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{op}: {name} could not be read as a numeric array ({exc})") from None
    kind = array.dtype.kind
    if kind in "biu":
        return array.astype(np.float64)
    if kind == "f" and array.dtype.type in SUPPORTED_FLOATS:
        return array
    raise TypeError(f"{op}: {name} must hold real numbers (float16, float32, float64, int or bool), "
                    f"got dtype {array.dtype}")


def compute_dtypes(*arrays: np.ndarray | None) -> tuple[np.dtype, np.dtype]:
    """(dtype to compute in, dtype to return) for these operands."""
    result = np.result_type(*[a.dtype for a in arrays if a is not None])
    compute = np.dtype(np.float32) if result == np.float16 else result
    return compute, result


def is_channels_last(array: np.ndarray) -> bool:
    """Whether an (N, C, *spatial) array is channels-last in memory (PyTorch's channels_last and
    channels_last_3d): an (N, C, *spatial) view of C-contiguous (N, *spatial, C) data.  An array
    that is also C-contiguous (one channel, or one position) counts as channels-first."""
    return (array.ndim >= 3 and not array.flags.c_contiguous
            and np.moveaxis(array, 1, -1).flags.c_contiguous)


def as_channels_last(array: np.ndarray) -> np.ndarray:
    """The same values, (N, C, *spatial)-shaped, channels-last in memory (one copy, none if already)."""
    if is_channels_last(array):
        return array
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(array, 1, -1)), -1, 1)
