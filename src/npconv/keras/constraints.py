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

import numpy as np

from .registry import Registry

EPSILON = 1e-7


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.square(w).sum(axis=axis, keepdims=True))


class Constraint:
    def __call__(self, w):
        return np.asarray(w)

    def get_config(self) -> dict:
        return {}


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        return (w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return np.maximum(np.asarray(w), 0)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = np.asarray(w)
        return (w / (EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


REGISTRY = Registry("constraint", "keras.constraints", [Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm])


def get(identifier):
    """A Keras constraint identifier (name, config dict, instance or callable)."""
    return REGISTRY.get(identifier)


def serialize(constraint):
    return REGISTRY.serialize(constraint)
