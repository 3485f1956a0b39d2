"""Keras's activations by name, each with its gradient (for the layers' ``backward``).

``get(identifier)`` takes what a Keras layer's ``activation=`` takes: None (linear), a Keras
name (``'relu'``, ``'gelu'`` (exact, Keras's default), ``'swish'`` = ``'silu'``, ...) or a
callable.  A plain callable runs forward only; give an :class:`Activation` with a
``grad`` to backpropagate through it.  ``softmax`` and ``log_softmax`` act on the last axis
of the layer's output, as in Keras (the channels only for channels_last).

>>> relu = get("relu")
>>> relu(np.array([-1.0, 2.0])), relu.backward(np.array([-1.0, 2.0]), np.ones(2))
(array([0., 2.]), array([0., 1.]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

#: ``grad(x, y, gy) -> gx``: the vector-Jacobian product of an activation
Grad = Callable[[Any, Any, Any], Any]

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


class Activation:
    """A named function ``fn(x)`` and its vector-Jacobian product ``grad(x, y, gy) -> gx``.

    Parameters
    ----------
    name : str
        Its Keras name (written into configs for the built-ins).
    fn : callable
        ``fn(x)``, elementwise or along the last axis.
    grad : callable, optional
        ``grad(x, y, gy)``: d loss / d x given the input x, the output y and d loss / d y.
        Without it the activation runs forward only.

    Examples
    --------
    >>> import numpy as np
    >>> square = Activation("square", lambda x: x * x, lambda x, y, gy: 2 * x * gy)
    >>> square(np.array([3.0])), square.backward(np.array([3.0]), np.array([1.0]))
    (array([9.]), array([6.]))
    """

    def __init__(self, name: str, fn: Callable[[Any], Any], grad: Grad | None = None) -> None:
        self.name, self.fn, self.grad = name, fn, grad
        self.__name__ = name

    def __call__(self, x: npt.ArrayLike) -> np.ndarray:
        """``fn(x)`` in x's dtype."""
        return np.asarray(self.fn(x)).astype(np.asarray(x).dtype, copy=False)

    def backward(self, x: npt.ArrayLike, grad_output: npt.ArrayLike, y: npt.ArrayLike | None = None) -> np.ndarray:
        """d loss / d x given d loss / d y, for the input x (and, if known, output y).

        Parameters
        ----------
        x : array_like
            The activation's input.
        grad_output : array_like
            d loss / d y.
        y : array_like, optional
            ``self(x)``, when known (computed otherwise).

        Returns
        -------
        numpy.ndarray
            d loss / d x.

        Raises
        ------
        TypeError
            The activation has no ``grad``.
        """
        if self.grad is None:
            raise TypeError(f"activation {self.name!r} has no gradient: give an "
                            f"npconv.keras.activations.Activation(name, fn, grad) to use backward")
        gx = self.grad(x, self(x) if y is None else y, grad_output)
        return np.asarray(gx).astype(np.result_type(x, grad_output), copy=False)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


def _softmax(x: np.ndarray) -> np.ndarray:
    return special.softmax(x, axis=-1)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _mish(x: np.ndarray) -> np.ndarray:
    return x * np.tanh(_softplus(x))


