"""``torch.nn.functional``'s convolution family, on NumPy arrays.

Signatures, argument order and defaults are PyTorch's.  Extensions (keyword-only on the conv
functions, documented in the README):

- ``padding_mode=`` ('zeros', 'reflect', 'replicate', 'circular') on ``conv1d/2d/3d``; the
  padded values are gathered while the windows are built, the input is never copied padded;
- per-side padding pairs ``padding=((lo, hi), ...)`` (each entry an int or a pair);
- ``padding='same'`` at any stride (TensorFlow/ONNX SAME_UPPER: out = ceil(in / stride)),
  plus ``'same_lower'`` and ``'causal'``;
- ``unfold``/``fold`` for 1, 2 and 3 spatial dims (the count comes from the tuple arguments;
  a bare int means 2-D, as in PyTorch).
"""

from __future__ import annotations

import math

import numpy as np

from . import core
from .arrays import as_real_array, compute_dtypes
from .memory import check_allocation
from . import spec_errors as errors
from .spec import ConvSpec, check_input_rank, check_mode_pad, ntuple
from .windows import col2im, im2col

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "unfold", "fold", "pad"]


def _conv_nd(n, input, weight, bias, stride, padding, dilation, groups, padding_mode="zeros",
             transposed=False, output_padding=0):
    op = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    w = as_real_array(weight, "weight", op)
    if w.ndim != n + 2:
        raise ValueError(f"{op}: weight must be {n + 2}-D (channels, channels, *kernel_size), "
                         f"got weight of size {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode,
                          transposed, output_padding, ndim=n, op=op)
    return core.apply(spec, input, w, bias)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros"):
    """1-D convolution: (N, C_in, L) with weight (C_out, C_in/groups, k) -> (N, C_out, L_out)."""
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros"):
    """2-D convolution: (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW).

    H_out = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1, the same for W.

    >>> import numpy as np
    >>> conv2d(np.arange(36.).reshape(1, 1, 6, 6), np.ones((1, 1, 3, 3)), stride=2)[0, 0]
    array([[ 63.,  81.],
           [171., 189.]])
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros"):
    """3-D convolution: (N, C_in, D, H, W) with weight (C_out, C_in/groups, kD, kH, kW)."""
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution: weight (C_in, C_out/groups, k);
    L_out = (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1."""
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution (the adjoint of conv2d): weight (C_in, C_out/groups, kH, kW)."""
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 3-D convolution: weight (C_in, C_out/groups, kD, kH, kW)."""
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


# ---- unfold / fold ---------------------------------------------------------------------

def spatial_dims(*params) -> int:
    """Spatial dims of unfold/fold: the length of any tuple argument, else 2 (PyTorch's)."""
    lengths = {len(p) for p in params if isinstance(p, (tuple, list))}
    if len(lengths) > 1:
        raise ValueError(f"unfold/fold: tuple arguments disagree on the number of spatial dims: "
                         f"{sorted(lengths)}")
    return lengths.pop() if lengths else 2


def _block_spec(op, n, kernel_size, dilation, padding, stride) -> ConvSpec:
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    return ConvSpec.build(kernel_size, stride, padding, dilation, ndim=n, op=op)


def _blocks_words(spec: ConvSpec) -> dict:
    """unfold's and fold's wording (PyTorch's) of the spec's refusal of a kernel larger than
    the padded input: the array of sliding blocks would have a side below one."""
    def say(error) -> str:
        spatial, pads, blocks = (error.numbers[k] for k in ("in_spatial", "pads", "blocks"))
        fixes = "; ".join(f"dim {d}: padding >= {-(-(ek - size) // 2)}" for d, (size, ek, b) in
                          enumerate(zip(spatial, error.numbers["effective_kernel"], blocks)) if b < 1)
        return (f"{error.op}: Given input with spatial size {tuple(spatial)}, kernel_size={spec.kernel_size}, "
                f"dilation={spec.dilation}, padding={tuple(lo for lo, _ in pads)}, calculated shape of "
                f"the array of sliding blocks as {blocks}, but its components must be at least one "
                f"(rule: (size + 2*padding - (dilation*(kernel_size-1)+1)) // stride + 1); nearest valid: "
                + fixes)
    return {"kernel_fits": say}


