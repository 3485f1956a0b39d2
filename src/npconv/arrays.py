"""The dtype policy: which arrays npconv takes, the dtype it computes in and the dtype it returns.

- float32 in -> float32 out, float64 -> float64;
- float16 is computed in float32 and returned as float16 (as PyTorch's CPU kernels accumulate);
- operands of different float dtypes are promoted with NumPy's rules (float32 + float64 -> float64);
- bool and integer arrays (and array-likes such as nested lists of ints) become float64;
- complex64 -> complex64, complex128 -> complex128, in the convolution family (:func:`as_array`:
  ``npconv.conv``, ``npconv.functional``, ``npconv.grad``, the conv modules of ``npconv.nn``);
  real and complex operands promote as NumPy does (float32 + complex64 -> complex64,
  float64 + complex64 -> complex128, float16 + complex64 -> complex64).  The faces whose peers
  have no complex convolution (Keras, ONNX, the deformable op) refuse complex
  (:func:`as_real_array`);
- anything else (complex256, strings, objects, ragged lists) is refused with ``TypeError``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SUPPORTED_FLOATS = (np.float16, np.float32, np.float64)
SUPPORTED_COMPLEX = (np.complex64, np.complex128)
# where complex is taken, for the refusals of the faces that take real numbers only
COMPLEX_FACES = "npconv.conv, npconv.functional, npconv.grad and npconv.nn's conv modules take complex"


def as_array(value: npt.ArrayLike | None, name: str, op: str = "conv") -> np.ndarray:
    """``value`` as an ndarray of a supported real or complex dtype, refusing what cannot be one.

    Parameters
    ----------
    value : array_like
        float16/32/64 and complex64/128 stay as they are; bools and ints become float64.
    name, op : str
        The operand's and the caller's names, for messages.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TypeError
        None, complex256, strings, objects, ragged lists.

    Examples
    --------
    >>> as_array([[1 + 2j]], "input").dtype
    dtype('complex128')
    """
    array = _numeric(value, name, op)
    if array.dtype.type in SUPPORTED_COMPLEX:
        return array
    if array.dtype.kind == "c":
        raise TypeError(f"{op}: {name} must hold complex64 or complex128 numbers (or real ones), "
                        f"got dtype {array.dtype}")
    return as_real_array(array, name, op)


def as_real_array(value: npt.ArrayLike | None, name: str, op: str = "conv", why: str = "") -> np.ndarray:
    """``value`` as an ndarray of a supported float dtype, refusing what cannot be one.

    Parameters
    ----------
    value : array_like
        float16/32/64 stay as they are; bools and ints become float64.
    name, op : str
        The operand's and the caller's names, for messages.
    why : str, optional
        Why this face refuses complex (its peer has no complex convolution), for the message.

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
    array = _numeric(value, name, op)
    kind = array.dtype.kind
    if kind == "c":
        reason = why or f"{op} takes real numbers only"
        raise TypeError(f"{op}: {name} is complex ({array.dtype}): {reason} ({COMPLEX_FACES})")
    if kind in "biu":
        return array.astype(np.float64)
    if kind == "f" and array.dtype.type in SUPPORTED_FLOATS:
        return array
    raise TypeError(f"{op}: {name} must hold real numbers (float16, float32, float64, int or bool), "
                    f"got dtype {array.dtype}")


def _numeric(value: npt.ArrayLike | None, name: str, op: str) -> np.ndarray:
    if value is None:
        raise TypeError(f"{op}: {name} must be an array, got None")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{op}: {name} could not be read as a numeric array ({exc})") from None


def real_dtype(dtype: npt.DTypeLike) -> np.dtype:
    """The real dtype of a complex one's parts (complex64 -> float32); a real dtype itself."""
    return np.empty(0, dtype).real.dtype


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