def _mish_grad(x: np.ndarray, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
    tanh_sp = np.tanh(_softplus(x))
    return gy * (tanh_sp + x * (1 - tanh_sp ** 2) * _sigmoid(x))


def _softmax_grad(x: np.ndarray, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
    return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


def _log_softmax_grad(x: np.ndarray, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
    return gy - np.exp(y) * gy.sum(axis=-1, keepdims=True)


_ENTRIES = (
    Activation("linear", lambda x: x, lambda x, y, gy: gy),
    Activation("relu", lambda x: np.maximum(x, 0), lambda x, y, gy: gy * (x > 0)),
    Activation("relu6", lambda x: np.clip(x, 0, 6), lambda x, y, gy: gy * ((x > 0) & (x < 6))),
    Activation("leaky_relu", lambda x: np.where(x > 0, x, 0.2 * x), lambda x, y, gy: gy * np.where(x > 0, 1, 0.2)),
    Activation("elu", _elu, lambda x, y, gy: gy * np.where(x > 0, 1, y + 1)),
    Activation("celu", _elu, lambda x, y, gy: gy * np.where(x > 0, 1, y + 1)),  # alpha = 1: celu = elu
    Activation("selu", lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
               lambda x, y, gy: gy * np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)),
    Activation("gelu", _gelu, lambda x, y, gy: gy * (0.5 * (1 + special.erf(x / math.sqrt(2)))
                                                     + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))),
    Activation("sigmoid", _sigmoid, lambda x, y, gy: gy * y * (1 - y)),
    Activation("hard_sigmoid", lambda x: np.clip(x + 3, 0, 6) / 6, lambda x, y, gy: gy * ((x > -3) & (x < 3)) / 6),
    Activation("silu", lambda x: x * _sigmoid(x), lambda x, y, gy: gy * _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    Activation("hard_silu", lambda x: x * np.clip(x + 3, 0, 6) / 6,
               lambda x, y, gy: gy * np.where(x <= -3, 0, np.where(x >= 3, 1, (2 * x + 3) / 6))),
    Activation("tanh", np.tanh, lambda x, y, gy: gy * (1 - y * y)),
    Activation("hard_tanh", lambda x: np.clip(x, -1, 1), lambda x, y, gy: gy * ((x > -1) & (x < 1))),
    Activation("softplus", _softplus, lambda x, y, gy: gy * _sigmoid(x)),
    Activation("softsign", lambda x: x / (1 + np.abs(x)), lambda x, y, gy: gy / (1 + np.abs(x)) ** 2),
    Activation("exponential", np.exp, lambda x, y, gy: gy * y),
    Activation("mish", _mish, _mish_grad),
    Activation("log_sigmoid", lambda x: -_softplus(-x), lambda x, y, gy: gy * _sigmoid(-x)),
    Activation("softmax", _softmax, _softmax_grad),
    Activation("log_softmax", lambda x: special.log_softmax(x, axis=-1), _log_softmax_grad),
)
ACTIVATIONS = {a.name: a for a in _ENTRIES}
ACTIVATIONS.update(swish=ACTIVATIONS["silu"], hard_swish=ACTIVATIONS["hard_silu"])  # Keras's aliases


def get(identifier: str | Callable[..., Any] | None) -> Activation:
    """The activation a Keras layer's ``activation=`` argument names.

    Parameters
    ----------
    identifier : str, callable or None
        None (linear); a Keras name; an :class:`Activation`; any other callable (forward only).

    Returns
    -------
    Activation
        A built-in, the given Activation, or the callable wrapped.

    Raises
    ------
    ValueError
        An unknown name, or an identifier that is neither a string nor callable.
    """
    if identifier is None:
        return ACTIVATIONS["linear"]
    if isinstance(identifier, str):
        if identifier not in ACTIVATIONS:
            raise ValueError(f"Could not interpret activation function identifier: {identifier!r}; "
                             f"npconv.keras knows {sorted(ACTIVATIONS)}")
        return ACTIVATIONS[identifier]
    if isinstance(identifier, Activation):
        return identifier
    if callable(identifier):
        return Activation(getattr(identifier, "__name__", repr(identifier)), identifier)
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(activation: Activation) -> Any:
    """An activation as a Keras config holds it.

    Parameters
    ----------
    activation : Activation
        As :func:`get` returns it.

    Returns
    -------
    str or callable
        A built-in's Keras name ('swish' is 'silu'); a custom callable kept as it is.
    """
    if ACTIVATIONS.get(activation.name) is activation:
        return activation.name
    return activation.fn if activation.grad is None else activation
