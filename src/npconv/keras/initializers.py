"""Keras's weight initializers on npconv's random generator (``npconv.manual_seed`` seeds it).

Fans of a kernel ``(*k, fan_in_channels, fan_out_channels)``: ``fan_in = prod(k) * shape[-2]``,
``fan_out = prod(k) * shape[-1]`` (Keras's ``compute_fans``; ``input_axes`` / ``output_axes``
override them).  VarianceScaling with ``n`` = fan_in, fan_out or their mean:

- ``uniform``: U(-limit, limit), limit = sqrt(3 * scale / n);
- ``truncated_normal``: N(0, s) cut at 2 s, s = sqrt(scale / n) / 0.87962566103423978;
- ``untruncated_normal``: N(0, sqrt(scale / n)).

glorot = scale 1, fan_avg; he = scale 2, fan_in; lecun = scale 1, fan_in (``_uniform`` or
``_normal`` = truncated).  A ``seed`` gives the same values on every call.

>>> w = get("he_normal")((3, 3, 64, 64))
>>> round(float(w.std()) * (9 * 64 / 2) ** 0.5, 1)
1.0
"""

from __future__ import annotations

import math

import numpy as np

from ..random import generator
from .registry import Registry

TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras counts them."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) <= 1:
        return (shape[0], shape[0]) if shape else (1, 1)
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """``init(shape, dtype=None) -> ndarray``; ``get_config()`` gives its arguments."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype or np.float32)


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype or np.float32)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype or np.float32)

    def get_config(self) -> dict:
        return {"value": self.value}


class RandomInitializer(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def rng(self) -> np.random.Generator:
        return generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


def truncated_normal(rng, shape, mean: float, stddev: float) -> np.ndarray:
    """N(mean, stddev) with every draw beyond 2 stddev drawn again (Keras's rule)."""
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2
    return mean + stddev * z


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return self.rng().normal(self.mean, self.stddev, shape).astype(dtype or np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    def __call__(self, shape, dtype=None):
        return truncated_normal(self.rng(), shape, self.mean, self.stddev).astype(dtype or np.float32)


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self.rng().uniform(self.minval, self.maxval, shape).astype(dtype or np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        distribution = "truncated_normal" if distribution.lower() == "normal" else distribution.lower()
        if scale <= 0 or mode not in self.MODES or distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: scale must be > 0, mode one of {self.MODES}, distribution "
                             f"one of {self.DISTRIBUTIONS}; got scale={scale}, mode={mode!r}, "
                             f"distribution={distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes, self.output_axes = input_axes, output_axes

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            values = self.rng().uniform(-limit, limit, shape)
        elif self.distribution == "truncated_normal":
            values = truncated_normal(self.rng(), shape, 0.0, math.sqrt(variance) / TRUNCATED_STD)
        else:
            values = self.rng().normal(0.0, math.sqrt(variance), shape)
        return values.astype(dtype or np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def _variance_scaling(name: str, scale: float, mode: str, distribution: str):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self) -> dict:
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    doc = f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc, "__module__": __name__})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """The kernel as a (prod(shape[:-1]), shape[-1]) matrix with orthonormal rows or columns."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the tensor to initialize must be at least two-dimensional, "
                             f"got shape={tuple(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(self.rng().standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))  # a uniformly random orthogonal matrix
        q = q.T if rows < cols else q
        return (self.gain * q.reshape(shape)).astype(dtype or np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}


REGISTRY = Registry("initializer", "keras.initializers", [
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
    GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal],
    aliases={"normal": RandomNormal, "uniform": RandomUniform, "zero": Zeros, "one": Ones})


def get(identifier):
    """A Keras initializer identifier (name, config dict, instance or callable) as a callable."""
    return REGISTRY.get(identifier)


def serialize(initializer):
    return REGISTRY.serialize(initializer)
