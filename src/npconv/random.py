"""npconv's random number generator (weight initialisation, dropout)."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed npconv's generator (weight initialisation, dropout), as ``torch.manual_seed`` seeds
    PyTorch's.

    Parameters
    ----------
    seed : int

    Returns
    -------
    numpy.random.Generator
        The new generator.

    Examples
    --------
    >>> manual_seed(0).random() == manual_seed(0).random()
    True
    """
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """npconv's generator, as :func:`manual_seed` last set it."""
    return _generator
