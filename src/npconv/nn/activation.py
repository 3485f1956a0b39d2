"""torch.nn's elementwise activations with an explicit backward: ReLU6, SiLU, GELU,
Hardswish, Hardsigmoid, Sigmoid, Tanh, and Identity.

Each keeps its input's dtype and memory layout (NumPy ufuncs work in the input's order) and
takes PyTorch's derivative at the kinks (ReLU6 at 0 and 6, Hardswish at -3 and 3,
Hardsigmoid at -3 and 3).  float16 inputs are computed in float32 and returned as float16.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import erf, expit

from .. import compiled
from ..arrays import as_real_array, is_channels_last
from .module import Module

__all__ = ["ReLU6", "SiLU", "GELU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Identity"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_SCALE = math.sqrt(2.0 / math.pi)  # GELU's tanh approximation: tanh(c (x + k x^3))
_TANH_CUBIC = 0.044715
_HARDSIGMOID_SLOPE = float(np.float32(1 / 6))  # PyTorch's backward uses 1/6 rounded to float32, in any dtype


class _Elementwise(Module):
    """An elementwise activation: forward keeps what backward needs (``_save``), backward
    multiplies ``grad_output`` by the derivative (``_grad``)."""

    inplace = False

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The activation of every element.

        Parameters
        ----------
        input : array_like
            Any shape, real (float16/32/64; ints and bools become float64).

        Returns
        -------
        numpy.ndarray
            The same shape, dtype and memory layout (the input itself when ``inplace``).

        Raises
        ------
        TypeError
            A complex input (PyTorch's activation has no complex kernel either).
        """
        name = type(self).__name__
        x = as_real_array(input, "input", name, why=f"npconv's {name} takes real numbers only")
        work = x.astype(np.float32) if x.dtype == np.float16 else x
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in PyTorch, silently
            y = self._apply(work)
        self._saved = self._save(work, y)
        if self.inplace:
            np.copyto(x, y, casting="same_kind")
            return x
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` times the activation's derivative at the last forward's input.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input, in ``grad_output``'s dtype.

        Raises
        ------
        RuntimeError
            No forward ran before.
        """
        if not hasattr(self, "_saved"):
            raise RuntimeError(f"{type(self).__name__}.backward: run forward first")
        gy = np.asarray(grad_output)
        with np.errstate(invalid="ignore", over="ignore"):
            return self._grad(self._saved, gy).astype(gy.dtype, copy=False)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _save(self, x: np.ndarray, y: np.ndarray) -> Any:
        """What backward reads: the input by default (a copy when it will be overwritten)."""
        return x.copy(order="K") if self.inplace else x

    def _grad(self, saved: Any, gy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extra_repr(self) -> str:
        """``'inplace=True'`` when set, else empty (as PyTorch shows it)."""
        return "inplace=True" if self.inplace else ""


class ReLU6(_Elementwise):
    """min(max(x, 0), 6) elementwise, as ``torch.nn.ReLU6``.

    The derivative is 1 strictly inside (0, 6) and for NaN, 0 elsewhere (at 0 and 6 too),
    as PyTorch's.

    Parameters
    ----------
    inplace : bool, default False
        Write the result into the input array.

    Examples
    --------
    >>> import numpy as np
    >>> act = ReLU6()
    >>> act(np.array([-1.0, 0.0, 3.0, 6.0, 7.0])), act.backward(np.ones(5))
    (array([0., 0., 3., 6., 6.]), array([0., 0., 1., 0., 0.]))
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(x, 0), 6)

    def _save(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ~((x <= 0) | (x >= 6))  # where the gradient passes (NaN included, as PyTorch)

    def _grad(self, saved: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return masked_gradient(gy, saved)


class SiLU(_Elementwise):
    """x * sigmoid(x) elementwise, as ``torch.nn.SiLU``.

    Parameters
    ----------
    inplace : bool, default False
        Write the result into the input array.

    Examples
    --------
    >>> import numpy as np
    >>> act = SiLU()
    >>> act(np.array([0.0, 1.0])).round(6), act.backward(np.ones(2)).round(6)
    (array([0.      , 0.731059]), array([0.5     , 0.927671]))
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x * expit(x)

    def _grad(self, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
        s = expit(x)
        return gy * (s * (1 + x * (1 - s)))


class GELU(_Elementwise):
    """x * Phi(x) elementwise (Phi: the standard normal CDF), as ``torch.nn.GELU``.

    Parameters
    ----------
    approximate : {'none', 'tanh'}, default 'none'
        'none': the exact form with erf; 'tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Raises
    ------
    ValueError
        ``approximate`` other than 'none' or 'tanh' (PyTorch refuses it at the first forward).

    Examples
    --------
    >>> import numpy as np
    >>> act = GELU()
    >>> act(np.array([-1.0, 0.0, 1.0])).round(6), act.backward(np.ones(3)).round(6)
    (array([-0.158655,  0.      ,  0.841345]), array([-0.083315,  0.5     ,  1.083315]))
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate argument must be either none or tanh, got {approximate!r}")
        self.approximate = approximate

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(self._tanh_inner(x)))
        if _compiled_layout(x):
            return _run_flat("gelu_forward_float32" if x.dtype == np.float32 else "gelu_forward", x)
        return x * self._cdf(x)

    @staticmethod
    def _cdf(x: np.ndarray) -> np.ndarray:
        wide = x.astype(np.float64)  # erf in float64, then the input's dtype
        return (0.5 * (1 + erf(wide * _SQRT_HALF))).astype(x.dtype)

    @staticmethod
    def _tanh_inner(x: np.ndarray) -> np.ndarray:
        return _TANH_SCALE * (x + _TANH_CUBIC * (x * x * x))

    def _grad(self, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            t = np.tanh(self._tanh_inner(x))
            inner_slope = _TANH_SCALE * (1 + 3 * _TANH_CUBIC * (x * x))
            return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner_slope)
        if _compiled_layout(x) and gy.dtype == x.dtype:
            return _run_flat("gelu_backward", x, _in_layout_of(x, gy))
        return gy * (self._cdf(x) + x * (np.exp(-0.5 * (x * x)) * _INV_SQRT_2PI))

    def extra_repr(self) -> str:
        """``"approximate='none'"``, as PyTorch shows it."""
        return f"approximate={self.approximate!r}"


def masked_gradient(gy: np.ndarray, passes: np.ndarray) -> np.ndarray:
    """``gy`` where ``passes`` (bool) is True, 0 elsewhere (NaN and inf in ``gy`` included, as
    torch's threshold backward): a multiplication by the mask (7x faster than np.where here),
    np.where only when the product is not finite everywhere."""
    product = np.multiply(gy, passes, dtype=gy.dtype)
    return product if np.isfinite(product).all() else np.where(passes, gy, 0).astype(gy.dtype, copy=False)


def _compiled_layout(x: np.ndarray) -> bool:
    """Whether the compiled GELU serves ``x``: Numba present, float32/64, dense in memory (C,
    Fortran or channels-last order), and large enough to pay for the call."""
    return (compiled.available() and x.dtype in (np.float32, np.float64) and x.size >= 4096
            and (x.flags.c_contiguous or x.flags.f_contiguous or is_channels_last(x)))


def _in_layout_of(x: np.ndarray, array: np.ndarray) -> np.ndarray:
    """``array`` (x's shape) laid out in memory as ``x`` is (a copy unless it already is)."""
    if array.strides == x.strides:
        return array
    same = np.empty_like(x, dtype=array.dtype)
    same[...] = array
    return same


def _run_flat(kernel: str, x: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """A compiled elementwise kernel over the flat memory of ``x`` (and ``others``, laid out as
    ``x``), into a new array laid out as ``x``."""
    out = np.empty_like(x)
    flat = [array.ravel(order="K") for array in (x, *others, out)]
    getattr(compiled.kernels("gelu_jit_kernels"), kernel)(*flat)
    return out


class Hardswish(_Elementwise):
    """x * min(max(x + 3, 0), 6) / 6 elementwise, as ``torch.nn.Hardswish``.

    The derivative is 0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, and 1 from 3 on (and for
    NaN), as PyTorch's.

    Parameters
    ----------
    inplace : bool, default False
        Write the result into the input array (not shown in the repr, as PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> act = Hardswish()
    >>> act(np.array([-3.0, 0.0, 1.5, 3.0])), act.backward(np.ones(4))
    (array([-0.   ,  0.   ,  1.125,  3.   ]), array([0. , 0.5, 1. , 1. ]))
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x * np.minimum(np.maximum(x + 3, 0), 6) / 6

    def _grad(self, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
        slope = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1)).astype(x.dtype, copy=False)
        return gy * slope

    def extra_repr(self) -> str:
        """Empty: PyTorch's Hardswish shows no settings."""
        return ""


class Hardsigmoid(_Elementwise):
    """min(max(x + 3, 0), 6) / 6 elementwise, as ``torch.nn.Hardsigmoid``.

    The derivative is 1/6 strictly inside (-3, 3), 0 elsewhere (at -3 and 3 and for NaN too),
    as PyTorch's (whose 1/6 is rounded to float32 even for float64 inputs; so is npconv's).

    Parameters
    ----------
    inplace : bool, default False
        Write the result into the input array (not shown in the repr, as PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> act = Hardsigmoid()
    >>> act(np.array([-3.0, 0.0, 3.0])), act.backward(np.full(3, 6.0))
    (array([0. , 0.5, 1. ]), array([0.        , 1.00000003, 0.        ]))
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(x + 3, 0), 6) / 6

    def _save(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x > -3) & (x < 3)

    def _grad(self, saved: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return np.where(saved, gy * _HARDSIGMOID_SLOPE, 0)

    def extra_repr(self) -> str:
        """Empty: PyTorch's Hardsigmoid shows no settings."""
        return ""


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)) elementwise (without overflow), as ``torch.nn.Sigmoid``.

    Examples
    --------
    >>> import numpy as np
    >>> act = Sigmoid()
    >>> act(np.array([0.0, 2.0])).round(6), act.backward(np.ones(2)).round(6)
    (array([0.5     , 0.880797]), array([0.25    , 0.104994]))
    """

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return expit(x)

    def _save(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y.copy(order="K")  # y (1 - y) reads the output; a copy, as an in-place layer may change it

    def _grad(self, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return gy * (y * (1 - y))


class Tanh(_Elementwise):
    """tanh(x) elementwise, as ``torch.nn.Tanh``.

    Examples
    --------
    >>> import numpy as np
    >>> act = Tanh()
    >>> act(np.array([0.0, 1.0])).round(6), act.backward(np.ones(2)).round(6)
    (array([0.      , 0.761594]), array([1.      , 0.419974]))
    """

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def _save(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y.copy(order="K")  # 1 - y^2 reads the output; a copy, as an in-place layer may change it

    def _grad(self, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return gy * (1 - y * y)


class Identity(Module):
    """The input unchanged, as ``torch.nn.Identity`` (a placeholder; arguments are ignored).

    Parameters
    ----------
    *args, **kwargs
        Accepted and ignored, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, -2.0])
    >>> layer = Identity(54, unused="ignored")
    >>> layer(x) is x, layer.backward(np.array([3.0, 4.0])), layer
    (True, array([3., 4.]), Identity())
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        """``input`` itself (any type: nothing is converted).

        Parameters
        ----------
        input : object
            Anything.

        Returns
        -------
        object
            ``input``.
        """
        return input

    def backward(self, grad_output: Any) -> Any:
        """``grad_output`` itself.

        Parameters
        ----------
        grad_output : object
            d loss / d output.

        Returns
        -------
        object
            ``grad_output`` (d loss / d input).
        """
        return grad_output
