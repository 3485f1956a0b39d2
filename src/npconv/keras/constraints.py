"""Keras's weight constraints: projections applied after each optimizer step.

A layer sets ``param.constraint`` on its weights, and ``npconv.optim``'s SGD and Adam
replace the weight by ``constraint(weight)`` after every update, as Keras's optimizers do.
With ``norms = sqrt(sum(w**2, axis, keepdims=True))`` and eps = 1e-7 (Keras's epsilon):

- ``MaxNorm(max_value=2, axis=0)``: w * clip(norms, 0, max_value) / (eps + norms);
- ``NonNeg()``: max(w, 0);
- ``UnitNorm(axis=0)``: w / (eps + norms);
- ``MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)``:
  w * (rate * clip(norms, min_value, max_value) + (1 - rate) * norms) / (eps + norms).

>>> NonNeg()(np.array([-1.0, 2.0]))
array([0., 2.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .registry import Registry

EPSILON = 1e-7


def _norms(w: np.ndarray, axis: int | Sequence[int]) -> np.ndarray:
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.square(w).sum(axis=axis, keepdims=True))


class Constraint:
    """Base class: ``constraint(w)`` returns the projected weight (here: ``w`` unchanged)."""

    def __call__(self, w: npt.ArrayLike) -> np.ndarray:
        """The projected weight.

        Parameters
        ----------
        w : array_like
            A weight after an optimizer step.

        Returns
        -------
        numpy.ndarray
            Same shape and dtype.
        """
        return np.asarray(w)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments by name (Keras's ``get_config``)."""
        return {}


class MaxNorm(Constraint):
    """Rescale each slice whose L2 norm along ``axis`` exceeds ``max_value`` down to it.

    Parameters
    ----------
    max_value : float, default 2
        The largest norm kept.
    axis : int or tuple of int, default 0
        The axes the norms are taken over.

    Examples
    --------
    >>> MaxNorm(1.0)(np.array([[3.0], [4.0]])).round(4)
    array([[0.6],
           [0.8]])
    """

    def __init__(self, max_value: float = 2, axis: int | Sequence[int] = 0) -> None:
        self.max_value, self.axis = max_value, axis

    def __call__(self, w: npt.ArrayLike) -> np.ndarray:
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        return (w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """max(w, 0): the weights kept non-negative."""

    def __call__(self, w: npt.ArrayLike) -> np.ndarray:
        return np.maximum(np.asarray(w), 0)


class UnitNorm(Constraint):
    """Each slice divided by its L2 norm along ``axis``.

    Parameters
    ----------
    axis : int or tuple of int, default 0
        The axes the norms are taken over.
    """

    def __init__(self, axis: int | Sequence[int] = 0) -> None:
        self.axis = axis

    def __call__(self, w: npt.ArrayLike) -> np.ndarray:
        w = np.asarray(w)
        return (w / (EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Each slice's L2 norm moved (at ``rate``) into [min_value, max_value].

    Parameters
    ----------
    min_value : float, default 0.0
        The smallest norm kept.
    max_value : float, default 1.0
        The largest norm kept.
    rate : float, default 1.0
        1 projects fully; smaller values move the norm part of the way.
    axis : int or tuple of int, default 0
        The axes the norms are taken over.
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: int | Sequence[int] = 0) -> None:
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w: npt.ArrayLike) -> np.ndarray:
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


REGISTRY = Registry("constraint", "keras.constraints", [Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm])


def get(identifier: Any) -> Any:
    """The constraint a Keras identifier stands for.

    Parameters
    ----------
    identifier : None, str, dict, type or callable
        None, a name (``'max_norm'``, ``'MaxNorm'``), a config dict, a class, an instance or
        any callable (see :meth:`npconv.keras.registry.Registry.get`).

    Returns
    -------
    Constraint, callable or None

    Raises
    ------
    ValueError
        An unknown name or identifier.
    """
    return REGISTRY.get(identifier)


def serialize(constraint: Any) -> Any:
    """Keras's dict form of a constraint (other callables and None kept as they are).

    Parameters
    ----------
    constraint : Constraint, callable or None

    Returns
    -------
    dict, callable or None
    """
    return REGISTRY.serialize(constraint)
