"""Spatially separable convolution, the public face: kernels split into 1-D factors, and
convolutions run as 1-D passes where that is cheaper.

- :func:`factor`, :class:`Factorization`, :func:`rounding_floor`: one kernel's rank-1 terms
  (from :mod:`npconv.kernel_factors`, where the SVD and its error bounds are explained);
- :func:`plan` and :func:`conv2d`: ``npconv.functional.conv2d`` run as a vertical then a
  horizontal pass, the algorithm ``'separable_passes'`` of npconv's planner
  (:mod:`npconv.algorithms.separable_passes`, where the passes and their cost model are), with
  a tolerance ``tol`` that may trade accuracy for rank.  The planner itself takes that
  algorithm for ``npconv.conv`` and every face only where its gain is clear (2-D depthwise
  filters of rank 1, 9 to 15 taps a side); these entries take it wherever it is cheaper.

The depthwise separable *layer* (a depthwise then a 1x1 convolution) is another idea with a
similar name: :class:`npconv.nn.DepthwiseSeparableConv2d`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import core, numerics, select, threads
from .algorithms.separable_passes import SeparablePlan, assess
from .arrays import as_real_array, compute_dtypes
from .kernel_factors import Factorization, check_tol, factor, rounding_floor
from .spec import ConvSpec, IntOrTuple, Padding, check_input_rank, check_operands

__all__ = ["factor", "Factorization", "plan", "SeparablePlan", "conv2d", "rounding_floor"]


def _checked_spec(op: str, w: np.ndarray, x_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None,
                  stride: IntOrTuple, padding: Padding, dilation: IntOrTuple, groups: int,
                  padding_mode: str) -> ConvSpec:
    """The conv2d spec, with every refusal functional.conv2d makes, before any arithmetic."""
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out_channels, in_channels/groups, kH, kW), "
                         f"got weight of size {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode, ndim=2, op=op)
    check_operands(spec, x_shape, w.shape, bias_shape)
    spec.out_spatial(x_shape[2:])
    return spec


def plan(weight: npt.ArrayLike, input_shape: tuple[int, ...] | list[int], stride: IntOrTuple = 1,
         padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, padding_mode: str = "zeros",
         tol: float = 0.0, dtype: npt.DTypeLike | None = None) -> SeparablePlan:
    """Whether :func:`conv2d` would run this convolution as 1-D passes, and why.

    ``path`` is ``'separable'`` when every 2-D filter of ``weight`` has rank <= r within
    ``tol`` (see :func:`factor`) and r pairs of 1-D passes need fewer multiply-adds than the
    full kernel (formulas in :mod:`npconv.algorithms.separable_passes`), else ``'full'``.
    ``dtype`` is the input's (default: the weight's); with the weight's it gives the dtype the
    convolution computes in, whose rounding floor applies.

    The model counts multiply-adds only, so it over-promises for large kernels, which the
    full path runs by FFT at a cost that does not grow with the kernel (measurements in the
    algorithm's docstring; PyTorch's conv2d takes 3.5 s for a 31x31 Gaussian on 8 x 512 x 512).

    Parameters
    ----------
    weight : array_like
        (C_out, C_in / groups, kH, kW).
    input_shape : sequence of ints
        (N, C_in, H, W) or (C_in, H, W).
    stride, padding, dilation, groups, padding_mode
        As in :func:`npconv.functional.conv2d`.
    tol : float, default 0.0
        Relative error allowed per filter (0: exact up to rounding, :func:`rounding_floor`).
    dtype : dtype, optional
        The input's dtype (default: the weight's).

    Returns
    -------
    SeparablePlan
        ``path`` ('separable' or 'full'), ``rank``, ``tol`` applied, the multiply-add counts,
        ``predicted_speedup`` and the ``reason`` in words.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError
        As :func:`npconv.functional.conv2d` would refuse the convolution.
    ValueError
        A weight not 4-D; ``tol`` negative or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    >>> gaussian = np.outer(g, g)[None, None].repeat(8, axis=0)  # depthwise: one filter per channel
    >>> decision = plan(gaussian, (1, 8, 64, 64), padding=3, groups=8)
    >>> decision.path, decision.rank, decision.predicted_speedup  # 7 + 7 vs 7 * 7 per output
    ('separable', 1, 3.5)
    >>> plan(np.random.default_rng(0).standard_normal((8, 1, 7, 7)), (1, 8, 64, 64), groups=8).path
    'full'
    """
    op = "separable.plan"
    w = as_real_array(weight, "weight", op)
    x_shape = tuple(int(v) for v in input_shape)
    x_shape = x_shape if check_input_rank(op, 2, x_shape) else (1,) + x_shape
    spec = _checked_spec(op, w, x_shape, None, stride, padding, dilation, groups, padding_mode)
    compute = compute_dtypes(w, None if dtype is None else np.empty(0, dtype))[0]
    return assess(spec, x_shape, w, check_tol(tol, op), compute)


def conv2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros", tol: float = 0.0) -> np.ndarray:
    """``npconv.functional.conv2d``, run as 1-D passes where the filters are separable.

    Each 2-D filter w[o, i] (kh x kw) is split by its SVD into r terms
    ``w[o, i] ~ sum_j a_oij v_oij^T`` (rank r within ``tol``; ``tol=0`` means exact up to
    rounding, :func:`rounding_floor`).  When :func:`plan` finds the 1-D passes cheaper, the
    convolution runs as npconv's ``'separable_passes'`` algorithm (a vertical pass of (kh, 1)
    kernels, then a horizontal one of (1, kw) kernels: equal to the 2-D convolution for every
    padding mode); otherwise it runs as ``functional.conv2d``.

    Parameters
    ----------
    input, weight, bias, stride, padding, dilation, groups, padding_mode
        As in :func:`npconv.functional.conv2d`.
    tol : float, default 0.0
        Relative error allowed per filter when it is split (keyword-only).

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out), as :func:`npconv.functional.conv2d` gives (within ``tol``).

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`plan`.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import functional
    >>> x = np.arange(36.).reshape(1, 1, 6, 6)
    >>> box = np.ones((1, 1, 3, 3))
    >>> np.allclose(conv2d(x, box, padding=1, padding_mode="reflect"),
    ...             functional.conv2d(x, box, padding=1, padding_mode="reflect"))
    True
    """
    op = "separable.conv2d"
    x, w = as_real_array(input, "input", op), as_real_array(weight, "weight", op)
    b = None if bias is None else as_real_array(bias, "bias", op)
    batched = check_input_rank(op, 2, x.shape)
    xb = x if batched else x[None]
    spec = _checked_spec(op, w, xb.shape, None if b is None else b.shape, stride, padding, dilation,
                         groups, padding_mode)
    compute, result = compute_dtypes(x, w, b)
    decision = assess(spec, xb.shape, w, check_tol(tol, op), compute)
    if decision.path == "full":
        return core.apply(spec, x, w, b)  # the spec functional.conv2d would build
    y = _passes(spec, xb.astype(compute, copy=False), w.astype(compute, copy=False), decision.tol)
    if b is not None:
        y += b.astype(compute).reshape(-1, 1, 1)
    y = y.astype(result, copy=False)
    return y if batched else y[0]


def _passes(spec: ConvSpec, x: np.ndarray, w: np.ndarray, tol: float) -> np.ndarray:
    """The registered algorithm, with ``tol``, under the thread cap and NumPy's quiet errors
    (as npconv.core runs every algorithm)."""
    with threads.limited(), numerics.quiet():
        return select.ALGORITHMS["separable_passes"].forward(
            x, w, spec, spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:]), tol=tol)