def _block_counts(spec: ConvSpec, spatial) -> tuple[int, ...]:
    """Number of block positions per dim: the spec's output size, refused in unfold's words."""
    with errors.worded(_blocks_words(spec)):
        return spec.out_spatial(spatial)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks as columns: (N, C, *spatial) -> (N, C * prod(kernel_size), L).

    L is the number of block positions; rows are ordered channel first, then kernel taps
    (PyTorch's order).  Extension: 1-D and 3-D when the tuple arguments have 1 or 3 entries.

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
    x = as_real_array(input, "input", op)
    batched = check_input_rank(op, n, x.shape)
    xb = x if batched else x[None]
    blocks = _block_counts(spec, xb.shape[2:])
    check_allocation(f"{op} output", (xb.shape[0], xb.shape[1] * spec.kernel_volume, math.prod(blocks)), x.dtype)
    cols = im2col(xb, spec.kernel_size, spec.stride, spec.dilation, spec.pads(xb.shape[2:]), blocks)
    cols = cols.reshape(xb.shape[0], xb.shape[1] * spec.kernel_volume, math.prod(blocks))
    return cols if batched else cols[0]


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding blocks back into an array: (N, C * prod(k), L) -> (N, C, *output_size).

    The adjoint of :func:`unfold`; overlapping blocks add up.
    """
    n = spatial_dims(output_size, kernel_size, dilation, padding, stride)
    op = "fold"
    spec = _block_spec(op, n, kernel_size, dilation, padding, stride)
    size = ntuple(output_size, n, "output_size", op)
    cols = as_real_array(input, "input", op)
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


# ---- pad -------------------------------------------------------------------------------

PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode="constant", value=None):
    """PyTorch's ``F.pad``: ``pad`` lists (left, right) pairs starting from the LAST dim.

    Negative pads crop.  ``reflect``/``replicate``/``circular`` pad the last 1, 2 or 3 dims of
    a (batched or unbatched) input; reflect needs pad < size, circular pad <= size.

    >>> import numpy as np
    >>> pad(np.array([[1., 2., 3.]]), (2, 1), mode="reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    """
    x = np.asarray(input)
    pairs = _pad_pairs(pad, x.ndim)
    _check_pad_mode(mode, value, len(pairs), x.shape)
    first = x.ndim - len(pairs)
    _check_pad_sizes(mode, x.shape[first:], pairs)
    widths = [(0, 0)] * first + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    check_allocation("pad output", [size + lo + hi for size, (lo, hi) in zip(x.shape, widths)], x.dtype)
    keyword = {"constant_values": 0 if value is None else value} if mode == "constant" else {}
    if mode == "circular":  # PyTorch crops first, then wraps around what is left
        return np.pad(x[_crops(x.shape, pairs)], widths, mode="wrap")
    padded = np.pad(x, widths, mode=PAD_MODES[mode], **keyword)
    return padded[_crops(padded.shape, pairs)]


def _crops(shape, pairs) -> tuple[slice, ...]:
    """Slices that drop the negative pads from the last len(pairs) dims of shape."""
    first = len(shape) - len(pairs)
    return (slice(None),) * first + tuple(
        slice(-min(lo, 0), shape[first + i] + min(hi, 0)) for i, (lo, hi) in enumerate(pairs))


def _check_pad_sizes(mode, sizes, pairs) -> None:
    for dim, (size, (lo, hi)) in enumerate(zip(sizes, pairs)):
        kept = size + min(lo, 0) + min(hi, 0)
        if kept < (0 if mode == "constant" else 1) or size + lo + hi < 0:
            raise ValueError(f"pad: pads ({lo}, {hi}) crop more than the size {size} of padded dim "
                             f"{dim} (counting from the first padded dim)")
        if mode in ("reflect", "circular"):
            check_mode_pad(mode, kept if mode == "circular" else size, lo, hi, dim, "pad")


def _pad_pairs(pad, ndim) -> list[tuple[int, int]]:
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


def _check_pad_mode(mode, value, n_padded, shape) -> None:
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
