"""The FFT algorithm's kept spectra: up to ``KEPT_SPECTRA`` kernel spectra per thread (one per
weight array), each in a :func:`npconv.workspace.scratch` buffer beside a private copy of its
weights (so the cap counts them and may drop them, least recently used first), served only
while the weights equal that copy (:mod:`.kept`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .kept import KeptTransforms

KEPT_SPECTRA = 4

_spectra = KeptTransforms("fft.kept_spectrum", KEPT_SPECTRA)


def kept_spectrum(key: Any, w: np.ndarray, spectrum_shape: tuple[int, ...], spectrum_dtype: Any) -> np.ndarray | None:
    """The kept spectrum for these weights, or None (never kept, dropped, or weights changed)."""
    return _spectra.get(key, w, spectrum_shape, spectrum_dtype)


def keep(key: Any, w: np.ndarray, wf: np.ndarray) -> np.ndarray:
    """Copy the spectrum and the weights into a kept buffer (the least recently used slot)."""
    return _spectra.keep(key, w, wf)


def forget_kept_spectra() -> None:
    """Forget this thread's kept spectra (their buffers go with workspace.release())."""
    _spectra.forget()
