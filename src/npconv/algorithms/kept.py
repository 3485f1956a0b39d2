"""Weight transforms kept between calls: the FFT's kernel spectra and Winograd's transformed
weights.  A network runs many layers in turn, so each algorithm keeps up to ``capacity``
entries per thread, one per weight array (same-shaped layers do not evict one another); each
entry lives in a :func:`npconv.workspace.scratch` buffer beside a private copy of its weights,
so the cap counts the entries and may drop them, least recently used first.

An entry is served only while the weights equal that copy (``np.array_equal``: never stale).
The comparison is skipped for weights whose memory cannot be written (their owning array is
read-only, as :func:`npconv.nn.fuse` leaves an inference model's weights): the entry then
holds a weak reference to that owner and is served while it is the same, still read-only,
array.  NumPy lets an owner be made writable again: weights changed that way and made
read-only once more are not seen (to change a fused model's weights, fuse the model again;
:func:`npconv.nn.fuse` says so too).
"""

from __future__ import annotations

import collections
import math
import threading
import weakref
from typing import Any

import numpy as np

from .. import workspace

__all__ = ["KeptTransforms"]


def allocation(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _frozen(w: np.ndarray) -> bool:
    """Whether ``w``'s memory cannot be written through any array (its owner is read-only)."""
    owner = allocation(w)
    return not owner.flags.writeable and owner.flags.owndata


class KeptTransforms:
    """Up to ``capacity`` transformed weights per thread, keyed by the caller's key and the
    weights' memory, least recently used first.

    Parameters
    ----------
    prefix : str
        The workspace buffers' names (``prefix.0``, ``prefix.1``...).
    capacity : int
        Entries kept per thread.
    """

    def __init__(self, prefix: str, capacity: int) -> None:
        self.prefix, self.capacity = prefix, capacity
        self._local = threading.local()

    def _entries(self) -> collections.OrderedDict:
        """{key: (buffer name, weak ref to the buffer, bytes, weak ref to a frozen owner or None)}."""
        return self._local.__dict__.setdefault("entries", collections.OrderedDict())

    @staticmethod
    def _full_key(key: Any, w: np.ndarray) -> tuple:
        """(the caller's key and the weights' layout, the weights' memory)."""
        return (key, w.shape, w.dtype.str, w.strides), (id(allocation(w)), w.__array_interface__["data"][0])

    def get(self, key: Any, w: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """The kept transform of ``w`` under ``key`` (of ``shape`` and ``dtype``), or None: the
        entry of this very array first, else one kept for equal weights in another array."""
        entries, full = self._entries(), self._full_key(key, w)
        same_layout = [known for known in entries if known[0] == full[0]]
        for known in sorted(same_layout, key=lambda known: known != full):  # this array's entry first
            transform = self._served(entries, known, w, shape, dtype, same_memory=known == full)
            if transform is not None:
                entries.move_to_end(known)
                return transform
        return None

    @staticmethod
    def _served(entries: collections.OrderedDict, known: tuple, w: np.ndarray, shape: tuple[int, ...],
                dtype: Any, same_memory: bool) -> np.ndarray | None:
        """The entry's transform if its buffer is still held and its weights are ``w``'s."""
        name, reference, nbytes, owner = entries[known]
        buffer = reference()
        raw = workspace.scratch(name, (nbytes,), np.uint8) if buffer is not None else None
        if raw is None or allocation(raw) is not buffer:  # dropped to make room: the buffer is another
            del entries[known]
            return None
        transform, weights = _views(raw, shape, dtype, w)
        frozen = same_memory and _frozen(w)
        if frozen and owner is not None and owner() is allocation(w):
            return transform
        if not np.array_equal(weights, w):
            return None
        if frozen:  # equal now and unwritable from here on: later calls skip the comparison
            entries[known] = (name, reference, nbytes, weakref.ref(allocation(w)))
        return transform

    def keep(self, key: Any, w: np.ndarray, transform: np.ndarray) -> np.ndarray:
        """Copy ``transform`` and ``w`` into a kept buffer (the least recently used slot); the copy."""
        entries, full = self._entries(), self._full_key(key, w)
        if full in entries:
            name = entries.pop(full)[0]
        elif len(entries) < self.capacity:
            used = {entry[0] for entry in entries.values()}
            name = next(f"{self.prefix}.{i}" for i in range(self.capacity) if f"{self.prefix}.{i}" not in used)
        else:
            name = entries.popitem(last=False)[1][0]
        nbytes = transform.nbytes + w.nbytes
        raw = workspace.scratch(name, (nbytes,), np.uint8)
        kept, weights = _views(raw, transform.shape, transform.dtype, w)
        kept[...], weights[...] = transform, w
        if raw.nbytes <= workspace.limit():
            owner = weakref.ref(allocation(w)) if _frozen(w) else None
            entries[full] = (name, weakref.ref(allocation(raw)), nbytes, owner)
        return kept

    def forget(self) -> None:
        """Forget this thread's entries (their buffers go with ``workspace.release()``)."""
        self._entries().clear()


def _views(raw: np.ndarray, shape: tuple[int, ...], dtype: Any, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(transform, weights) views of a kept buffer: the transform first (aligned), the weights after."""
    transform_bytes = math.prod(shape) * np.dtype(dtype).itemsize
    transform = raw[:transform_bytes].view(dtype).reshape(shape)
    return transform, raw[transform_bytes:].view(w.dtype).reshape(w.shape)
