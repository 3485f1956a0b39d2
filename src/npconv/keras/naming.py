"""Keras's automatic layer names ('conv2d', 'conv2d_1', ...), counted per context.

Keras counts the names it hands out per thread until ``keras.utils.clear_session()``; npconv
keeps the count in a :mod:`contextvars` variable, so a thread, an asyncio task started
inside :func:`fresh_names`, or a test that calls :func:`reset_names` first sees names that do
not depend on which layers were made before it.

>>> from npconv import keras
>>> with keras.fresh_names():
...     [keras.Conv2D(2, 3).name, keras.Conv2D(2, 3).name, keras.DepthwiseConv1D(3).name]
['conv2d', 'conv2d_1', 'depthwise_conv1d']
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["unique_name", "reset_names", "fresh_names"]

_NAMES_USED: contextvars.ContextVar[collections.Counter] = contextvars.ContextVar("npconv_keras_names")


def _names_used() -> collections.Counter:
    """This context's count of each prefix handed out (created on first use)."""
    counter = _NAMES_USED.get(None)
    if counter is None:
        counter = collections.Counter()
        _NAMES_USED.set(counter)
    return counter


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
    count = counter[prefix]
    counter[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_names() -> None:
    """Start this context's names again from 'conv2d' (Keras's ``clear_session()`` does this)."""
    _NAMES_USED.set(collections.Counter())


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
