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
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..random import generator
from .registry import Registry

TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2


def compute_fans(shape: Sequence[int], input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras counts them.

    Parameters
    ----------
    shape : sequence of int
        A weight's shape; a kernel is ``(*k, fan_in_channels, fan_out_channels)``.
    input_axes, output_axes : sequence of int, optional
        Count the fans over these axes instead (both must be given).

    Returns
    -------
    tuple of (int, int)

    Examples
    --------
    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) <= 1:
        return (shape[0], shape[0]) if shape else (1, 1)
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype=None) -> ndarray``; ``get_config()`` gives its arguments."""

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        """A new array of ``shape``.

        Parameters
        ----------
        shape : sequence of int
            The weight's shape.
        dtype : data-type, optional
            Its dtype (float32 when None).

        Returns
        -------
        numpy.ndarray
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments by name (Keras's ``get_config``)."""
        return {}


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return np.zeros(shape, dtype or np.float32)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return np.ones(shape, dtype or np.float32)


class Constant(Initializer):
    """Every element ``value``.

    Parameters
    ----------
    value : float, default 0.0
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return np.full(shape, self.value, dtype or np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomInitializer(Initializer):
    """Base class of the random initializers.

    Parameters
    ----------
    seed : int, optional
        Draw from ``numpy.random.default_rng(seed)`` (the same values on every call);
        None draws from npconv's generator (``npconv.manual_seed``).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def rng(self) -> np.random.Generator:
        """The generator of this call: a fresh seeded one, or npconv's."""
        return generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


def truncated_normal(rng: np.random.Generator, shape: Sequence[int], mean: float, stddev: float) -> np.ndarray:
    """N(mean, stddev) with every draw beyond 2 stddev drawn again (Keras's rule).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : sequence of int
    mean, stddev : float

    Returns
    -------
    numpy.ndarray
        float64 values within mean +- 2 stddev.

    Examples
    --------
    >>> z = truncated_normal(np.random.default_rng(0), (1000,), 0.0, 1.0)
    >>> bool(np.abs(z).max() <= 2)
    True
    """
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2
    return mean + stddev * z


class RandomNormal(RandomInitializer):
    """N(mean, stddev).

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
    seed : int, optional
        See :class:`RandomInitializer`.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return self.rng().normal(self.mean, self.stddev, shape).astype(dtype or np.float32)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """N(mean, stddev) cut at 2 stddev (draws beyond are drawn again).

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
    seed : int, optional
        See :class:`RandomInitializer`.
    """

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return truncated_normal(self.rng(), shape, self.mean, self.stddev).astype(dtype or np.float32)


class RandomUniform(RandomInitializer):
    """U(minval, maxval).

    Parameters
    ----------
    minval : float, default -0.05
    maxval : float, default 0.05
    seed : int, optional
        See :class:`RandomInitializer`.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        return self.rng().uniform(self.minval, self.maxval, shape).astype(dtype or np.float32)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Values whose variance is ``scale / n``, n a fan of the shape (see the module docstring).

    Parameters
    ----------
    scale : float, default 1.0
        > 0.
    mode : {'fan_in', 'fan_out', 'fan_avg'}, default 'fan_in'
        Which fan is n.
    distribution : {'truncated_normal', 'normal', 'untruncated_normal', 'uniform'}
        Default 'truncated_normal' ('normal' means it too).
    seed : int, optional
        See :class:`RandomInitializer`.
    input_axes, output_axes : sequence of int, optional
        Count the fans over these axes (:func:`compute_fans`).

    Raises
    ------
    ValueError
        scale <= 0, or an unknown mode or distribution.
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> None:
        super().__init__(seed)
        distribution = "truncated_normal" if distribution.lower() == "normal" else distribution.lower()
        if scale <= 0 or mode not in self.MODES or distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: scale must be > 0, mode one of {self.MODES}, distribution "
                             f"one of {self.DISTRIBUTIONS}; got scale={scale}, mode={mode!r}, "
                             f"distribution={distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes, self.output_axes = input_axes, output_axes

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
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

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution the class fixes."""

    SETTINGS = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: int | None = None, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> None:
        super().__init__(*self.SETTINGS, seed, input_axes, output_axes)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


def _fixed_doc(name: str, scale: float, mode: str, distribution: str) -> str:
    return f"""VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r}): Keras's {name}.

    Parameters
    ----------
    seed : int, optional
        See :class:`RandomInitializer`.
    input_axes, output_axes : sequence of int, optional
        Count the fans over these axes (:func:`compute_fans`).
    """


class GlorotUniform(_FixedVarianceScaling):
    SETTINGS = (1.0, "fan_avg", "uniform")
    __doc__ = _fixed_doc("GlorotUniform", *SETTINGS)


class GlorotNormal(_FixedVarianceScaling):
    SETTINGS = (1.0, "fan_avg", "truncated_normal")
    __doc__ = _fixed_doc("GlorotNormal", *SETTINGS)


class HeUniform(_FixedVarianceScaling):
    SETTINGS = (2.0, "fan_in", "uniform")
    __doc__ = _fixed_doc("HeUniform", *SETTINGS)


class HeNormal(_FixedVarianceScaling):
    SETTINGS = (2.0, "fan_in", "truncated_normal")
    __doc__ = _fixed_doc("HeNormal", *SETTINGS)


class LecunUniform(_FixedVarianceScaling):
    SETTINGS = (1.0, "fan_in", "uniform")
    __doc__ = _fixed_doc("LecunUniform", *SETTINGS)


class LecunNormal(_FixedVarianceScaling):
    SETTINGS = (1.0, "fan_in", "truncated_normal")
    __doc__ = _fixed_doc("LecunNormal", *SETTINGS)


class Orthogonal(RandomInitializer):
    """The kernel as a (prod(shape[:-1]), shape[-1]) matrix with orthonormal rows or columns.

    Parameters
    ----------
    gain : float, default 1.0
        A factor on the orthogonal matrix.
    seed : int, optional
        See :class:`RandomInitializer`.

    Raises
    ------
    ValueError
        (when called) a shape of fewer than 2 dims.

    Examples
    --------
    >>> q = Orthogonal(seed=0)((4, 4)).astype(np.float64)
    >>> bool(np.allclose(q @ q.T, np.eye(4), atol=1e-6))
    True
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape: Sequence[int], dtype: npt.DTypeLike | None = None) -> np.ndarray:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the tensor to initialize must be at least two-dimensional, "
                             f"got shape={tuple(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(self.rng().standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))  # a uniformly random orthogonal matrix
        q = q.T if rows < cols else q
        return (self.gain * q.reshape(shape)).astype(dtype or np.float32)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gain": self.gain}


REGISTRY = Registry("initializer", "keras.initializers", [
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
    GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal],
    aliases={"normal": RandomNormal, "uniform": RandomUniform, "zero": Zeros, "one": Ones})


def get(identifier: Any) -> Any:
    """The initializer a Keras identifier stands for, as a callable.

    Parameters
    ----------
    identifier : None, str, dict, type or callable
        None, a name (``'he_normal'``, ``'HeNormal'``, ``'normal'``), a config dict, a class,
        an instance or any callable (see :meth:`npconv.keras.registry.Registry.get`).

    Returns
    -------
    Initializer, callable or None

    Raises
    ------
    ValueError
        An unknown name or identifier.
    """
    return REGISTRY.get(identifier)


def serialize(initializer: Any) -> Any:
    """Keras's dict form of an initializer (other callables and None kept as they are).

    Parameters
    ----------
    initializer : Initializer, callable or None

    Returns
    -------
    dict, callable or None
    """
    return REGISTRY.serialize(initializer)
