"""Keras's weight and activity regularizers, each with its gradient.

- ``L1(l1=0.01)``: l1 * sum(|w|); gradient l1 * sign(w);
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

import numpy as np

from .registry import Registry


class Regularizer:
    """``reg(w) -> float`` and ``reg.grad(w) -> d reg / d w``."""

    def __call__(self, x) -> float:
        return 0.0

    def grad(self, x):
        return np.zeros_like(np.asarray(x))

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = float(0.0 if l1 is None else l1)
        self.l2 = float(0.0 if l2 is None else l2)

    def __call__(self, x) -> float:
        x = np.asarray(x)
        return float(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def grad(self, x):
        x = np.asarray(x)
        return (self.l1 * np.sign(x) + 2 * self.l2 * x).astype(x.dtype, copy=False)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


REGISTRY = Registry("regularizer", "keras.regularizers", [Regularizer, L1, L2, L1L2],
                    aliases={"l1_l2": lambda: L1L2(l1=0.01, l2=0.01)})


def get(identifier):
    """A Keras regularizer identifier (name, config dict, instance or callable)."""
    return REGISTRY.get(identifier)


def serialize(regularizer):
    return REGISTRY.serialize(regularizer)


def penalty(regularizer, x) -> float:
    """regularizer(x) as a Python float, for ours and for any callable returning a scalar."""
    return float(np.asarray(regularizer(x)))


def penalty_grad(regularizer, x):
    """d regularizer(x) / d x; only regularizers with a ``grad`` method have one."""
    if not hasattr(regularizer, "grad"):
        raise TypeError(f"regularizer {regularizer!r} has no grad(x) method, so its gradient is unknown; "
                        f"use npconv.keras.regularizers.L1/L2/L1L2 or give it a grad method")
    return regularizer.grad(x)
