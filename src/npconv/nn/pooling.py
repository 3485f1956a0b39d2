"""Max and average pooling, 1-, 2- and 3-D, with forward and backward: one N-d
implementation on the convolution's window gathering (im2col) and its adjoint (col2im)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import compiled
from ..arrays import as_real_array, is_channels_last
from ..spec import check_input_rank, ntuple
from ..windows import col2im, im2col
from .module import Module

__all__ = ["PoolNd", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"]


class PoolNd(Module):
    """Window geometry shared by max and average pooling (N-d, one implementation)."""

    _n = 2
    _dilated = True
    kernel_size: Any
    stride: Any
    padding: Any
    ceil_mode: bool

    def window_geometry(self, in_spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                                                  tuple[tuple[int, int], ...], tuple[int, ...]]:
        """The pooling windows' geometry for inputs of ``in_spatial``.

        Parameters
        ----------
        in_spatial : sequence of int
            The input's spatial size.

        Returns
        -------
        tuple
            (kernel, stride, dilation, (lo, hi) pads, output size), each a tuple per spatial
            dim; the pads' ``hi`` includes what a ceil_mode window hangs past the input.

        Raises
        ------
        ValueError
            Padding above half the effective kernel, or an input too small for one window,
            in PyTorch's words (other faces read them here).
        """
        n, name = self._n, type(self).__name__
        k = ntuple(self.kernel_size, n, "kernel_size", name)
        s = ntuple(self.stride, n, "stride", name)
        p = ntuple(self.padding, n, "padding", name)
        d = ntuple(getattr(self, "dilation", 1), n, "dilation", name)
        ek = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        for pp, kk, e in zip(p, k, ek):
            if pp > e // 2:
                raise ValueError(f"{name}: pad should be at most half of effective kernel size, but got "
                                 f"pad={pp}, kernel_size={kk} and dilation={e // kk if kk else 1} "
                                 f"(rule: padding <= (dilation * (kernel_size - 1) + 1) // 2 = {e // 2})")
        out = []
        for i, pp, e, ss in zip(in_spatial, p, ek, s):
            span = i + 2 * pp - e
            o = (-(-span // ss) if self.ceil_mode else span // ss) + 1
            if self.ceil_mode and (o - 1) * ss >= i + pp:  # the last window must start inside
                o -= 1
            if span < 0 or o < 1:
                raise ValueError(f"{name}: input spatial size {tuple(in_spatial)} is too small for kernel "
                                 f"{k} with padding {p} and dilation {d}")
            out.append(o)
        pads = tuple((pp, max(pp, (o - 1) * ss + e - i - pp)) for i, pp, e, ss, o in zip(in_spatial, p, ek, s, out))
        return k, s, d, pads, tuple(out)

    def _batched(self, input: npt.ArrayLike) -> tuple[np.ndarray, bool]:
        name = type(self).__name__
        reason = "no order to take a max by" if name.startswith("Max") else "avg_pool is not implemented for complex"
        x = as_real_array(input, "input", name, why=f"PyTorch's {name} has no complex kernel ({reason})")
        batched = check_input_rank(type(self).__name__, self._n, x.shape)
        return (x if batched else x[None]), batched


class _MaxPoolNd(PoolNd):
    _winners: Any  # which tap won (training), or what an evaluation backward finds them from
    def __init__(self, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0, dilation: int | tuple[int, ...] = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise ValueError(f"{type(self).__name__}: return_indices=True is not supported by npconv")
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode
        self.return_indices = return_indices

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The maximum of each window (NaN wins, as in PyTorch).

        Parameters
        ----------
        input : array_like
            ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.

        Returns
        -------
        numpy.ndarray
            ``(N, C, *out_spatial)`` (unbatched: without N).

        Raises
        ------
        ValueError
            A window that does not fit (see :meth:`PoolNd.window_geometry`).
        """
        x, batched = self._batched(input)
        k, s, d, pads, out = self.window_geometry(x.shape[2:])
        self._saved = (x.shape, k, s, d, pads, out, batched)
        if _compiled_planes(x):  # channels-first 2-D maps: a compiled loop per plane
            y, winners = _max_pool_planes(x, k, s, d, pads, out, self.training)
            # training: which tap won, now (the input may change later); evaluation: the input,
            # the winners found again only if a backward asks
            self._winners = winners if self.training else x
            return y if batched else y[0]
        taps = _tap_views(k, s, d, out)  # else the maximum over strided views of the padded input
        padded = _padded(x, pads, -np.inf)
        y = _empty_in_layout(x, x.shape[:2] + out)
        y[...] = padded[taps[0]]
        for tap in taps[1:]:
            np.maximum(y, padded[tap], out=y)  # NaN wins, as in PyTorch
        self._winners = [_first_winners(padded, taps, y)] if self.training else (padded, y)
        return y if batched else y[0]

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Each output's gradient sent to the position its maximum came from (the first
        maximum of the window, summed where windows overlap).

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        shape, k, s, d, pads, out, batched = self._saved
        if isinstance(self._winners, np.ndarray):  # the compiled forward ran
            return self._compiled_backward(grad_output)
        taps = _tap_views(k, s, d, out)
        winners = _first_winners(self._winners[0], taps, self._winners[1]) if isinstance(self._winners, tuple) \
            else self._winners[0]
        gy = np.asarray(grad_output)
        gy = gy if batched else gy[None]
        padded_shape = shape[:2] + tuple(i + lo + hi for i, (lo, hi) in zip(shape[2:], pads))
        grad = _empty_in_layout(gy, padded_shape)
        grad[...] = 0
        for index, tap in enumerate(taps):
            grad[tap] += np.where(winners == index, gy, 0)
        gx = grad[(slice(None), slice(None)) + tuple(slice(lo, lo + i) for i, (lo, _) in zip(shape[2:], pads))]
        return gx if batched else gx[0]

    def _compiled_backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        shape, k, s, d, pads, out, batched = self._saved
        winners = self._winners
        if winners.dtype.kind == "f":  # an evaluation-mode forward kept its input
            winners = _max_pool_planes(winners, k, s, d, pads, out, True)[1]
        gy = np.asarray(grad_output)
        gy = np.ascontiguousarray(gy if batched else gy[None])
        gx = np.empty(shape, gy.dtype)
        compiled.kernels("maxpool_jit_kernels").max_pool_planes_backward(
            gy.reshape((-1,) + out), winners.reshape((-1,) + out), k[1], *s, *d, pads[0][0], pads[1][0],
            gx.reshape((-1,) + shape[2:]))
        return gx if batched else gx[0]

    def extra_repr(self) -> str:
        """The settings, as PyTorch shows them."""
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


