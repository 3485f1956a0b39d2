"""npconv's random number generator (weight initialisation, dropout)."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed npconv's generator (as ``torch.manual_seed`` seeds PyTorch's); returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    return _generator
