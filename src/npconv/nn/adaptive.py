"""Adaptive pooling, as ``torch.nn.AdaptiveAvgPool1d/2d/3d`` and ``AdaptiveMaxPool2d``: the
output size is given and each output cell pools the window PyTorch gives it,
``start = floor(i * In / Out)``, ``end = ceil((i + 1) * In / Out)`` along each spatial dim
(windows overlap when Out does not divide In).

Both pools are separable, so they run one spatial dim at a time (a loop over that dim's
output cells), keeping the input's memory layout (channels-last stays channels-last).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..arrays import as_real_array
from .module import Module

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
           "adaptive_windows"]

OutputSize = int | None | Sequence[int | None]


def adaptive_windows(in_size: int, out_size: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows along one dim.

    Parameters
    ----------
    in_size, out_size : int
        The input's and the output's size along the dim.

    Returns
    -------
    list of (int, int)
        ``(start, end)`` of each output cell's window: ``floor(i * in / out)`` and
        ``ceil((i + 1) * in / out)``.

    Examples
    --------
    >>> adaptive_windows(7, 3)
    [(0, 3), (2, 5), (4, 7)]
    """
    return [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)) for i in range(out_size)]


def _check_output_size(output_size: Any, n: int, op: str) -> None:
    """Refuse an output size PyTorch would refuse (here, before any input is seen)."""
    entries = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size]
    if isinstance(output_size, (tuple, list)) and len(entries) != n:
        raise ValueError(f"{op}: output_size must be {n} (an int or a sequence of {n}), "
                         f"got {len(entries)} entries: {output_size!r}")
    for entry in entries:
        if entry is None and n == 1:
            raise TypeError(f"{op}(): argument 'output_size' must be tuple of ints, not NoneType "
                            f"(None keeps an input size only in the 2-D and 3-D pools)")
        if entry is not None and (isinstance(entry, bool) or not isinstance(entry, (int, np.integer))):
            raise TypeError(f"{op}(): argument 'output_size' must be an int, None or a tuple of them, "
                            f"got {type(entry).__name__} in {output_size!r}")
        if entry is not None and entry < 0:
            raise ValueError(f"{op}: elements of output_size must be greater than or equal to 0 "
                             f"but received {output_size!r}")


def _cell(axis: int, index: slice) -> tuple[slice, ...]:
    """An index selecting ``index`` along ``axis`` (every element along the dims before it)."""
    return (slice(None),) * axis + (index,)


class _AdaptivePoolNd(Module):
    """Output size, input checks and window geometry shared by the adaptive pools."""

    _n = 2
    _op = "adaptive_avg_pool2d"

    def __init__(self, output_size: OutputSize) -> None:
        super().__init__()
        _check_output_size(output_size, self._n, self._op)
        self.output_size = output_size

    def _input(self, input: npt.ArrayLike) -> tuple[np.ndarray, bool]:
        """The input as a batched real array, and whether it came batched."""
        name, n = type(self).__name__, self._n
        x = as_real_array(input, "input", name, why=f"PyTorch's {name} has no complex kernel")
        if x.ndim not in (n + 1, n + 2):
            raise ValueError(f"{self._op}(): Expected {n + 1}D or {n + 2}D tensor, but got {list(x.shape)} "
                             f"(rule: (C, *spatial) or (N, C, *spatial) with {n} spatial dims)")
        batched = x.ndim == n + 2
        for dim in range(x.ndim - n - 1, x.ndim):
            if x.shape[dim] == 0:
                raise ValueError(f"{self._op}(): Expected input to have non-zero size for non-batch "
                                 f"dimensions, but input has sizes {list(x.shape)} with dimension {dim} "
                                 f"being empty")
        return (x if batched else x[None]), batched

    def output_spatial(self, in_spatial: Sequence[int]) -> tuple[int, ...]:
        """The output's spatial size for an input of ``in_spatial``.

        Parameters
        ----------
        in_spatial : sequence of int
            The input's spatial size.

        Returns
        -------
        tuple of int
            ``output_size`` per dim, a None entry keeping that dim's input size.
        """
        size: Any = self.output_size
        entries = list(size) if isinstance(size, (tuple, list)) else [size] * self._n
        return tuple(i if o is None else int(o) for i, o in zip(in_spatial, entries))

    def extra_repr(self) -> str:
        """``'output_size=...'`` with the value as it was given, as PyTorch shows it."""
        return f"output_size={self.output_size}"


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The mean of each output cell's window.

        Parameters
        ----------
        input : array_like
            ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``, real.

        Returns
        -------
        numpy.ndarray
            ``(N, C, *output spatial)`` (unbatched: without N), in the input's dtype and
            memory layout.

        Raises
        ------
        ValueError
            An input of the wrong rank or with an empty spatial or channel dim.
        TypeError
            A complex input.
        """
        x, batched = self._input(input)
        out = self.output_spatial(x.shape[2:])
        acc = np.float64 if x.dtype != np.float64 else x.dtype  # sums in float64
        spatial = tuple(range(2, x.ndim))
        if all(o == 1 for o in out):  # global average: one reduction, layout kept
            y = x.mean(axis=spatial, keepdims=True, dtype=acc)
        else:
            y = x
            for axis, o in zip(spatial, out):
                y = _mean_windows(y, axis, adaptive_windows(y.shape[axis], o), acc)
        self._saved = (x, out, batched)
        y = y.astype(x.dtype, copy=y is x)  # a new array even where every window is one element
        return y if batched else y[0]

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Each output's gradient shared equally over its window (summed where windows overlap).

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input, in the last input's shape and memory layout.

        Raises
        ------
        RuntimeError
            No forward ran before.
        """
        if not hasattr(self, "_saved"):
            raise RuntimeError(f"{type(self).__name__}.backward: run forward first")
        x, out, batched = self._saved
        gy = np.asarray(grad_output)
        g = gy if batched else gy[None]
        gx = np.empty_like(x, dtype=gy.dtype)
        if all(o == 1 for o in out):
            gx[...] = g / math.prod(x.shape[2:])
        else:
            for axis in reversed(range(2, x.ndim)):
                g = _mean_windows_adjoint(g, axis, adaptive_windows(x.shape[axis], g.shape[axis]), x.shape[axis])
            gx[...] = g
        return gx if batched else gx[0]