def _empty_in_layout(like: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An empty (N, C, *spatial) array of ``shape``, channels-last in memory when ``like`` is."""
    if is_channels_last(like):
        return np.moveaxis(np.empty(shape[:1] + shape[2:] + shape[1:2], like.dtype), -1, 1)
    return np.empty(shape, like.dtype)


def _padded(x: np.ndarray, pads: tuple[tuple[int, int], ...], fill: float) -> np.ndarray:
    """``x`` with ``pads`` of ``fill`` around its spatial dims, in its memory layout (``x``
    itself without pads)."""
    if not any(lo or hi for lo, hi in pads):
        return x
    padded = _empty_in_layout(x, x.shape[:2] + tuple(i + lo + hi for i, (lo, hi) in zip(x.shape[2:], pads)))
    padded[...] = fill
    padded[(slice(None), slice(None)) + tuple(slice(lo, lo + i) for i, (lo, _) in zip(x.shape[2:], pads))] = x
    return padded


def _tap_views(k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...],
               out: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """For each offset in the window (row-major), the index that picks that tap of every
    window from the padded input: a strided view, no gathering."""
    return [(slice(None), slice(None)) + tuple(slice(o * dd, o * dd + (oo - 1) * ss + 1, ss)
                                               for o, dd, ss, oo in zip(offsets, d, s, out))
            for offsets in itertools.product(*(range(kk) for kk in k))]


def _compiled_planes(x: np.ndarray) -> bool:
    """Whether the compiled kernel pools ``x``: Numba present, a C-contiguous float (N, C, H, W)."""
    return compiled.available() and x.ndim == 4 and x.flags.c_contiguous and x.dtype in (np.float32, np.float64)


def _max_pool_planes(x: np.ndarray, k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...],
                     pads: tuple[tuple[int, int], ...], out: tuple[int, ...],
                     winners: bool) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling of a C-contiguous (N, C, H, W) map, plane by plane, compiled; and which
    tap won each window (int32, row-major in the window) when ``winners``, else an empty array."""
    y = np.empty(x.shape[:2] + out, x.dtype)
    kernels, planes = compiled.kernels("maxpool_jit_kernels"), x.reshape((-1,) + x.shape[2:])
    geometry = (*k, *s, *d, pads[0][0], pads[1][0], y.reshape((-1,) + out))
    if not winners:
        kernels.max_pool_planes(planes, *geometry)
        return y, np.empty(0, np.int32)
    won = np.empty(x.shape[:2] + out, np.int32)
    kernels.max_pool_planes_winners(planes, *geometry, won.reshape((-1,) + out))
    return y, won


def _first_winners(padded: np.ndarray, taps: list[tuple[slice, ...]], y: np.ndarray) -> np.ndarray:
    """Per output, the first tap (row-major) holding its window's maximum, a NaN where the
    maximum is NaN (as np.argmax over the window picks)."""
    winners = np.full(y.shape, len(taps), np.int32)
    nan_max = np.isnan(y)
    for index, tap in enumerate(taps):
        values = padded[tap]
        hit = values == y
        if nan_max.any():
            hit |= nan_max & np.isnan(values)
        np.copyto(winners, index, where=hit & (winners == len(taps)))
    return winners


class _AvgPoolNd(PoolNd):
    def __init__(self, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        if self._n == 1:  # PyTorch's AvgPool1d keeps its sizes as 1-tuples (and shows them so)
            self.kernel_size, self.stride, self.padding = (
                ntuple(v, 1, name, "AvgPool1d") for v, name in
                ((self.kernel_size, "kernel_size"), (self.stride, "stride"), (self.padding, "padding")))

    def _divisor(self, in_spatial: Sequence[int], k: tuple[int, ...], s: tuple[int, ...],
                 pads: tuple[tuple[int, int], ...], out: tuple[int, ...]) -> float | np.ndarray:
        """Elements each window averages: PyTorch counts padding (if asked) but never the
        part of a ceil_mode window that hangs past the padded input."""
        if self.divisor_override:
            return float(self.divisor_override)
        p = ntuple(self.padding, self._n, "padding", type(self).__name__)
        if self.count_include_pad:
            ones = np.ones((1, 1) + tuple(i + 2 * pp for i, pp in zip(in_spatial, p)))
            window_pads = tuple((0, hi - pp) for pp, (_, hi) in zip(p, pads))
        else:
            ones, window_pads = np.ones((1, 1) + tuple(in_spatial)), pads
        counts = im2col(ones, k, s, (1,) * self._n, window_pads, out).reshape(math.prod(k), -1).sum(axis=0)
        return counts.reshape(out)

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The mean of each window (see the class for what the divisor counts).

        Parameters
        ----------
        input : array_like
            ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.

        Returns
        -------
        numpy.ndarray
            ``(N, C, *out_spatial)`` (unbatched: without N), in the input's dtype.

        Raises
        ------
        ValueError
            A window that does not fit (see :meth:`PoolNd.window_geometry`).
        """
        x, batched = self._batched(input)
        k, s, d, pads, out = self.window_geometry(x.shape[2:])
        cols = im2col(x, k, s, d, pads, out)
        divisor = self._divisor(x.shape[2:], k, s, pads, out)
        self._saved = (x.shape, k, s, d, pads, out, batched, divisor)
        y = (cols.reshape(x.shape[:2] + (math.prod(k),) + out).sum(axis=2) / divisor).astype(x.dtype, copy=False)
        return y if batched else y[0]

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Each output's gradient, divided by its window's divisor, spread over the window.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        shape, k, s, d, pads, out, batched, divisor = self._saved
        gy = np.asarray(grad_output)
        gy = (gy if batched else gy[None]) / divisor
        cols = np.broadcast_to(gy[:, :, None], shape[:2] + (math.prod(k),) + out).reshape(shape[:2] + k + out)
        gx = col2im(np.ascontiguousarray(cols), shape[2:], s, d, pads).astype(gy.dtype, copy=False)
        return gx if batched else gx[0]

    def extra_repr(self) -> str:
        """kernel_size, stride and padding, as PyTorch shows them."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _max_doc(n: int) -> str:
    shape = ", ".join(["4"] * n)
    return f"""{n}-D max pooling, as ``torch.nn.MaxPool{n}d``, with forward and backward.

    Output size per spatial dim: ``floor((in + 2 * padding - dilation * (kernel_size - 1) - 1)
    / stride) + 1`` (ceil with ``ceil_mode``, a window never starting in the right padding).

    Parameters
    ----------
    kernel_size : int or tuple of int
        The window's size.
    stride : int or tuple of int, optional
        Step between windows (default: ``kernel_size``).
    padding : int or tuple of int, default 0
        -inf added on both sides; at most half the effective kernel.
    dilation : int or tuple of int, default 1
        Spacing between a window's elements.
    return_indices : bool, default False
        Must be False (npconv does not return the indices).
    ceil_mode : bool, default False
        Round the output size up.

    Raises
    ------
    ValueError
        ``return_indices=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> pool = nn.MaxPool{n}d(2)
    >>> y = pool(np.arange(4.0 ** {n}).reshape(1, 1, {shape}))
    >>> y.shape, float(y.max()), float(pool.backward(np.ones_like(y)).sum()) == y.size
    ({(1, 1) + (2,) * n}, {4.0 ** n - 1}, True)
    """


def _avg_doc(n: int) -> str:
    shape = ", ".join(["4"] * n)
    return f"""{n}-D average pooling, as ``torch.nn.AvgPool{n}d``, with forward and backward.

    Output size per spatial dim: ``floor((in + 2 * padding - kernel_size) / stride) + 1``
    (ceil with ``ceil_mode``).  Each window is divided by the elements it covers: padding
    counts when ``count_include_pad``, the part of a ceil_mode window past the padded input
    never does, and ``divisor_override`` replaces the count.

    Parameters
    ----------
    kernel_size : int or tuple of int
        The window's size.
    stride : int or tuple of int, optional
        Step between windows (default: ``kernel_size``).
    padding : int or tuple of int, default 0
        Zeros added on both sides; at most half the kernel.
    ceil_mode : bool, default False
        Round the output size up.
    count_include_pad : bool, default True
        Count the padding zeros in the divisor.
    divisor_override : int, optional
        Divide every window by this instead.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> pool = nn.AvgPool{n}d(2)
    >>> y = pool(np.ones((1, 1, {shape})))
    >>> y.shape, float(y.max()), float(pool.backward(np.ones_like(y)).max())
    ({(1, 1) + (2,) * n}, 1.0, {1 / 2 ** n})
    """


class MaxPool1d(_MaxPoolNd):
    __doc__ = _max_doc(1)
    _n = 1


class MaxPool2d(_MaxPoolNd):
    __doc__ = _max_doc(2)
    _n = 2


class MaxPool3d(_MaxPoolNd):
    __doc__ = _max_doc(3)
    _n = 3


class AvgPool1d(_AvgPoolNd):
    __doc__ = _avg_doc(1)
    _n = 1


class AvgPool2d(_AvgPoolNd):
    __doc__ = _avg_doc(2)
    _n = 2


class AvgPool3d(_AvgPoolNd):
    __doc__ = _avg_doc(3)
    _n = 3
