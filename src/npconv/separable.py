"""Spatially separable convolution: split each filter into 1-D factors, run them as 1-D passes.

A kernel K (k_1 x ... x k_n) is *separable* when it is one outer product of 1-D vectors,
K = a_1 ⊗ a_2 ⊗ ... ⊗ a_n, as the Sobel, Scharr, Gaussian and box filters are.  Every kernel
is a sum of such rank-1 terms, and for 2-D the SVD gives the fewest for any accuracy
(Eckart-Young: no sum of r outer products is closer)::

    K = sum_j s_j u_j v_j^T,     err(r) = ||K - sum_{j<r} s_j u_j v_j^T||_F / ||K||_F
                                        = sqrt(sum_{j>=r} s_j^2 / sum_j s_j^2)

An N-d kernel is split by the same SVD applied recursively: unfold K as (k_1, rest), take its
SVD, split each right singular vector (reshaped to ``rest``) again.  The terms are mutually
orthogonal, so keeping some leaves exactly the norm of the dropped ones as error, and a rank-1
kernel (a 3-D Gaussian) comes out as one term; beyond 2-D the count is not always the fewest
possible (the minimal "CP rank" of a tensor is NP-hard to find; Hillar & Lim 2013).

A 2-D filter of rank r costs r * (kh + kw) multiply-adds per output as r pairs of 1-D passes,
against kh * kw as one 2-D pass (31x31 Gaussian: 62 vs 961).  :func:`factor` reports one
kernel's factors; :func:`plan` decides whether a convolution's filters are worth splitting;
:func:`conv2d` runs it either way and equals ``npconv.functional.conv2d``.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import core, functional, workspace
from .algorithms import depthwise_jit
from .arrays import as_real_array, compute_dtypes
from .spec import ConvSpec, check_input_rank, check_operands

__all__ = ["factor", "Factorization", "plan", "SeparablePlan", "conv2d", "rounding_floor"]


def rounding_floor(shape, dtype) -> float:
    """The smallest relative error worth asking for: ``max(shape) * eps(dtype)``.

    A kernel stored in ``dtype`` is only known to about this accuracy (the factor is
    ``numpy.linalg.matrix_rank``'s default, there applied to each singular value).  Any
    ``tol`` below it is raised to it, so ``tol=0`` means "exact up to rounding": a Gaussian
    built in float32 is still rank 1.  :func:`conv2d` uses the dtype it computes in.

    >>> rounding_floor((3, 3), np.float32)  # 3 * 2**-23
    3.5762786865234375e-07
    """
    return max(shape) * float(np.finfo(dtype).eps)


def _check_tol(tol, op: str) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"{op}: tol must be a finite number >= 0 (the relative Frobenius error "
                         f"allowed), got tol={tol!r}")
    return float(tol)


def _ranks(weights: np.ndarray, tol: float) -> np.ndarray:
    """Fewest leading terms whose dropped weights have norm <= tol * total norm.

    weights (..., q), each row descending -> ranks (...); an all-zero row has rank 0.
    """
    squares = np.square(weights)
    tails = np.cumsum(squares[..., ::-1], axis=-1)[..., ::-1]  # tails[r] = sum_{j>=r} w_j^2
    tails = np.sqrt(np.concatenate([tails, np.zeros(tails.shape[:-1] + (1,))], axis=-1))
    return np.argmax(tails <= tol * tails[..., :1], axis=-1)


# ---- factoring one kernel ----------------------------------------------------------------

def _unit_terms(kernel: np.ndarray) -> list[tuple[float, list[np.ndarray]]]:
    """(weight, unit vectors) rank-1 terms, mutually orthogonal, summing to ``kernel``,
    heaviest first: the SVD of the (k_1, rest) unfolding, each right vector split again."""
    rest = kernel.shape[1:]
    u, s, vt = np.linalg.svd(kernel.reshape(kernel.shape[0], -1), full_matrices=False)
    terms = []
    for j, weight in enumerate(s):
        if len(rest) == 1:
            terms.append((float(weight), [u[:, j], vt[j]]))
        else:
            terms += [(weight * w, [u[:, j]] + vectors) for w, vectors in _unit_terms(vt[j].reshape(rest))]
    return sorted(terms, key=lambda term: -term[0])


def _positive_sign(vector: np.ndarray) -> np.ndarray:
    """Sign chosen so the sum is positive, or (sum ~ 0: a derivative) the last entry."""
    scale = np.abs(vector).sum()
    total = vector.sum()
    if abs(total) > 1e-9 * scale:
        return vector if total > 0 else -vector
    last = vector[np.flatnonzero(np.abs(vector) > 1e-9 * np.abs(vector).max())[-1]]
    return vector if last > 0 else -vector


def _small_integers(vector: np.ndarray) -> np.ndarray | None:
    """The vector as a multiple of small integers (|entries| <= 1024), e.g. [1, 2, 1], or None."""
    magnitudes = np.abs(vector)
    base = vector / magnitudes[magnitudes > 1e-9 * magnitudes.max()].min()
    for multiple in range(1, 17):  # Scharr's [3, 10, 3] is 3 * [1, 3.33, 1]
        scaled = base * multiple
        rounded = np.round(scaled)
        top = np.abs(scaled).max()
        if top <= 1024 and np.abs(scaled - rounded).max() <= 1e-9 * top:
            return rounded + 0.0  # + 0.0 turns -0.0 into 0.0
    return None


def _readable(vector: np.ndarray, snap: bool) -> np.ndarray:
    """A factor rescaled for reading: small integers where it is a multiple of some (``snap``),
    else entries summing to 1 (a smoothing filter), else largest magnitude 1."""
    integers = _small_integers(vector) if snap else None
    if integers is not None:
        return _positive_sign(integers)
    vector = _positive_sign(vector)
    total = vector.sum()
    return vector / total if total > 1e-9 * np.abs(vector).sum() else vector / np.abs(vector).max()


def _outer(vectors) -> np.ndarray:
    return functools.reduce(np.multiply.outer, vectors)


def _with_last_factors(kernel: np.ndarray, leading_sets) -> tuple[tuple[np.ndarray, ...], ...]:
    """Terms (a_1, ..., a_n) with each last factor the least-squares fit for the others:

        a_n = <K, a_1 ⊗ ... ⊗ a_{n-1}> / prod_i |a_i|^2

    (exact here: the leading parts of different terms are orthogonal)."""
    terms = []
    for leading in leading_sets:
        last = np.tensordot(_outer(leading), kernel, axes=kernel.ndim - 1)
        terms.append(tuple(leading) + (last / math.prod(float(v @ v) for v in leading),))
    return tuple(terms)


def _reconstruct(terms, shape) -> np.ndarray:
    total = np.zeros(shape)
    for term in terms:
        total += _outer(term)
    return total


def _relative_error(kernel: np.ndarray, terms) -> float:
    norm = np.linalg.norm(kernel)
    return float(np.linalg.norm(kernel - _reconstruct(terms, kernel.shape)) / norm) if norm else 0.0


def _readable_terms(kernel: np.ndarray, unit_vectors) -> tuple[tuple[np.ndarray, ...], ...]:
    """The kept terms with readable factors: integer factors where they are exact (Sobel's
    [1, 2, 1] x [-1, 0, 1] reconstructs with error 0.0), unit-sum ones where not."""
    candidates = []
    for snap in (True, False):
        leading = [[_readable(v, snap) for v in vectors[:-1]] for vectors in unit_vectors]
        terms = _with_last_factors(kernel, leading)
        candidates.append((_relative_error(kernel, terms), not snap, terms))  # a tie keeps integers
    return min(candidates, key=lambda candidate: candidate[:2])[2]


def _as_kernel(kernel) -> np.ndarray:
    k = as_real_array(kernel, "kernel", "factor")
    if k.ndim < 2:
        raise ValueError(f"factor: kernel must have at least 2 dims to be split into 1-D factors, "
                         f"got kernel.ndim={k.ndim} (shape {k.shape})")
    if min(k.shape) < 1:
        raise ValueError(f"factor: every kernel dim must be >= 1, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("factor: kernel must hold finite numbers, got NaN or inf")
    return k


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def factor(kernel, tol=1e-6, *, name: str | None = None) -> "Factorization":
    """Split a kernel into rank-1 terms of 1-D factors: kernel ~ sum_t a_t1 ⊗ ... ⊗ a_tn.

    ``rank`` is the fewest terms whose relative Frobenius error is <= ``tol`` (raised to
    :func:`rounding_floor`); the factors are scaled to read well (integers where exact, else
    the first ones summing to 1) and the last factor of each term is fitted to the kernel.

    >>> import numpy as np
    >>> sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    >>> print(factor(sobel_x, name="Sobel x"))
    Sobel x: rank 1, exact (error 0.0): [1, 2, 1] x [-1, 0, 1]
    >>> random = factor(np.random.default_rng(0).standard_normal((5, 5)), name="random 5x5")
    >>> random.rank, random.is_separable
    (5, False)
    >>> print(random)  # doctest: +ELLIPSIS
    random 5x5: rank 5 needed for tol 1e-6; rank 1 would leave error 0... — not separable (5 pairs ...)
    """
    k = _as_kernel(kernel)
    tol_used = max(_check_tol(tol, "factor"), rounding_floor(k.shape, k.dtype))
    k64 = k.astype(np.float64)
    unit = _unit_terms(k64)
    weights = np.array([weight for weight, _ in unit])
    rank = int(_ranks(weights, tol_used))
    terms = _readable_terms(k64, [vectors for _, vectors in unit[:rank]])
    terms = tuple(tuple(_read_only(v) for v in term) for term in terms)
    return Factorization(name or "x".join(map(str, k.shape)) + " kernel", k.shape, terms, rank,
                         _relative_error(k64, terms), _read_only(weights), tol_used, k.dtype)


@dataclass(frozen=True, eq=False)
class Factorization:
    """A kernel as ``rank`` rank-1 terms: kernel ~ sum over terms of a_1 ⊗ a_2 ⊗ ... ⊗ a_n.

    ``error`` is ||kernel - reconstruct()||_F / ||kernel||_F for these terms.
    ``singular_values`` are the norms of all the orthogonal terms, heaviest first (for 2-D,
    the kernel's singular values), so ``error_at(r)`` is the error of keeping r of them.
    ``tol`` is the tolerance applied (the one asked for, raised to the rounding floor of the
    kernel's ``dtype``).
    """

    name: str
    shape: tuple[int, ...]
    terms: tuple[tuple[np.ndarray, ...], ...]
    rank: int
    error: float
    singular_values: np.ndarray
    tol: float
    dtype: np.dtype

    @property
    def is_separable(self) -> bool:
        """One outer product of 1-D vectors (or all zeros) within ``tol``."""
        return self.rank <= 1

    def error_at(self, rank: int) -> float:
        """Relative error left by the ``rank`` heaviest terms: sqrt(sum_{j>=rank} s_j^2 / sum s_j^2)."""
        s = self.singular_values
        total = float(np.sqrt(np.square(s).sum()))
        return float(np.sqrt(np.square(s[rank:]).sum()) / total) if total else 0.0

    def reconstruct(self) -> np.ndarray:
        """The sum of the terms' outer products, in float64."""
        return _reconstruct(self.terms, self.shape)

    @property
    def multiply_adds(self) -> tuple[int, int]:
        """(per output as 1-D passes: rank * sum(shape), as one pass: prod(shape))."""
        return self.rank * sum(self.shape), math.prod(self.shape)

    def __str__(self) -> str:
        if self.rank == 0:
            return f"{self.name}: all zeros (rank 0)"
        if self.is_separable:
            if self.error == 0.0:
                how = "exact (error 0.0)"
            elif self.error <= rounding_floor(self.shape, self.dtype):
                how = f"exact to rounding (error {_short(self.error)})"
            else:
                how = f"within tol {_short(self.tol)} (error {_short(self.error)})"
            return f"{self.name}: rank 1, {how}: " + " x ".join(map(_format_vector, self.terms[0]))
        split, full = self.multiply_adds
        what = "pairs of 1-D filters" if len(self.shape) == 2 else "rank-1 terms"
        return (f"{self.name}: rank {self.rank} needed for tol {_short(self.tol)}; rank 1 would leave "
                f"error {_short(self.error_at(1))} — not separable ({self.rank} {what}: {split} "
                f"multiply-adds per output vs {full} for the full kernel)")


def _short(value: float) -> str:
    """2 significant digits, exponents without padding: 1e-06 -> 1e-6."""
    return f"{value:.2g}".replace("e-0", "e-").replace("e+0", "e+")


def _format_vector(vector: np.ndarray) -> str:
    """[1, 2, 1] for integers, 4 significant digits otherwise; long ones shortened."""
    if np.all(vector == np.round(vector)) and np.abs(vector).max() < 1e6:
        entries = [str(int(v)) for v in vector]
    else:
        entries = [f"{v:.4g}" for v in vector]
    if len(entries) > 8:
        return "[" + ", ".join(entries[:3] + ["..."] + entries[-2:]) + f"] ({len(entries)} taps)"
    return "[" + ", ".join(entries) + "]"


# ---- the convolution path ----------------------------------------------------------------

@dataclass(frozen=True)
class SeparablePlan:
    """How :func:`conv2d` runs a convolution, and the numbers behind the decision.

    Multiply-adds (bias adds not counted), for N images, C_out outputs of H_out x W_out,
    C_in/groups input channels per output, a kh x kw kernel and filters of rank <= r::

        full       = N * C_out * H_out * W_out * (C_in/groups) * kh * kw
        separable  = N * C_out * (C_in/groups) * r * H_out * (W_in * kh + W_out * kw)

    (the vertical pass runs on every input column; at stride 1 with 'same' padding the
    separable count per output is (C_in/groups) * r * (kh + kw)).
    """

    path: str  # "separable" or "full"
    rank: int  # the largest rank any filter needs within tol (0: an all-zero weight)
    tol: float  # the tolerance applied: the one asked for, raised to the rounding floor
    kernel_size: tuple[int, int]
    full_macs: int
    separable_macs: int
    intermediate_bytes: int  # the vertical pass's output for one image and one group
    reason: str

    @property
    def predicted_speedup(self) -> float:
        """full_macs / separable_macs: the cost model's prediction, not a measurement."""
        return self.full_macs / self.separable_macs if self.separable_macs else math.inf

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _checked_spec(op, w, x_shape, bias_shape, stride, padding, dilation, groups, padding_mode) -> ConvSpec:
    """The conv2d spec, with every refusal functional.conv2d makes, before any arithmetic."""
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out_channels, in_channels/groups, kH, kW), "
                         f"got weight of size {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode, ndim=2, op=op)
    check_operands(spec, x_shape, w.shape, bias_shape)
    spec.out_spatial(x_shape[2:])
    return spec


def _costs(spec: ConvSpec, x_shape, w_shape, rank: int, itemsize: int) -> tuple[int, int, int]:
    """(full multiply-adds, separable multiply-adds, intermediate bytes per image and group)."""
    n, (c_out, per_group), (kh, kw) = x_shape[0], w_shape[:2], spec.kernel_size
    h_out, w_out = spec.out_spatial(x_shape[2:])
    w_in = x_shape[3]
    full = n * c_out * h_out * w_out * per_group * kh * kw
    separable = n * c_out * per_group * rank * h_out * (w_in * kh + w_out * kw)
    return full, separable, (c_out // spec.groups) * per_group * rank * h_out * w_in * itemsize


def _decision(spec, rank, tol, costs, per_output) -> tuple[str, str]:
    """('separable' | 'full', why): fewer multiply-adds, and one image's and one group's
    intermediate under the workspace limit (larger batches are run in blocks)."""
    full, separable, intermediate = costs
    kh, kw = spec.kernel_size
    pairs = "1 pair" if rank <= 1 else f"{rank} pairs"
    found = (f"filters have rank <= {rank} within tol {_short(tol)}: {pairs} of 1-D passes cost "
             f"{separable / per_output:.4g} multiply-adds per output vs {full / per_output:.4g} for the full "
             f"{kh}x{kw} kernel")
    if separable >= full:
        return "full", found + ", so the full kernel is cheaper"
    if intermediate > workspace.limit():
        return "full", (found + f", but the 1-D passes' intermediate for one image and group "
                        f"({intermediate / 2**20:.1f} MiB) exceeds the workspace limit "
                        f"({workspace.limit() / 2**20:.0f} MiB)")
    return "separable", found + f" ({full / separable:.1f}x fewer)"


def _decide(spec, x_shape, w, tol, dtype, singular_values=None) -> SeparablePlan:
    """The plan; ``singular_values`` (C_out, C_in/g, q) when the caller has the SVD already."""
    tol_used = max(_check_tol(tol, spec.op), rounding_floor(spec.kernel_size, dtype))
    if not np.isfinite(w).all():  # no SVD; the full path propagates the NaN as PyTorch does
        rank = min(spec.kernel_size)
        costs = _costs(spec, x_shape, w.shape, rank, np.dtype(dtype).itemsize)
        return SeparablePlan("full", rank, tol_used, spec.kernel_size, *costs, "the weight holds NaN or inf")
    if singular_values is None:
        singular_values = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    rank = int(_ranks(singular_values, tol_used).max())
    costs = _costs(spec, x_shape, w.shape, max(rank, 1), np.dtype(dtype).itemsize)
    per_output = x_shape[0] * w.shape[0] * math.prod(spec.out_spatial(x_shape[2:]))
    path, reason = _decision(spec, rank, tol_used, costs, per_output)
    return SeparablePlan(path, rank, tol_used, spec.kernel_size, *costs, reason)


def plan(weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
         tol=0.0, dtype=None) -> SeparablePlan:
    """Whether :func:`conv2d` would run this convolution as 1-D passes, and why.

    ``path`` is ``'separable'`` when every 2-D filter of ``weight`` has rank <= r within
    ``tol`` (see :func:`factor`) and r pairs of 1-D passes need fewer multiply-adds than the
    full kernel (formulas on :class:`SeparablePlan`), else ``'full'``.  ``dtype`` is the
    input's (default: the weight's); with the weight's it gives the dtype the convolution
    computes in, whose rounding floor applies.

    The model counts multiply-adds only, so it over-promises for large kernels, which the
    full path runs by FFT at a cost that does not grow with the kernel.  Measured against
    ``functional.conv2d`` on the full kernel (depthwise Gaussians on 1 x 8 x 512 x 512, float32,
    Numba installed, 2-core Zen 4 VM, two runs): 7x7, 1.5-1.6x faster (7.2-8.0 ms vs 11.5);
    15x15, 2.3-2.7x; 31x31, 1.4-3.2x (17 ms vs 24-53, the FFT's time varying), and in the
    benchmark's row 28 from 0.8x to 1.5x over four runs.  PyTorch's conv2d takes 3.5 s for the 31x31.

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
    return _decide(spec, x_shape, w, tol, compute)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", tol=0.0) -> np.ndarray:
    """``npconv.functional.conv2d``, run as 1-D passes where the filters are separable.

    Each 2-D filter w[o, i] (kh x kw) is split by its SVD into r terms
    ``w[o, i] ~ sum_j a_oij v_oij^T`` (rank r within ``tol``; ``tol=0`` means exact up to
    rounding, :func:`rounding_floor`).  When :func:`plan` finds the 1-D passes cheaper, the
    convolution runs as two calls of ``functional.conv2d``:

    1. vertical: (kh, 1) kernels a_oij, groups = C_in, stride (sh, 1), dilation (dh, 1),
       padding (pad_top, pad_bottom) in H only -> (N, C_in * C_out/groups * r, H_out, W);
    2. horizontal: (1, kw) kernels v_oij, groups = C_out, stride (1, sw), dilation (1, dw),
       padding (pad_left, pad_right) in W only, plus the bias -> (N, C_out, H_out, W_out).

    This equals the 2-D convolution for every padding mode: padding W (by zeros, reflection,
    edge copies or wrapping) copies or zeroes whole columns, and a vertical filter works on
    each column alone, so the two commute.  Otherwise it calls ``functional.conv2d``.

    >>> import numpy as np
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
    svd = np.linalg.svd(w.astype(np.float64), full_matrices=False) if np.isfinite(w).all() else None
    decision = _decide(spec, xb.shape, w, tol, compute, None if svd is None else svd[1])
    if decision.path == "full":
        return core.apply(spec, x, w, b)  # the spec functional.conv2d would build
    vertical, horizontal = (f.astype(compute, copy=False) for f in _filter_factors(svd, max(decision.rank, 1)))
    bias_c = None if b is None else b.astype(compute)
    y = _run_in_blocks(spec, xb.astype(compute, copy=False), vertical, horizontal, bias_c,
                       decision.intermediate_bytes)
    y = y.astype(result, copy=False)
    return y if batched else y[0]


def _filter_factors(svd, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Per filter, the r heaviest terms of its SVD ``(u, s, vt)``: vertical a = u_j * s_j
    (C_out, C_in/g, kh, r), horizontal v_j (C_out, C_in/g, r, kw).  Filters of lower rank keep
    their (tiny) extra terms."""
    u, s, vt = svd
    return u[..., :rank] * s[..., None, :rank], vt[..., :rank, :]


def _run_in_blocks(spec, x, vertical, horizontal, bias, per_image_group: int) -> np.ndarray:
    """The two passes on blocks of images and groups, so that a block's intermediate stays
    under the workspace limit (one block, and no copy, for most calls)."""
    n, groups = x.shape[0], spec.groups
    group_block = min(groups, max(1, workspace.limit() // per_image_group))
    image_block = max(1, workspace.limit() // (per_image_group * groups)) if group_block == groups else 1
    if image_block >= n and group_block == groups:
        return _two_passes(spec, x, vertical, horizontal, bias, groups)
    c_in_g, c_out_g = x.shape[1] // groups, vertical.shape[0] // groups
    out = np.empty((n, vertical.shape[0]) + spec.out_spatial(x.shape[2:]), x.dtype)
    for i in range(0, n, image_block):
        for g in range(0, groups, group_block):
            g_end = min(g + group_block, groups)
            inputs, outputs = slice(g * c_in_g, g_end * c_in_g), slice(g * c_out_g, g_end * c_out_g)
            out[i:i + image_block, outputs] = _two_passes(
                spec, x[i:i + image_block, inputs], vertical[outputs], horizontal[outputs],
                None if bias is None else bias[outputs], g_end - g)
    return out


def _two_passes(spec, x, vertical, horizontal, bias, groups: int) -> np.ndarray:
    """The vertical then the horizontal 1-D convolution (the order of :func:`conv2d`'s docstring)."""
    c_out, per_group, kh, rank = vertical.shape
    out_per_group, (pad_h, pad_w) = c_out // groups, spec.pads(x.shape[2:])
    # input channel (g, i) makes channels (o, j) of its group: (g, o, i, kh, j) -> (g, i, o, j, kh)
    kernels = vertical.reshape(groups, out_per_group, per_group, kh, rank).transpose(0, 2, 1, 4, 3)
    y = _vertical_pass(spec, x, kernels.reshape(-1, 1, kh, 1), pad_h)
    # (N, g, i, o, j, H_out, W) -> (N, g, o, i, j, H_out, W): each output's C_in/g * r inputs together
    n, _, h_out, width = y.shape
    y = y.reshape(n, groups, per_group, out_per_group, rank, h_out, width).transpose(0, 1, 3, 2, 4, 5, 6)
    y = y.reshape(n, c_out * per_group * rank, h_out, width)
    return _horizontal_pass(spec, y, horizontal.reshape(c_out, per_group * rank, 1, -1), bias, pad_w)


# The compiled depthwise kernel (algorithms/depthwise_jit.py) runs one job per image and block
# of 16 channels, over a tile of the whole padded plane: 8 channels of one large image are one
# job on one core, out of cache.  Both passes reshape their work into many small jobs.
STRIP_COLUMNS = 128


def _vertical_pass(spec, x, kernels, pad_h) -> np.ndarray:
    """(kh, 1) kernels along H, one input channel per group (kernels (C_in * m, 1, kh, 1)).

    The pass never mixes columns, so with the compiled kernel installed a wide input runs as
    strips of <= STRIP_COLUMNS columns stacked as extra images (two copies, 4 ms each at
    8 x 1024 x 1024; the pass itself 126 ms -> 33 ms for kh = 31 on the 2-core machine)."""
    n, channels, height, width = x.shape
    params = dict(stride=(spec.stride[0], 1), padding=(pad_h, (0, 0)), dilation=(spec.dilation[0], 1),
                  groups=channels, padding_mode=spec.padding_mode)
    count = -(-width // STRIP_COLUMNS)
    if count < 2 or not depthwise_jit.available():
        return functional.conv2d(x, kernels, **params)
    strip = -(-width // count)
    if count * strip > width:  # zero columns to fill the last strip, cut off below
        x = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, count * strip - width)))
    strips = x.reshape(n, channels, height, count, strip).transpose(0, 3, 1, 2, 4)
    y = functional.conv2d(np.ascontiguousarray(strips).reshape(n * count, channels, height, strip),
                          kernels, **params)  # (N * count, C_out, H_out, strip)
    y = y.reshape(n, count, y.shape[1], y.shape[2], strip).transpose(0, 2, 3, 1, 4)
    return y.reshape(n, y.shape[1], y.shape[2], count * strip)[..., :width]


def _horizontal_pass(spec, y, kernels, bias, pad_w) -> np.ndarray:
    """(1, kw) kernels along W, one group per output channel (kernels (C_out, C/C_out, 1, kw)).

    With one input channel per group and the compiled kernel installed, rows are folded into
    channels, (N, C, H, W) -> (N, C * H, 1, W): a reshape, after which each job is 16 rows
    (kw = 31 on 8 x 1024 x 1024: 112 ms -> 47 ms)."""
    n, channels, height, width = y.shape
    groups = kernels.shape[0]
    params = dict(stride=(1, spec.stride[1]), padding=((0, 0), pad_w),
                  dilation=(1, spec.dilation[1]), padding_mode=spec.padding_mode)
    if channels != groups or not depthwise_jit.available():
        return functional.conv2d(y, kernels, bias, groups=groups, **params)
    rows = functional.conv2d(np.ascontiguousarray(y).reshape(n, channels * height, 1, width),
                             np.repeat(kernels, height, axis=0),
                             None if bias is None else np.repeat(bias, height), groups=channels * height, **params)
    return rows.reshape(n, channels, height, -1)
