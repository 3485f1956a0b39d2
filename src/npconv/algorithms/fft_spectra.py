"""The FFT algorithm's kept spectra: up to ``KEPT_SPECTRA`` kernel spectra per thread, each in
a :func:`npconv.workspace.scratch` buffer beside a private copy of its weights (so the cap
counts them and may drop them, least recently used first), served only while the weights
equal that copy."""

from __future__ import annotations

import collections
import math
import threading
import weakref

import numpy as np

from .. import workspace

KEPT_SPECTRA = 4

_kept = threading.local()


def _entries() -> collections.OrderedDict:
    """{key: (scratch buffer name, weak reference to the buffer, bytes)}, least recently used first."""
    return _kept.__dict__.setdefault("entries", collections.OrderedDict())


def _allocation(array) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _entry_views(raw, spectrum_shape, spectrum_dtype, w):
    """(spectrum, weights) views of a kept buffer: the spectrum first (aligned), the weights after."""
    spectrum_bytes = math.prod(spectrum_shape) * np.dtype(spectrum_dtype).itemsize
    spectrum = raw[:spectrum_bytes].view(spectrum_dtype).reshape(spectrum_shape)
    return spectrum, raw[spectrum_bytes:].view(w.dtype).reshape(w.shape)


def kept_spectrum(key, w, spectrum_shape, spectrum_dtype):
    """The kept spectrum for these weights, or None (never kept, dropped, or weights changed)."""
    entries = _entries()
    if key not in entries:
        return None
    name, reference, nbytes = entries[key]
    buffer = reference()
    raw = workspace.scratch(name, (nbytes,), np.uint8) if buffer is not None else None
    if raw is None or _allocation(raw) is not buffer:  # dropped to make room: the buffer is another
        del entries[key]
        return None
    spectrum, weights = _entry_views(raw, spectrum_shape, spectrum_dtype, w)
    if not np.array_equal(weights, w):
        return None
    entries.move_to_end(key)
    return spectrum


def keep(key, w, wf):
    """Copy the spectrum and the weights into a kept buffer (the least recently used slot)."""
    entries = _entries()
    if key in entries:
        name = entries.pop(key)[0]
    elif len(entries) < KEPT_SPECTRA:
        used = {entry[0] for entry in entries.values()}
        name = next(f"fft.kept_spectrum.{i}" for i in range(KEPT_SPECTRA) if f"fft.kept_spectrum.{i}" not in used)
    else:
        name = entries.popitem(last=False)[1][0]
    nbytes = wf.nbytes + w.nbytes
    raw = workspace.scratch(name, (nbytes,), np.uint8)
    spectrum, weights = _entry_views(raw, wf.shape, wf.dtype, w)
    spectrum[...], weights[...] = wf, w
    if raw.nbytes <= workspace.limit():
        entries[key] = (name, weakref.ref(_allocation(raw)), nbytes)
    return spectrum


def forget_kept_spectra() -> None:
    """Forget this thread's kept spectra (their buffers go with workspace.release())."""
    _entries().clear()