def _mean_windows(x: np.ndarray, axis: int, windows: list[tuple[int, int]], acc: Any) -> np.ndarray:
    """The mean of each window along ``axis`` (accumulated in ``acc``), in ``x``'s layout."""
    if len(windows) == x.shape[axis] and all(e - s == 1 for s, e in windows):
        return x  # identity along this dim
    shape = x.shape[:axis] + (len(windows),) + x.shape[axis + 1:]
    y = np.empty_like(x, shape=shape, dtype=acc)
    for i, (start, end) in enumerate(windows):
        np.mean(x[_cell(axis, slice(start, end))], axis=axis, keepdims=True, dtype=acc,
                out=y[_cell(axis, slice(i, i + 1))])
    return y


def _mean_windows_adjoint(g: np.ndarray, axis: int, windows: list[tuple[int, int]], in_size: int) -> np.ndarray:
    """The adjoint of :func:`_mean_windows`: each gradient spread evenly over its window."""
    if len(windows) == in_size and all(e - s == 1 for s, e in windows):
        return g
    shape = g.shape[:axis] + (in_size,) + g.shape[axis + 1:]
    gx = np.zeros_like(g, shape=shape)
    for i, (start, end) in enumerate(windows):
        gx[_cell(axis, slice(start, end))] += g[_cell(axis, slice(i, i + 1))] / (end - start)
    return gx


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling to a given length, as ``torch.nn.AdaptiveAvgPool1d``.

    Parameters
    ----------
    output_size : int or tuple of one int
        The output's length.

    Raises
    ------
    ValueError
        A negative size or a tuple of another length.
    TypeError
        None, a float or a bool as the size.

    Examples
    --------
    >>> import numpy as np
    >>> pool = AdaptiveAvgPool1d(3)
    >>> pool(np.arange(7.0)[None]), pool
    (array([[1., 3., 5.]]), AdaptiveAvgPool1d(output_size=3))
    """

    _n = 1
    _op = "adaptive_avg_pool1d"


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a given height and width, as ``torch.nn.AdaptiveAvgPool2d``.

    Parameters
    ----------
    output_size : int, None or tuple of two (int or None)
        The output's (H, W); an int is both; None keeps that dim's input size.

    Raises
    ------
    ValueError
        A negative size or a tuple of another length.
    TypeError
        A float or a bool as a size.

    Examples
    --------
    >>> import numpy as np
    >>> pool = AdaptiveAvgPool2d((1, None))
    >>> pool(np.arange(6.0).reshape(1, 2, 3)), pool
    (array([[[1.5, 2.5, 3.5]]]), AdaptiveAvgPool2d(output_size=(1, None)))
    """

    _n = 2
    _op = "adaptive_avg_pool2d"


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling to a given depth, height and width, as ``torch.nn.AdaptiveAvgPool3d``.

    Parameters
    ----------
    output_size : int, None or tuple of three (int or None)
        The output's (D, H, W); an int is all three; None keeps that dim's input size.

    Raises
    ------
    ValueError
        A negative size or a tuple of another length.
    TypeError
        A float or a bool as a size.

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveAvgPool3d(1)(np.arange(8.0).reshape(1, 1, 2, 2, 2))
    array([[[[[3.5]]]]])
    """

    _n = 3
    _op = "adaptive_avg_pool3d"


class AdaptiveMaxPool2d(_AdaptivePoolNd):
    """Max pooling to a given height and width, as ``torch.nn.AdaptiveMaxPool2d``.

    As PyTorch: among equal maxima the first (row-major) wins, and a window holding NaN
    gives NaN from its last NaN.

    Parameters
    ----------
    output_size : int, None or tuple of two (int or None)
        The output's (H, W); an int is both; None keeps that dim's input size.
    return_indices : bool, default False
        Also return each maximum's flat index within its (H, W) plane (int64).

    Raises
    ------
    ValueError
        A negative size or a tuple of another length.
    TypeError
        A float or a bool as a size.

    Examples
    --------
    >>> import numpy as np
    >>> pool = AdaptiveMaxPool2d((1, 2), return_indices=True)
    >>> pool(np.array([[[1.0, 5.0, 2.0], [4.0, 0.0, 3.0]]]))
    (array([[[5., 5.]]]), array([[[1, 1]]]))
    >>> pool.backward(np.array([[[1.0, 2.0]]]))
    array([[[0., 3., 0.],
            [0., 0., 0.]]])
    """

    _n = 2
    _op = "adaptive_max_pool2d"

    def __init__(self, output_size: OutputSize, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: npt.ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The maximum of each output cell's window.

        Parameters
        ----------
        input : array_like
            ``(N, C, H, W)`` or unbatched ``(C, H, W)``, real.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            ``(N, C, *output size)`` (unbatched: without N) in the input's dtype and layout;
            with ``return_indices``, also the maxima's flat ``h * W + w`` indices (int64).

        Raises
        ------
        ValueError
            An input of the wrong rank or with an empty spatial or channel dim.
        TypeError
            A complex input.
        """
        x, batched = self._input(input)
        out = self.output_spatial(x.shape[2:])
        y, index = _window_max(x, out)
        self._saved = (x, index, batched)
        if not batched:
            y, index = y[0], index[0]
        return (y, index) if self.return_indices else y

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Each output's gradient sent to where its maximum came from (summed where windows
        overlap).

        Parameters
        ----------
        grad_output : array_like
            d loss / d output (the pooled values only), in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input, in the last input's shape and memory layout.

        Raises
        ------
        RuntimeError
            No forward ran before.
        """
        if not hasattr(self, "_saved"):
            raise RuntimeError(f"{type(self).__name__}.backward: run forward first")
        x, index, batched = self._saved
        gy = np.asarray(grad_output)
        g = gy if batched else gy[None]
        planes, plane_size = x.shape[0] * x.shape[1], math.prod(x.shape[2:])
        offsets = (np.arange(planes, dtype=np.int64) * plane_size).reshape(x.shape[:2] + (1,) * (x.ndim - 2))
        flat = np.bincount((index + offsets).ravel(), weights=np.ravel(g), minlength=planes * plane_size)
        gx = np.empty_like(x, dtype=gy.dtype)
        gx[...] = flat.reshape(x.shape)
        return gx if batched else gx[0]


def _window_max(x: np.ndarray, out: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling of batched ``x``: the maxima and their flat per-plane indices.

    The innermost dim is reduced first, so that picking the first maximum (and the last NaN)
    along each dim picks PyTorch's element in row-major order."""
    shape = x.shape[:2] + out
    if 0 in shape:
        return np.empty_like(x, shape=shape), np.zeros(shape, np.int64)
    values, index = x, None
    multiplier = 1
    for axis in reversed(range(2, x.ndim)):
        values, index = _max_along(values, index, axis, adaptive_windows(x.shape[axis], out[axis - 2]),
                                   multiplier)
        multiplier *= x.shape[axis]
    assert index is not None
    return values, index


