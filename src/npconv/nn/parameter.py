"""Parameter, the learnable array, and the small records the modules share."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["Parameter", "IncompatibleKeys", "accumulate_grad"]


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (as ``torch.nn``'s result).

    Attributes
    ----------
    missing_keys : list of str
        Parameters of the module that the state dict had no entry for.
    unexpected_keys : list of str
        Entries of the state dict that name no parameter of the module.
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


class Parameter(np.ndarray):
    """A learnable array: an ndarray that carries ``.grad`` (None until a backward).

    Arithmetic on a parameter gives plain arrays; in-place updates keep the parameter.

    Parameters
    ----------
    data : array_like
        The initial values; always copied.
    dtype : data-type, optional
        The parameter's dtype (default: that of ``data``).

    Attributes
    ----------
    grad : numpy.ndarray or None
        The gradient summed by the backward passes since the last ``zero_grad`` (None before).
    constraint : callable or None
        Set by ``npconv.keras`` layers: a projection the optimizers apply after each step.

    Examples
    --------
    >>> w = Parameter([1.0, 2.0])
    >>> w.grad is None, type(w * 2).__name__
    (True, 'ndarray')
    """

    grad: np.ndarray | None
    constraint: Any

    def __new__(cls, data: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> Parameter:
        param = np.array(data, dtype=dtype, copy=True).view(cls)
        param.grad = None
        return param

    def __array_finalize__(self, obj: object) -> None:
        self.grad = None

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        if array is self:  # in-place update: stay a parameter
            return self
        if return_scalar:
            return array[()]
        return array.view(np.ndarray)

    def __reduce__(self) -> Any:  # never pickled as a subclass: weight files hold plain arrays
        raise TypeError("npconv parameters are not pickled; save a state_dict with npconv.save")

    def __deepcopy__(self, memo: dict[int, Any] | None = None, /) -> Parameter:
        """A copy with its own data and gradient (``copy.deepcopy`` of a model copies its weights)."""
        param = Parameter(self)
        param.grad = None if self.grad is None else self.grad.copy()
        return param


def accumulate_grad(param: Parameter | None, grad: npt.ArrayLike) -> None:
    """``param.grad += grad`` (created on first use), in the parameter's dtype.

    Parameters
    ----------
    param : Parameter or None
        The parameter; None (a missing bias) does nothing.
    grad : array_like
        The gradient to add, in the parameter's shape.
    """
    if param is None:
        return
    grad = np.asarray(grad, dtype=param.dtype)
    param.grad = grad.copy() if param.grad is None else param.grad + grad
