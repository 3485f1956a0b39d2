"""Convolution over Dask arrays: images, volumes and batches larger than memory, on any Dask scheduler.

``npconv.dask.conv2d(x, w)`` takes a ``dask.array.Array`` ``x`` of shape (N, C, H, W), chunked
in any way, and returns a lazy ``dask.array.Array`` whose ``.compute()`` is
``npconv.functional.conv2d`` of the whole array (the same settings, extensions and refusals).
Complex operands (complex64, complex128) are taken as :func:`npconv.conv` takes them: each block
is an :func:`npconv.conv`.  Needs the optional extra: ``pip install npconv[dask]``.

How the graph is built (one rule for every n, every padding mode and every stride):

1. The outer padding is applied once, at the array's true edges, with PyTorch's meaning of each
   mode: ``dask.array.pad`` with NumPy's ``constant``/``reflect``/``edge``/``wrap`` is PyTorch's
   ``zeros``/``reflect``/``replicate``/``circular`` (NumPy's ``reflect`` does not repeat the
   edge, as PyTorch's does not; NumPy's ``symmetric`` would).
2. Channels are rechunked whole (groups need them all); the batch keeps its chunks.
3. Along each spatial dim the output is cut into blocks that start where the input's chunks
   start (rounded up to the stride; chunks too thin for the halo, such as the pad's edge chunks,
   are merged, and chunks holding more than about :data:`BLOCK_BYTES` are cut into equal
   blocks).  The padded input is rechunked so that block i starts at ``o_i * stride`` (little
   moves: the boundaries mostly exist already), and each block borrows a right halo of
   ``max(dilation*(k-1) + 1 - stride, 0)`` elements from its neighbour (``dask.array.overlap``,
   boundary 'none').  No block but the last is shorter than the halo, and the last holds at
   least one whole window, so no chunking can give a wrong answer.
4. Each block is then a 'valid' :func:`npconv.conv` (the planner picks the algorithm per block).
   The weight and bias enter the graph once, as one-chunk dask arrays.

A transposed convolution is run by the dual rule: the input's values are spread ``stride``
apart with zeros between them (block by block, no halo needed), then convolved at stride 1 with
the flipped, channel-swapped weight (:func:`npconv.core.as_forward_convolution`).  That costs
``stride**n`` times the arithmetic of npconv's in-memory transposed algorithms.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

try:
    import dask.array as da
    from dask.base import tokenize
except ImportError as error:  # pragma: no cover - the extra is missing
    raise ImportError("npconv.dask needs Dask: pip install 'npconv[dask]'") from error

from . import core
from .arrays import as_array, compute_dtypes
from .settings import config as npconv_config
from .settings import current as current_settings
from .spec import ConvSpec, check_input_rank, check_operands
from .spec_parsing import IntOrTuple, Padding, ntuple

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

BLOCK_BYTES = 16 * 2**20  # a block's input, about: small enough for a few in flight per core
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
Pads = tuple[tuple[int, int], ...]


def conv(input: Any, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None, *, stride: IntOrTuple = 1,
         padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros",
         transposed: bool = False, output_padding: IntOrTuple = 0, block: IntOrTuple | None = None) -> Any:
    """:func:`npconv.conv` on a Dask array: a lazy result whose ``.compute()`` is the in-memory one.

    Parameters
    ----------
    input : dask.array.Array
        ``(N, C_in, *in)`` or unbatched ``(C_in, *in)``, chunked in any way (NumPy arrays are
        wrapped as one chunk).
    weight, bias, stride, padding, dilation, groups, padding_mode, transposed, output_padding
        As :func:`npconv.conv` (every extension included: 'same' at any stride, per-side pads).
    block : int or tuple of n ints, optional
        Extension: the output positions per block along each spatial dim (grown where a block
        would be shorter than the halo).  Default: blocks follow the input's chunks (see above).

    Returns
    -------
    dask.array.Array
        ``(N, C_out, *out)`` (unbatched without N), npconv's dtype; chunked as the input along N,
        in one chunk along C_out and in blocks along the spatial dims.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError
        As :func:`npconv.conv`, when called, before any graph is built.

    Examples
    --------
    >>> import numpy as np, dask.array as da, npconv
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 40, 30))
    >>> w = np.ones((3, 2, 3, 3))
    >>> y = npconv.dask.conv(da.from_array(x, chunks=(1, 1, 16, 7)), w, stride=2, padding="same")
    >>> y.shape, y.chunks[2]
    ((1, 3, 20, 15), (8, 8, 4))
    >>> bool(np.allclose(y.compute(), npconv.conv(x, w, stride=2, padding="same"), rtol=0, atol=1e-12))
    True
    """
    w = as_array(weight, "weight", "conv")
    if w.ndim < 3:
        raise ValueError(f"conv: weight must have at least 3 dims (channels, channels, *kernel_size), "
                         f"got weight of shape {list(w.shape)}")
    return _run(w.ndim - 2, input, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=padding_mode, transposed=transposed, output_padding=output_padding, block=block)


def _run(n: int, input: Any, w: np.ndarray, bias: npt.ArrayLike | None, *, stride: IntOrTuple, padding: Padding,
         dilation: IntOrTuple, groups: int, padding_mode: str, transposed: bool, output_padding: IntOrTuple,
         block: IntOrTuple | None) -> Any:
    """Validate everything as npconv does (same rules, same words), then build the graph."""
    op = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    x = _dask_input(input, op)
    b = None if bias is None else as_array(bias, "bias", op)
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode, transposed, output_padding,
                          ndim=n, op=op)
    batched = check_input_rank(op, n, x.shape)
    x = x if batched else x[None]
    c_out = check_operands(spec, x.shape, w.shape, None if b is None else b.shape)
    out_spatial = spec.out_spatial(x.shape[2:])  # every refusal comes before the graph
    if x.shape[0] == 0:  # an empty batch: nothing to cut into blocks
        result = da.zeros((0, c_out) + out_spatial, dtype=_result_dtype(x.dtype, w, b))
    else:
        result = _transposed(x, w, b, spec, block) if transposed else _forward(x, w, b, spec, block)
    assert result.shape[2:] == out_spatial, (result.shape, out_spatial)
    return result if batched else result[0]


def _dask_input(input: Any, op: str) -> Any:
    """A Dask array as it is (its dtype checked by npconv's policy); anything else read as npconv
    reads an input and wrapped as one chunk."""
    if not isinstance(input, da.Array):
        return da.from_array(as_array(input, "input", op))
    as_array(np.empty(0, input.dtype), "input", op)  # the dtype policy's TypeError, before any graph
    return input


def _forward(x: Any, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec, block: IntOrTuple | None) -> Any:
    """Pad at the true edges, then the blocked 'valid' convolution."""
    pads = spec.pads(x.shape[2:])
    padded = da.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=PAD_MODES[spec.padding_mode])
    return _valid(padded, w, b, spec.with_pads(((0, 0),) * spec.ndim, padding_mode="zeros"), _hint(spec, block))


def _transposed(x: Any, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec, block: IntOrTuple | None) -> Any:
    """The dual rule: spread the input ``stride`` apart, then a stride-1 conv with the flipped weight."""
    pads = spec.pads(x.shape[2:])
    forward_spec, forward_w, forward_pads = core.as_forward_convolution(spec, w, pads)
    spread = _spread(x, spec.stride)
    cropped = spread[(slice(None), slice(None)) + tuple(slice(max(-lo, 0), size - max(-hi, 0)) for (lo, hi), size
                                                        in zip(forward_pads, spread.shape[2:]))]
    padded = da.pad(cropped, ((0, 0), (0, 0)) + tuple((max(lo, 0), max(hi, 0)) for lo, hi in forward_pads))
    return _valid(padded, forward_w, b, forward_spec.with_pads(((0, 0),) * spec.ndim, stride=(1,) * spec.ndim),
                  _hint(spec, block))


def _spread(x: Any, stride: tuple[int, ...]) -> Any:
    """x with ``stride - 1`` zeros after each element along each spatial dim, the trailing ones cut:
    (in - 1) * stride + 1 per dim."""
    if max(stride) == 1:
        return x
    chunks = x.chunks[:2] + tuple(tuple(c * s for c in dim) for dim, s in zip(x.chunks[2:], stride))
    spread = x.map_blocks(_spread_block, stride, chunks=chunks, dtype=x.dtype)
    return spread[(slice(None), slice(None)) + tuple(slice(0, (size - 1) * s + 1) for size, s in
                                                     zip(x.shape[2:], stride))]


def _spread_block(block: np.ndarray, stride: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(block.shape[:2] + tuple(size * s for size, s in zip(block.shape[2:], stride)), block.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = block
    return out


def _hint(spec: ConvSpec, block: IntOrTuple | None) -> tuple[int, ...]:
    """Output positions per block: the caller's, else 0 (blocks follow the input's chunks)."""
    if block is not None:
        return ntuple(block, spec.ndim, "block", spec.op, minimum=1)
    return (0,) * spec.ndim


def _valid(padded: Any, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec, hint: Sequence[int]) -> Any:
    """The 'valid' convolution of an already padded dask array, block by block with right halos."""
    out_spatial = spec.out_spatial(padded.shape[2:])
    halos = tuple(max(ek - s, 0) for ek, s in zip(spec.effective_kernel, spec.stride))
    shortest = tuple(max(1, math.ceil(halo / s)) for halo, s in zip(halos, spec.stride))
    longest = _longest_block(padded, spec)
    blocks = tuple(_output_blocks(out, max(h, least)) if h else _aligned_blocks(chunks, out, s, least, cap)
                   for out, h, least, s, chunks, cap in zip(out_spatial, hint, shortest, spec.stride,
                                                            padded.chunks[2:], longest))
    starts = tuple(_input_chunks(dim, s, size) for dim, s, size in zip(blocks, spec.stride, padded.shape[2:]))
    aligned = padded.rechunk((padded.chunks[0], -1) + starts)
    overlapped = da.overlap.overlap(aligned, depth={2 + d: (0, h) for d, h in enumerate(halos)},
                                    boundary={2 + d: "none" for d in range(spec.ndim)}) if max(halos) else aligned
    return _blockwise(overlapped, w, b, spec, blocks)


def _longest_block(padded: Any, spec: ConvSpec) -> tuple[int, ...]:
    """Output positions per block along each dim that keep a block's input near BLOCK_BYTES (a
    large input chunk is split into several blocks, so each task's copies and temporaries stay small)."""
    per_position = max(padded.chunks[0]) * padded.shape[1] * padded.dtype.itemsize
    side = max(1, int((BLOCK_BYTES / per_position) ** (1 / spec.ndim)))
    return tuple(max(1, side // s) for s in spec.stride)


def _aligned_blocks(chunks: tuple[int, ...], out: int, stride: int, shortest: int, longest: int) -> tuple[int, ...]:
    """Output blocks that start where the padded input's chunks do (rounded up to the stride), so
    that aligning the input moves little: only chunks that would give a block shorter than
    ``shortest`` (the pad's thin edge chunks, chunks under the halo) are merged into the block before,
    and a block longer than ``longest`` is cut into equal parts."""
    starts, previous = [], 0
    for edge in np.cumsum(chunks)[:-1]:
        start = min(out, -(-int(edge) // stride))
        if start - previous >= shortest and start < out:
            starts.append(start)
            previous = start
    sizes = np.diff([0] + starts + [out]).tolist()
    return tuple(part for size in sizes for part in _equal_parts(size, longest, shortest))


def _equal_parts(size: int, longest: int, shortest: int) -> list[int]:
    """``size`` cut into equal parts of at most ``longest``, none shorter than ``shortest`` (the
    halo its neighbour borrows wins over the memory target)."""
    count = max(1, min(-(-size // longest), size // shortest))
    return [size // count + (i < size % count) for i in range(count)]


def _output_blocks(out: int, size: int) -> tuple[int, ...]:
    """``out`` positions in blocks of ``size``, the last one the rest (its input chunk holds at least
    one whole window, so it is never shorter than the halo its neighbour borrows)."""
    full, rest = divmod(out, size)
    return (size,) * full + ((rest,) if rest else ())


def _input_chunks(blocks: tuple[int, ...], stride: int, padded: int) -> tuple[int, ...]:
    """Input chunks that start where each output block's windows start; the last takes the rest."""
    chunks = [b * stride for b in blocks[:-1]]
    return tuple(chunks + [padded - sum(chunks)])


def _blockwise(overlapped: Any, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec,
               blocks: tuple[tuple[int, ...], ...]) -> Any:
    """One 'valid' npconv.conv per block; weight and bias as one-chunk arrays (one graph key each)."""
    dtype = _result_dtype(overlapped.dtype, w, b)
    spatial = tuple(f"s{d}" for d in range(spec.ndim))
    weight = da.from_array(w, chunks=w.shape, name=f"npconv-weight-{tokenize(w)}")
    operands: list[Any] = [overlapped, ("n", "c") + spatial, weight, ("wo", "wi") + tuple(f"k{d}" for d in spatial)]
    if b is not None:
        operands += [da.from_array(b, chunks=b.shape, name=f"npconv-bias-{tokenize(b)}"), ("bo",)]
    # the caller's npconv.config block travels with the graph: pool threads and worker processes
    # do not share the caller's context (a thread starts with the process defaults)
    settings = dict(stride=spec.stride, dilation=spec.dilation, groups=spec.groups,
                    config=dataclasses.asdict(current_settings()))
    return da.blockwise(_conv_block, ("n", "o") + spatial, *operands, new_axes={"o": w.shape[0]},
                        adjust_chunks=dict(zip(spatial, blocks)), concatenate=True, dtype=dtype,
                        meta=np.empty((0,) * (spec.ndim + 2), dtype), **settings)


def _result_dtype(input_dtype: np.dtype, w: np.ndarray, b: np.ndarray | None) -> np.dtype:
    """npconv's result dtype for these operands (ints and bools are read as float64)."""
    return compute_dtypes(np.empty(0, input_dtype if input_dtype.kind in "fc" else np.float64), w, b)[1]


def _conv_block(block: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                config: dict[str, Any], **settings: Any) -> np.ndarray:
    """One block's 'valid' npconv.conv, under the settings in effect where the graph was built."""
    with npconv_config(**config):
        return core.conv(block, weight, bias, **settings)


def _conv_face(n: int) -> Any:
    name = f"conv{n}d"

    def face(input: Any, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None, stride: IntOrTuple = 1,
             padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, padding_mode: str = "zeros",
             block: IntOrTuple | None = None) -> Any:
        return _run(n, input, _weight_of_rank(name, n, weight), bias, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, padding_mode=padding_mode, transposed=False, output_padding=0,
                    block=block)
    return _named(face, name)


def _transposed_face(n: int) -> Any:
    name = f"conv_transpose{n}d"

    def face(input: Any, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None, stride: IntOrTuple = 1,
             padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1,
             *, block: IntOrTuple | None = None) -> Any:
        return _run(n, input, _weight_of_rank(name, n, weight), bias, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, padding_mode="zeros", transposed=True,
                    output_padding=output_padding, block=block)
    return _named(face, name)


def _named(face: Any, name: str) -> Any:
    face.__name__ = face.__qualname__ = name
    face.__doc__ = (f"``npconv.functional.{name}`` on a Dask array: the same signature and defaults, and the "
                    f"keyword ``block`` (an extension: see :func:`conv`).\n\nReturns a lazy ``dask.array.Array``; "
                    f"``.compute()`` equals the in-memory result.")
    return face


def _weight_of_rank(name: str, n: int, weight: npt.ArrayLike) -> np.ndarray:
    """The weight read as npconv.functional reads it, refused in its words if not (n + 2)-D."""
    w = as_array(weight, "weight", name)
    if w.ndim != n + 2:
        raise ValueError(f"{name}: weight must be {n + 2}-D (channels, channels, *kernel_size), "
                         f"got weight of size {list(w.shape)}")
    return w


conv1d, conv2d, conv3d = (_conv_face(n) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_transposed_face(n) for n in (1, 2, 3))
