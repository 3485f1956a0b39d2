"""``pad``: pad (or, with negative pads, crop) an array, as ``torch.nn.functional.pad``.

:mod:`npconv.functional` re-exports :func:`pad`, and its API page documents it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .memory import check_allocation
from .spec import check_mode_pad


PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input: npt.ArrayLike, pad: tuple[int, ...] | list[int], mode: str = "constant",
        value: float | None = None) -> np.ndarray:
    """Pad (or, with negative pads, crop) an array, as ``torch.nn.functional.pad``.

    Parameters
    ----------
    input : array_like
        Any array; ``reflect``, ``replicate`` and ``circular`` need a (batched or unbatched)
        input whose last 1, 2 or 3 dims are padded.
    pad : tuple of ints
        (left, right) pairs starting from the LAST dim: ``(1, 2)`` pads the last dim, ``(1, 2,
        0, 3)`` the last two.  Negative values crop.
    mode : {'constant', 'reflect', 'replicate', 'circular'}, default 'constant'
        What the padding holds; reflect needs pad < size, circular pad <= size.
    value : float or complex, optional
        The constant (default 0); only with ``mode='constant'``; complex only for a complex input.

    Returns
    -------
    numpy.ndarray
        The padded array, of the input's dtype.

    Raises
    ------
    ConvRuleError
        reflect or circular padding too large for its dim.
    TypeError
        ``pad`` not a tuple of ints; a complex ``value`` for a real input.
    ValueError
        An odd number of pads, more pairs than dims, an unknown mode, a value with a mode other
        than constant, a mode for dims it does not pad, crops larger than the dim.

    Examples
    --------
    >>> import numpy as np
    >>> pad(np.array([[1., 2., 3.]]), (2, 1), mode="reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    >>> pad(np.array([[1., 2., 3.]]), (-1, 1), value=9.)
    array([[2., 3., 9.]])
    """
    x = np.asarray(input)
    pairs = _pad_pairs(pad, x.ndim)
    _check_pad_mode(mode, value, len(pairs), x.shape)
    _check_pad_value(value, x.dtype)
    first = x.ndim - len(pairs)
    _check_pad_sizes(mode, x.shape[first:], pairs)
    widths = [(0, 0)] * first + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    check_allocation("pad output", [size + lo + hi for size, (lo, hi) in zip(x.shape, widths)], x.dtype)
    keyword = {"constant_values": 0 if value is None else value} if mode == "constant" else {}
    if mode == "circular":  # PyTorch crops first, then wraps around what is left
        return np.pad(x[_crops(x.shape, pairs)], widths, mode="wrap")
    padded = np.pad(x, widths, mode=PAD_MODES[mode], **keyword)  # type: ignore[call-overload]
    return padded[_crops(padded.shape, pairs)]


def _crops(shape: tuple[int, ...], pairs: list[tuple[int, int]]) -> tuple[slice, ...]:
    """Slices that drop the negative pads from the last len(pairs) dims of shape."""
    first = len(shape) - len(pairs)
    return (slice(None),) * first + tuple(
        slice(-min(lo, 0), shape[first + i] + min(hi, 0)) for i, (lo, hi) in enumerate(pairs))


def _check_pad_sizes(mode: str, sizes: tuple[int, ...], pairs: list[tuple[int, int]]) -> None:
    for dim, (size, (lo, hi)) in enumerate(zip(sizes, pairs)):
        kept = size + min(lo, 0) + min(hi, 0)
        if kept < (0 if mode == "constant" else 1) or size + lo + hi < 0:
            raise ValueError(f"pad: pads ({lo}, {hi}) crop more than the size {size} of padded dim "
                             f"{dim} (counting from the first padded dim)")
        if mode in ("reflect", "circular"):
            check_mode_pad(mode, kept if mode == "circular" else size, lo, hi, dim, "pad")


def _pad_pairs(pad: object, ndim: int) -> list[tuple[int, int]]:
    """PyTorch's flat pad tuple (last dim first) as (lo, hi) pairs in dim order."""
    if not isinstance(pad, (tuple, list)) or not all(isinstance(p, (int, np.integer)) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: Padding length must be divisible by 2, got {len(pad)} values {tuple(pad)}")
    if len(pad) // 2 > ndim:
        raise ValueError(f"pad: Padding length should be less than or equal to two times the input "
                         f"dimension but got padding length {len(pad)} and input of dimension {ndim}")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    return pairs[::-1]


def _check_pad_value(value: complex | None, dtype: np.dtype) -> None:
    """A complex constant needs a complex input: NumPy would drop its imaginary part."""
    if value is not None and np.iscomplexobj(value) and np.imag(value) != 0 and dtype.kind != "c":
        raise TypeError(f"pad: value {value!r} is complex but the input is real ({dtype}): its imaginary "
                        f"part would be lost; pad a complex input, or pass a real value")


def _check_pad_mode(mode: str, value: float | None, n_padded: int, shape: tuple[int, ...]) -> None:
    if mode not in PAD_MODES:
        raise ValueError(f"pad: Unrecognised padding mode {mode!r}, expected one of {list(PAD_MODES)}")
    if mode == "constant":
        return
    if value is not None:
        raise ValueError(f'pad: Padding mode "{mode}" doesn\'t take in value argument, got value={value!r}')
    if n_padded not in (1, 2, 3) or len(shape) not in (n_padded + 1, n_padded + 2):
        raise ValueError(f"pad: Padding size {2 * n_padded} is not supported for {len(shape)}D input "
                         f"tensor: mode {mode!r} pads the last 1, 2 or 3 dims of an input with one or "
                         f"two more dims (got {n_padded} padded dims of input shape {list(shape)})")