def _max_along(values: np.ndarray, index: np.ndarray | None, axis: int, windows: list[tuple[int, int]],
               multiplier: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce ``axis`` to one maximum per window, carrying the flat index of each maximum
    (``index``: the part from the dims already reduced; None before the first)."""
    shape = values.shape[:axis] + (len(windows),) + values.shape[axis + 1:]
    best = np.empty_like(values, shape=shape)
    best_index = np.empty_like(values, shape=shape, dtype=np.int64)
    for i, (start, end) in enumerate(windows):
        window = values[_cell(axis, slice(start, end))]
        pick = _first_max(window, axis)
        cell = _cell(axis, slice(i, i + 1))
        best[cell] = np.take_along_axis(window, pick, axis)
        position = (pick + start) * multiplier
        if index is not None:
            position += np.take_along_axis(index[_cell(axis, slice(start, end))], pick, axis)
        best_index[cell] = position
    return best, best_index


def _first_max(window: np.ndarray, axis: int) -> np.ndarray:
    """Position of the first maximum along ``axis`` (keepdims), or of the LAST NaN where the
    window holds one (PyTorch's kernel takes every NaN it meets)."""
    pick = np.argmax(window, axis=axis, keepdims=True)  # the first NaN if any
    nan = np.isnan(window)
    if nan.any():
        last_nan = window.shape[axis] - 1 - np.argmax(np.flip(nan, axis), axis=axis, keepdims=True)
        pick = np.where(np.take_along_axis(nan, pick, axis), last_nan, pick)
    return pick
