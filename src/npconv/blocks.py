"""Sliding blocks: ``unfold`` (im2col) and ``fold`` (col2im), as ``torch.nn.functional``'s.

For 1, 2 and 3 spatial dims (the count comes from the tuple arguments; a bare int means 2-D,
as in PyTorch).  :mod:`npconv.functional` re-exports :func:`unfold` and :func:`fold` (and
:func:`spatial_dims`), and its API page documents them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from .arrays import as_array, compute_dtypes
from .memory import check_allocation
from . import spec_errors as errors
from .spec import ConvSpec, IntOrTuple, Padding, check_input_rank, ntuple
from .windows import col2im, im2col


def spatial_dims(*params: object) -> int:
    """The number of spatial dims of an unfold/fold call: the length of any tuple argument,
    else 2 (PyTorch's).

    Parameters
    ----------
    *params : int or tuple
        The call's kernel_size, dilation, padding, stride (and fold's output_size).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Tuple arguments of different lengths.

    Examples
    --------
    >>> spatial_dims(3, (1, 1, 1), 0)
    3
    """
    lengths = {len(p) for p in params if isinstance(p, (tuple, list))}
    if len(lengths) > 1:
        raise ValueError(f"unfold/fold: tuple arguments disagree on the number of spatial dims: "
                         f"{sorted(lengths)}")
    return lengths.pop() if lengths else 2


def _block_spec(op: str, n: int, kernel_size: IntOrTuple, dilation: IntOrTuple, padding: Padding,
                stride: IntOrTuple) -> ConvSpec:
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    return ConvSpec.build(kernel_size, stride, padding, dilation, ndim=n, op=op)


def _blocks_words(spec: ConvSpec) -> dict[str, Callable[[Any], str]]:
    """unfold's and fold's wording (PyTorch's) of the spec's refusal of a kernel larger than
    the padded input: the array of sliding blocks would have a side below one."""
    def say(error: errors.ConvRule) -> str:
        spatial, pads, blocks = (error.numbers[k] for k in ("in_spatial", "pads", "blocks"))
        fixes = "; ".join(f"dim {d}: padding >= {-(-(ek - size) // 2)}" for d, (size, ek, b) in
                          enumerate(zip(spatial, error.numbers["effective_kernel"], blocks)) if b < 1)
        return (f"{error.op}: Given input with spatial size {tuple(spatial)}, kernel_size={spec.kernel_size}, "
                f"dilation={spec.dilation}, padding={tuple(lo for lo, _ in pads)}, calculated shape of "
                f"the array of sliding blocks as {blocks}, but its components must be at least one "
                f"(rule: (size + 2*padding - (dilation*(kernel_size-1)+1)) // stride + 1); nearest valid: "
                + fixes)
    return {"kernel_fits": say}


def _block_counts(spec: ConvSpec, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """Number of block positions per dim: the spec's output size, refused in unfold's words."""
    with errors.worded(_blocks_words(spec)):
        return spec.out_spatial(spatial)


def unfold(input: npt.ArrayLike, kernel_size: IntOrTuple, dilation: IntOrTuple = 1, padding: Padding = 0,
           stride: IntOrTuple = 1) -> np.ndarray:
    """Sliding blocks as columns (im2col), as ``torch.nn.functional.unfold``.

    Rows are ordered channel first, then kernel taps (PyTorch's order); the columns are the
    block positions in row-major order.  Extension: 1-D and 3-D when the tuple arguments have
    1 or 3 entries (a bare int means 2-D, as in PyTorch).

    Parameters
    ----------
    input : array_like
        ``(N, C, *spatial)``, or unbatched ``(C, *spatial)``.
    kernel_size : int or tuple of ints
        The block's size.
    dilation, padding, stride : int or tuple of ints
        As in :func:`conv2d` (ints and per-side pairs; no padding strings).

    Returns
    -------
    numpy.ndarray
        (N, C * prod(kernel_size), L), L the number of block positions
        ``prod(floor((size + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1)``.

    Raises
    ------
    ConvRuleError
        A block larger than the padded input (the message gives the padding that fits), or a
        parameter below its minimum.
    TypeError
        A padding string, or an input that is not real numbers.
    ValueError
        Tuple arguments of different lengths; an input of the wrong rank.

    Examples
    --------
    >>> import numpy as np
    >>> unfold(np.arange(9.).reshape(1, 1, 3, 3), 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    n = spatial_dims(kernel_size, dilation, padding, stride)
    op = "unfold"
    spec = _block_spec(op, n, kernel_size, dilation, padding, stride)
    x = as_array(input, "input", op)
    batched = check_input_rank(op, n, x.shape)
    xb = x if batched else x[None]
    blocks = _block_counts(spec, xb.shape[2:])
    check_allocation(f"{op} output", (xb.shape[0], xb.shape[1] * spec.kernel_volume, math.prod(blocks)), x.dtype)
    cols = im2col(xb, spec.kernel_size, spec.stride, spec.dilation, spec.pads(xb.shape[2:]), blocks)
    cols = cols.reshape(xb.shape[0], xb.shape[1] * spec.kernel_volume, math.prod(blocks))
    return cols if batched else cols[0]


def fold(input: npt.ArrayLike, output_size: IntOrTuple, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
         padding: Padding = 0, stride: IntOrTuple = 1) -> np.ndarray:
    """Sum sliding blocks back into an array (col2im), as ``torch.nn.functional.fold``.

    The adjoint of :func:`unfold`: overlapping blocks add up.

    Parameters
    ----------
    input : array_like
        (N, C * prod(kernel_size), L), or unbatched (C * prod(kernel_size), L).
    output_size : int or tuple of ints
        The spatial size of the result.
    kernel_size, dilation, padding, stride : int or tuple of ints
        As in :func:`unfold`.

    Returns
    -------
    numpy.ndarray
        ``(N, C, *output_size)``.

    Raises
    ------
    ConvRuleError
        ``input.shape[1]`` not divisible by ``prod(kernel_size)``, L not the number of blocks
        that fit ``output_size``, or :func:`unfold`'s rules.
    TypeError, ValueError
        As :func:`unfold`; an input not 2-D or 3-D, or with an empty dim.

    Examples
    --------
    >>> import numpy as np
    >>> fold(np.ones((1, 4, 4)), (3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    n = spatial_dims(output_size, kernel_size, dilation, padding, stride)
    op = "fold"
    spec = _block_spec(op, n, kernel_size, dilation, padding, stride)
    size = ntuple(output_size, n, "output_size", op)
    cols = as_array(input, "input", op)
    if cols.ndim not in (2, 3) or min(cols.shape[-2:]) < 1:
        raise ValueError(f"{op}: Expected 2D or 3D (batch mode) tensor for input with possibly 0 "
                         f"batch size and non-zero dimensions for input, but got: {list(cols.shape)}")
    batched = cols.ndim == 3
    cols = cols if batched else cols[None]
    k = spec.kernel_volume
    if cols.shape[1] % k:
        raise errors.fold_channels(op, cols.shape[1], spec.kernel_size)
    blocks = _block_counts(spec, size)
    if cols.shape[2] != math.prod(blocks):
        raise errors.fold_blocks(op, cols.shape[2], size, spec.kernel_size, spec.dilation, spec.pads(size),
                                 spec.stride, blocks)
    compute, result = compute_dtypes(cols)
    check_allocation(f"{op} output", (cols.shape[0], cols.shape[1] // k) + size, compute)
    grid = cols.astype(compute, copy=False).reshape(
        (cols.shape[0], cols.shape[1] // k) + spec.kernel_size + blocks)
    out = col2im(grid, size, spec.stride, spec.dilation, spec.pads(size))
    out = out.astype(result, copy=False)
    return out if batched else out[0]
