"""The one N-d convolution primitive every other entry point calls."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import complex_forms, numerics, select, threads
from .arrays import as_array, as_channels_last, compute_dtypes, is_channels_last, real_dtype
from .memory import check_allocation
from .spec import ConvSpec, IntOrTuple, Padding, Pads, check_input_rank, check_operands


def conv(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None, *,
         stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
         padding_mode: str = "zeros", transposed: bool = False, output_padding: IntOrTuple = 0) -> np.ndarray:
    """N-d convolution (a cross-correlation, as PyTorch's) or transposed convolution.

    The one primitive every face calls: ``npconv.functional.conv2d(x, w)`` is
    ``conv(x, w)`` with a 4-D weight.  The number of spatial dims n is ``weight.ndim - 2``;
    the kernel is not flipped (see :func:`npconv.functional.conv2d`).

    Parameters
    ----------
    input : array_like
        ``(N, C_in, *in)``, or unbatched ``(C_in, *in)`` (the output keeps that form).
    weight : array_like
        conv: ``(C_out, C_in / groups, *k)``; transposed: ``(C_in, C_out / groups, *k)``.
    bias : array_like, optional
        (C_out,).
    stride, dilation : int or tuple of n ints, default 1
        Step of the window, spacing of the kernel taps (keyword-only, as every setting).
    padding : int, tuple or str, default 0
        An int, an n-tuple, n ``(lo, hi)`` pairs, ``'valid'``, ``'same'`` (any stride:
        SAME_UPPER, out = ceil(in / stride)), ``'same_lower'`` or ``'causal'``.
    groups : int, default 1
        Channel groups convolved separately.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding holds (zeros only when transposed).
    transposed : bool, default False
        Compute the transposed convolution (the adjoint of the conv).
    output_padding : int or tuple of n ints, default 0
        Extra size at the end of a transposed output (each below ``max(stride, dilation)``).

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)``, in the operands' dtype (NumPy's promotion; complex where one is), where, with ``ek = dilation * (k - 1) + 1``,
        conv: ``out = floor((in + lo + hi - ek) / stride) + 1``; transposed:
        ``out = (in - 1) * stride - lo - hi + ek + output_padding``.

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a setting or shape that breaks a rule (its message names the
        rule, the numbers and the nearest valid setting).
    ConvRuleTypeError
        A ``TypeError`` for a parameter of the wrong type.
    TypeError
        Operands that are not real or complex numbers.
    ValueError
        A weight of fewer than 3 dims; an output larger than the memory this process can use.

    Examples
    --------
    >>> import numpy as np
    >>> conv(np.arange(36.).reshape(1, 1, 6, 6), np.ones((1, 1, 3, 3)), stride=2, padding=1)[0, 0]
    array([[ 14.,  30.,  42.],
           [ 75., 126., 144.],
           [147., 234., 252.]])
    """
    w = as_array(weight, "weight", "conv")
    if w.ndim < 3:
        raise ValueError(f"conv: weight must have at least 3 dims (channels, channels, *kernel_size), "
                         f"got weight of shape {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode,
                          transposed, output_padding, ndim=w.ndim - 2)
    return apply(spec, input, w, bias)


def apply(spec: ConvSpec, input: npt.ArrayLike, weight: npt.ArrayLike,
          bias: npt.ArrayLike | None = None) -> np.ndarray:
    """Run a validated spec on operands: checks shapes first, then computes.

    Parameters
    ----------
    spec : ConvSpec
        The convolution's settings (:meth:`ConvSpec.build`).
    input, weight, bias : array_like
        As :func:`conv` takes them (bias optional).

    Returns
    -------
    numpy.ndarray
        The convolution's output, batched as ``input``.

    Raises
    ------
    ConvRuleError, TypeError, ValueError
        As :func:`conv`, for the operands' shapes and types.

    Examples
    --------
    >>> import numpy as np
    >>> apply(ConvSpec.build((2,)), np.array([[1., 2., 3.]]), np.ones((1, 1, 2)))
    array([[3., 5.]])
    """
    x = as_array(input, "input", spec.op)
    w = as_array(weight, "weight", spec.op)
    b = None if bias is None else as_array(bias, "bias", spec.op)
    batched = check_input_rank(spec.op, spec.ndim, x.shape)
    xb = x if batched else x[None]
    check_operands(spec, xb.shape, w.shape, None if b is None else b.shape)
    out_spatial = spec.out_spatial(xb.shape[2:])  # every shape refusal before any arithmetic
    compute, result = compute_dtypes(x, w, b)
    out_channels = w.shape[1] * spec.groups if spec.transposed else w.shape[0]
    check_allocation(f"{spec.op} output", (xb.shape[0], out_channels) + out_spatial, compute)
    y = compute_batched(spec, in_compute_dtype(xb, compute), in_compute_dtype(w, compute))
    y = y.astype(compute, copy=False)  # real operands with a complex bias: the sum is complex
    if b is not None:
        y += b.astype(compute).reshape((-1,) + (1,) * spec.ndim)
    y = y.astype(result, copy=False)
    return y if batched else y[0]


def in_compute_dtype(array: np.ndarray, compute: np.dtype) -> np.ndarray:
    """``array`` in the compute dtype; for a complex compute dtype a real operand keeps to real
    numbers of its precision (a complex convolution with one real operand needs two real ones)."""
    if compute.kind == "c" and array.dtype.kind != "c":
        return array.astype(real_dtype(compute), copy=False)
    return array.astype(compute, copy=False)


def compute_batched(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Run a spec on checked, batched operands of one dtype; no bias."""
    return forward(spec, x, w, spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:]))


def forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, pads: Pads, out_spatial: tuple[int, ...]) -> np.ndarray:
    """Run the algorithm the planner chooses (npconv.select).  A channels-last input (an
    ``(N, C, *s)`` view of ``(N, *s, C)`` memory, as PyTorch's channels_last) gives a channels-last
    output, as in PyTorch; algorithms that read that layout natively do so without a copy."""
    y = _forward(spec, x, w, pads, out_spatial)
    return as_channels_last(y) if is_channels_last(x) else y


def _forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, pads: Pads, out_spatial: tuple[int, ...]) -> np.ndarray:
    if x.size == 0 or w.size == 0:  # an empty batch, or no channels to sum over
        c_out = w.shape[1] * spec.groups if spec.transposed else w.shape[0]
        return np.zeros((x.shape[0], c_out) + tuple(out_spatial), x.dtype)
    if spec.transposed and flip_and_swap_applies(spec, pads):
        spec, w, pads = as_forward_convolution(spec, w, pads)
    if np.iscomplexobj(x) or np.iscomplexobj(w):
        return _complex_forward(spec, x, w, pads, out_spatial)
    algorithm = select.algorithm_for(spec, x, w)
    with threads.limited(), numerics.quiet():
        return algorithm.forward(x, w, spec, pads, out_spatial)


def _complex_forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, pads: Pads,
                     out_spatial: tuple[int, ...]) -> np.ndarray:
    """In complex arithmetic where the planner finds that faster, else by real parts."""
    algorithm = select.complex_algorithm(spec, x, w)
    if algorithm is None:
        return complex_forms.by_parts(lambda a, b: _forward(spec, a, b, pads, out_spatial), x, w)
    dtype = np.result_type(x, w)
    with threads.limited(), numerics.quiet():
        return algorithm.forward(x.astype(dtype, copy=False), w.astype(dtype, copy=False), spec, pads, out_spatial)


def flip_and_swap_applies(spec: ConvSpec, pads: Pads) -> bool:
    """A stride-1 transposed conv is a plain conv (so every forward algorithm serves it) when
    its pads leave the equivalent conv's pads non-negative and the padding is zeros."""
    return (max(spec.stride) == 1 and spec.padding_mode == "zeros" and
            all(lo <= d * (k - 1) and hi <= d * (k - 1) for (lo, hi), k, d in
                zip(pads, spec.kernel_size, spec.dilation)))


def as_forward_convolution(spec: ConvSpec, w: np.ndarray, pads: Pads) -> tuple[ConvSpec, np.ndarray, Pads]:
    """conv_transpose(x, w) = conv(x, w flipped with in/out channels swapped per group,
    pads d*(k-1) - lo before and d*(k-1) - hi + output_padding after)."""
    g, n = spec.groups, spec.ndim
    c_in, c_out_g = w.shape[:2]
    flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    swapped = flipped.reshape((g, c_in // g, c_out_g) + spec.kernel_size).swapaxes(1, 2)
    weight = np.ascontiguousarray(swapped.reshape((g * c_out_g, c_in // g) + spec.kernel_size))
    new_pads = tuple((d * (k - 1) - lo, d * (k - 1) - hi + extra) for (lo, hi), k, d, extra in
                     zip(pads, spec.kernel_size, spec.dilation, spec.output_padding))
    conv_spec = spec.with_pads(new_pads, transposed=False, output_padding=(0,) * n)
    return conv_spec, weight, new_pads
