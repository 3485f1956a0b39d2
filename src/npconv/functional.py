"""``torch.nn.functional``'s convolution family, on NumPy arrays.

Like PyTorch's, every convolution here is a cross-correlation: the kernel is not flipped
(:func:`conv2d` shows the relation to ``scipy.signal.correlate2d`` and ``convolve2d``).
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
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_real_array, compute_dtypes
from .memory import check_allocation
from . import spec_errors as errors
from .spec import ConvSpec, IntOrTuple, Padding, Pads, check_input_rank, check_mode_pad, ntuple
from .windows import col2im, im2col

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "unfold", "fold", "pad"]


def _conv_nd(n: int, input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None,
             stride: IntOrTuple, padding: Padding, dilation: IntOrTuple, groups: int,
             padding_mode: str = "zeros", transposed: bool = False,
             output_padding: IntOrTuple = 0) -> np.ndarray:
    op = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    w = as_real_array(weight, "weight", op)
    if w.ndim != n + 2:
        raise ValueError(f"{op}: weight must be {n + 2}-D (channels, channels, *kernel_size), "
                         f"got weight of size {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode,
                          transposed, output_padding, ndim=n, op=op)
    return core.apply(spec, input, w, bias)


def conv1d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """1-D convolution (a cross-correlation, as PyTorch's), as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, L), or unbatched (C_in, L).
    weight : array_like
        (C_out, C_in / groups, k).
    bias, stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`, with one entry per spatial dim (here one).

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out), ``L_out = floor((L + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1``.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d(np.array([[[1., 2., 4., 8.]]]), np.array([[[1., 0., -1.]]]), padding=1)
    array([[[-2., -3., -6.,  4.]]])
    """
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """2-D convolution of a batch of images, as ``torch.nn.functional.conv2d``.

    Like PyTorch's "convolution" (and TensorFlow's and JAX's), this is a cross-correlation:
    the kernel slides over the input as it is, not flipped.  With ``groups=1`` each output
    channel is the bias plus a sum over the input channels of
    ``scipy.signal.correlate2d(x[n, c], weight[o, c], mode='valid')`` on the padded input.
    ``scipy.signal.convolve2d`` flips the kernel first, so it gives these numbers only for the
    flipped kernel ``weight[o, c, ::-1, ::-1]`` (see the examples).

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W), or unbatched (C_in, H, W) (the output is then unbatched too).
        float16, float32 or float64; ints and bools are read as float64.
    weight : array_like
        (C_out, C_in / groups, kH, kW).
    bias : array_like, optional
        (C_out,): added to every position of its output channel.
    stride : int or tuple of 2 ints, default 1
        Step of the window along (H, W).
    padding : int, tuple or str, default 0
        Added around the input: an int for every side, (pH, pW), per-side pairs
        ((top, bottom), (left, right)), ``'valid'`` (none), ``'same'`` (at any stride:
        ``H_out = ceil(H / stride)``, an odd total's extra pad after), ``'same_lower'`` (the
        extra pad before) or ``'causal'`` (all of it before).
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps: the effective kernel is ``dilation * (k - 1) + 1``.
    groups : int, default 1
        Input and output channels are split into ``groups`` groups convolved separately;
        ``groups == C_in`` is a depthwise convolution.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding holds (keyword-only).

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) with
        ``H_out = floor((H + pad_top + pad_bottom - dilation[0] * (kH - 1) - 1) / stride[0]) + 1``
        (W_out alike), in the operands' float dtype (float16 is computed in float32).

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a setting or shape that breaks a rule: a kernel larger than the
        padded input, C_in not ``weight.shape[1] * groups``, C_out not divisible by groups,
        a bias not of length C_out, a stride, dilation or groups below 1, negative padding,
        reflect padding not below the size.  The message names the rule, the numbers and the
        nearest valid setting.
    ConvRuleTypeError
        A ``TypeError`` for a parameter of the wrong type (a float stride, a dict padding).
    TypeError
        ``input``, ``weight`` or ``bias`` not real numbers (complex, strings, None).
    ValueError
        ``weight`` not 4-D, or an output larger than the memory this process can use.

    See Also
    --------
    conv_transpose2d : its adjoint.
    npconv.conv : the N-d primitive behind every face.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import convolve2d, correlate2d
    >>> x = np.arange(36.).reshape(1, 1, 6, 6)
    >>> w = np.array([[[[1., 2., 0.], [0., 1., -1.], [3., 0., 1.]]]])
    >>> y = conv2d(x, w)
    >>> y.shape
    (1, 1, 4, 4)
    >>> np.allclose(y[0, 0], correlate2d(x[0, 0], w[0, 0], mode="valid"))
    True
    >>> np.allclose(y[0, 0], convolve2d(x[0, 0], w[0, 0, ::-1, ::-1], mode="valid"))
    True
    >>> np.allclose(y[0, 0], convolve2d(x[0, 0], w[0, 0], mode="valid"))  # the unflipped kernel
    False
    >>> conv2d(x, np.ones((1, 1, 3, 3)), stride=2)[0, 0]
    array([[ 63.,  81.],
           [171., 189.]])
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv3d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """3-D convolution (a cross-correlation, as PyTorch's), as ``torch.nn.functional.conv3d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, D, H, W), or unbatched (C_in, D, H, W).
    weight : array_like
        (C_out, C_in / groups, kD, kH, kW).
    bias, stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`, with one entry per spatial dim (here three).

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out), each size by :func:`conv2d`'s rule.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 2, 2, 2)), stride=2).shape
    (1, 3, 2, 2, 2)
    """
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv_transpose1d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 1-D convolution, as ``torch.nn.functional.conv_transpose1d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, L), or unbatched (C_in, L).
    weight : array_like
        (C_in, C_out / groups, k).
    bias, stride, padding, output_padding, groups, dilation
        As in :func:`conv_transpose2d`, with one entry per spatial dim (here one).

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out), ``L_out = (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv_transpose2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 2-D convolution (the adjoint of :func:`conv2d`), as PyTorch's.

    Each input value scatters a copy of the kernel, scaled by it, into the output, ``stride``
    apart; ``padding`` then crops that many rows and columns from each side.

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W), or unbatched (C_in, H, W).
    weight : array_like
        (C_in, C_out / groups, kH, kW): the layout of the conv2d it is the adjoint of.
    bias : array_like, optional
        (C_out,).
    stride : int or tuple of 2 ints, default 1
        Spacing of the scattered kernels.
    padding : int, tuple or 'valid', default 0
        Rows and columns cropped from each side: an int, (pH, pW) or (lo, hi) pairs.
    output_padding : int or tuple of 2 ints, default 0
        Rows and columns added at the end (each below ``max(stride, dilation)``), to pick one
        of the sizes that conv2d maps to the same input size.
    groups : int, default 1
        As in :func:`conv2d`.
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) with ``H_out = (H - 1) * stride - pad_top - pad_bottom +
        dilation * (kH - 1) + output_padding + 1`` (W_out alike).

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a broken rule: output_padding not below ``max(stride,
        dilation)``, an output size below one, C_in not ``weight.shape[0]``, a padding string
        other than 'valid', and :func:`conv2d`'s rules.
    ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose3d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 3-D convolution, as ``torch.nn.functional.conv_transpose3d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, D, H, W), or unbatched (C_in, D, H, W).
    weight : array_like
        (C_in, C_out / groups, kD, kH, kW).
    bias, stride, padding, output_padding, groups, dilation
        As in :func:`conv_transpose2d`, with one entry per spatial dim (here three).

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out), each size by :func:`conv_transpose2d`'s rule.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv_transpose2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose3d(np.ones((1, 2, 2, 2, 2)), np.ones((2, 3, 3, 3, 3)), stride=2).shape
    (1, 3, 5, 5, 5)
    """
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


# ---- unfold / fold ---------------------------------------------------------------------

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
    x = as_real_array(input, "input", op)
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
    value : float, optional
        The constant (default 0); only with ``mode='constant'``.

    Returns
    -------
    numpy.ndarray
        The padded array, of the input's dtype.

    Raises
    ------
    ConvRuleError
        reflect or circular padding too large for its dim.
    TypeError
        ``pad`` not a tuple of ints.
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
