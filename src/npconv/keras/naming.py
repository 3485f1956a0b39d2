"""Keras's automatic layer names ('conv2d', 'conv2d_1', ...), counted per thread or per block.

As in Keras (whose naming state is per thread), names are counted for each thread until
:func:`reset_names` (Keras's ``clear_session()``); the asyncio tasks of one thread share its
count.  A :func:`fresh_names` block counts from scratch in a :mod:`contextvars` variable, so a
test or a task inside it sees names that do not depend on which layers were made before it,
and the thread's count comes back after the block.

>>> from npconv import keras
>>> with keras.fresh_names():
...     [keras.Conv2D(2, 3).name, keras.Conv2D(2, 3).name, keras.DepthwiseConv1D(3).name]
['conv2d', 'conv2d_1', 'depthwise_conv1d']
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
from collections.abc import Iterator

__all__ = ["unique_name", "reset_names", "fresh_names"]

_THREAD_NAMES = threading.local()  # each thread's count outside any fresh_names block
_NAMES_USED: contextvars.ContextVar[collections.Counter] = contextvars.ContextVar("npconv_keras_names")
_COUNTING = threading.Lock()


def _names_used() -> collections.Counter:
    """The count of each prefix handed out: the innermost fresh_names block's, else this thread's."""
    scoped = _NAMES_USED.get(None)
    if scoped is not None:
        return scoped
    if not hasattr(_THREAD_NAMES, "counter"):
        _THREAD_NAMES.counter = collections.Counter()
    return _THREAD_NAMES.counter


def unique_name(prefix: str) -> str:
    """Keras's automatic names: 'conv2d', then 'conv2d_1', 'conv2d_2', ...

    Parameters
    ----------
    prefix : str
        The layer kind in snake case (``'conv2d'``).

    Returns
    -------
    str
        ``prefix`` the first time in this context, then ``prefix_1``, ``prefix_2``, ...
    """
    counter = _names_used()
    with _COUNTING:
        count = counter[prefix]
        counter[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_names() -> None:
    """Start the names again from 'conv2d' (Keras's ``clear_session()`` does this): this thread's
    count, or the current fresh_names block's inside one."""
    with _COUNTING:
        _names_used().clear()


@contextlib.contextmanager
def fresh_names() -> Iterator[None]:
    """A block whose layers are named from scratch; the names counted before it come back after.

    Yields
    ------
    None
        Inside the block, automatic names start again at ``'conv2d'``.
    """
    token = _NAMES_USED.set(collections.Counter())
    try:
        yield
    finally:
        _NAMES_USED.reset(token)
