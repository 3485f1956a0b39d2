"""Keras's weight and activity regularizers, each with its gradient.

- ``L1(l1=0.01)``: l1 * sum(abs(w)); gradient l1 * sign(w);
- ``L2(l2=0.01)``: l2 * sum(w**2); gradient 2 * l2 * w;
- ``L1L2(l1=0.0, l2=0.0)``: both.

Names: ``'l1'``, ``'l2'``, ``'l1l2'`` / ``'L1L2'`` (Keras 3's names) and ``'l1_l2'``, which Keras 3
refuses although its docs show it; npconv reads it as Keras 2's ``l1_l2()``, l1 = l2 = 0.01.
A layer reports the penalties in ``layer.losses``; an activity regularizer's penalty on the
output is divided by the batch size, as Keras does.

>>> L2(0.5)(np.array([1.0, -2.0])), L2(0.5).grad(np.array([1.0, -2.0]))
(2.5, array([ 1., -2.]))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .registry import Registry


class Regularizer:
    """Base class: ``reg(w) -> float`` and ``reg.grad(w) -> d reg / d w`` (here: zero)."""

    def __call__(self, x: npt.ArrayLike) -> float:
        """The penalty of ``x``.

        Parameters
        ----------
        x : array_like
            A weight or a layer's output.

        Returns
        -------
        float
        """
        return 0.0

    def grad(self, x: npt.ArrayLike) -> np.ndarray:
        """d penalty / d x.

        Parameters
        ----------
        x : array_like

        Returns
        -------
        numpy.ndarray
            In x's shape and dtype.
        """
        return np.zeros_like(np.asarray(x))

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments by name (Keras's ``get_config``)."""
        return {}


class L1L2(Regularizer):
    """l1 * sum(abs(x)) + l2 * sum(x**2).

    Parameters
    ----------
    l1 : float, default 0.0
        The L1 factor (None reads as 0).
    l2 : float, default 0.0
        The L2 factor (None reads as 0).

    Examples
    --------
    >>> L1L2(l1=1.0, l2=1.0)(np.array([1.0, -2.0]))
    8.0
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        self.l1 = float(0.0 if l1 is None else l1)
        self.l2 = float(0.0 if l2 is None else l2)

    def __call__(self, x: npt.ArrayLike) -> float:
        x = np.asarray(x)
        return float(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def grad(self, x: npt.ArrayLike) -> np.ndarray:
        x = np.asarray(x)
        return (self.l1 * np.sign(x) + 2 * self.l2 * x).astype(x.dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """l1 * sum(abs(x)).

    Parameters
    ----------
    l1 : float, default 0.01
        The factor.
    """

    def __init__(self, l1: float | None = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(x**2).

    Parameters
    ----------
    l2 : float, default 0.01
        The factor.
    """

    def __init__(self, l2: float | None = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


REGISTRY = Registry("regularizer", "keras.regularizers", [Regularizer, L1, L2, L1L2],
                    aliases={"l1_l2": lambda: L1L2(l1=0.01, l2=0.01)})


def get(identifier: Any) -> Any:
    """The regularizer a Keras identifier stands for.

    Parameters
    ----------
    identifier : None, str, dict, type or callable
        None, a name (``'l2'``, ``'L1L2'``, ``'l1_l2'``), a config dict, a class, an instance
        or any callable (see :meth:`npconv.keras.registry.Registry.get`).

    Returns
    -------
    Regularizer, callable or None

    Raises
    ------
    ValueError
        An unknown name or identifier.
    """
    return REGISTRY.get(identifier)


def serialize(regularizer: Any) -> Any:
    """Keras's dict form of a regularizer (other callables and None kept as they are).

    Parameters
    ----------
    regularizer : Regularizer, callable or None

    Returns
    -------
    dict, callable or None
    """
    return REGISTRY.serialize(regularizer)


def penalty(regularizer: Any, x: npt.ArrayLike) -> float:
    """regularizer(x) as a Python float, for ours and for any callable returning a scalar.

    Parameters
    ----------
    regularizer : callable
        A :class:`Regularizer` or any callable returning a scalar.
    x : array_like

    Returns
    -------
    float
    """
    return float(np.asarray(regularizer(x)))


def penalty_grad(regularizer: Any, x: npt.ArrayLike) -> np.ndarray:
    """d regularizer(x) / d x; only regularizers with a ``grad`` method have one.

    Parameters
    ----------
    regularizer : Regularizer
        Anything with a ``grad(x)`` method.
    x : array_like

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TypeError
        A regularizer without ``grad``.
    """
    if not hasattr(regularizer, "grad"):
        raise TypeError(f"regularizer {regularizer!r} has no grad(x) method, so its gradient is unknown; "
                        f"use npconv.keras.regularizers.L1/L2/L1L2 or give it a grad method")
    return regularizer.grad(x)
