"""Keras kernel layouts beside PyTorch's weight layouts, and weights kept in the engine's.

========================  =========================  ================================
layer                     Keras kernel               PyTorch weight (the engine's)
========================  =========================  ================================
Conv                      ``(*k, C_in/groups, F)``   ``(F, C_in/groups, *k)``
Conv*Transpose            ``(*k, F, C_in)``          ``(C_in, F, *k)``
Depthwise (multiplier M)  ``(*k, C_in, M)``          ``(C_in*M, 1, *k)``
========================  =========================  ================================

Conv and transposed move the same axes; depthwise output channel ``c*M + m`` comes from input
channel ``c``.  A layer keeps each kernel's numbers in the engine's layout and hands Keras a
transposed *view* of them (:func:`keras_view_parameter`), so the forward reads the weights
as they are: nothing is re-laid-out per call, and a value written into ``layer.kernel`` (in
place, by ``set_weights`` or by an optimizer) is the value the next call uses.

>>> import numpy as np
>>> kernel = keras_view_parameter(np.zeros((3, 3, 2, 4), np.float32))
>>> kernel.shape, torch_weight(kernel).shape, np.shares_memory(kernel, torch_weight(kernel))
((3, 3, 2, 4), (4, 2, 3, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..nn.module import Parameter

__all__ = ["torch_weight", "keras_kernel", "keras_view_parameter"]


def _torch_axes(n: int) -> tuple[int, ...]:
    """Keras ``(*k, a, b)`` -> PyTorch ``(b, a, *k)`` for ``n`` spatial dims."""
    return (n + 1, n) + tuple(range(n))


def _keras_axes(n: int) -> tuple[int, ...]:
    """PyTorch ``(b, a, *k)`` -> Keras ``(*k, a, b)``: the inverse of :func:`_torch_axes`."""
    return tuple(range(2, n + 2)) + (1, 0)


def torch_weight(kernel: npt.ArrayLike, depthwise: bool = False) -> np.ndarray:
    """Keras kernel -> PyTorch weight, C-contiguous.

    A view (no copy) when the kernel is a view of engine-layout memory
    (:func:`keras_view_parameter`), else a copy.

    Parameters
    ----------
    kernel : array_like
        A Keras kernel, ``(*k, a, b)`` (see the module's table).
    depthwise : bool, default False
        Read ``(*k, C_in, M)`` as a depthwise kernel: output channel ``c*M + m``.

    Returns
    -------
    numpy.ndarray
        ``(b, a, *k)``; depthwise ``(C_in*M, 1, *k)``.

    Examples
    --------
    >>> import numpy as np
    >>> torch_weight(np.zeros((3, 3, 4, 2)), depthwise=True).shape
    (8, 1, 3, 3)
    """
    kernel = np.asarray(kernel)
    if depthwise:  # (*k, C_in, M) -> (*k, 1, C_in*M): channel c*M + m
        kernel = kernel.reshape(kernel.shape[:-2] + (1, -1))
    return np.ascontiguousarray(kernel.transpose(_torch_axes(kernel.ndim - 2)))


def keras_kernel(weight: npt.ArrayLike, keras_shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`torch_weight`: a PyTorch-layout array in the Keras kernel's shape.

    Parameters
    ----------
    weight : array_like
        A PyTorch weight ``(b, a, *k)``.
    keras_shape : sequence of int
        The Keras kernel's shape (for a depthwise kernel, ``(*k, C_in, M)``).

    Returns
    -------
    numpy.ndarray
        C-contiguous, of ``keras_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> keras_kernel(np.zeros((4, 2, 3, 3)), (3, 3, 2, 4)).shape
    (3, 3, 2, 4)
    """
    weight = np.asarray(weight)
    return np.ascontiguousarray(weight.transpose(_keras_axes(weight.ndim - 2))).reshape(keras_shape)


def keras_view_parameter(values: npt.ArrayLike, depthwise: bool = False) -> Parameter:
    """A Keras-layout :class:`~npconv.nn.Parameter` whose memory is ``torch_weight(values)``.

    The parameter is a transposed view of a C-contiguous PyTorch-layout array, so
    :func:`torch_weight` of it is that array again, without a copy.

    Parameters
    ----------
    values : array_like
        The kernel's values in Keras's layout (copied).
    depthwise : bool, default False
        A depthwise ``(*k, C_in, M)`` kernel.

    Returns
    -------
    Parameter
        Keras-shaped, a view of engine-layout memory.
    """
    values = np.asarray(values)
    storage = torch_weight(values, depthwise)  # C-contiguous, in the engine's layout
    if np.shares_memory(storage, values):  # the parameter owns its numbers, as Parameter() does
        storage = storage.copy()
    view = storage.transpose(_keras_axes(values.ndim - 2)).reshape(values.shape)
    assert np.shares_memory(view, storage)  # splitting C_in*M into (C_in, M) never copies
    return view.view(Parameter)
