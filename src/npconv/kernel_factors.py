"""Kernel factorisation: a filter as a sum of rank-1 terms of 1-D factors (the teaching side
of spatial separability; :mod:`npconv.algorithms.separable_passes` runs convolutions that way).

A kernel K (k_1 x ... x k_n) is *separable* when it is one outer product of 1-D vectors,
K = a_1 ⊗ a_2 ⊗ ... ⊗ a_n, as the Sobel, Scharr, Gaussian and box filters are.  Every kernel
is a sum of such rank-1 terms, and for 2-D the SVD gives the fewest for any accuracy
(Eckart & Young 1936, "The approximation of one matrix by another of lower rank": no sum of
r outer products is closer)::

    K = sum_j s_j u_j v_j^T,     err(r) = ||K - sum_{j<r} s_j u_j v_j^T||_F / ||K||_F
                                        = sqrt(sum_{j>=r} s_j^2 / sum_j s_j^2)

An N-d kernel is split by the same SVD applied recursively: unfold K as (k_1, rest), take its
SVD, split each right singular vector (reshaped to ``rest``) again.  The terms are mutually
orthogonal, so keeping some leaves exactly the norm of the dropped ones as error, and a rank-1
kernel (a 3-D Gaussian) comes out as one term; beyond 2-D the count is not always the fewest
possible (the minimal "CP rank" of a tensor is NP-hard to find; Hillar & Lim 2013).

A 2-D filter of rank r costs r * (kh + kw) multiply-adds per output as r pairs of 1-D passes,
against kh * kw as one 2-D pass (31x31 Gaussian: 62 vs 961).  :func:`factor` reports one
kernel's factors; :func:`rounding_floor`, :func:`check_tol` and :func:`ranks_within` are the
tolerance rules the separable passes share.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from .arrays import as_real_array

__all__ = ["factor", "Factorization", "rounding_floor"]


def rounding_floor(shape: Sequence[int], dtype: npt.DTypeLike) -> float:
    """The smallest relative error worth asking for: ``max(shape) * eps(dtype)``.

    A kernel stored in ``dtype`` is only known to about this accuracy (the factor is
    ``numpy.linalg.matrix_rank``'s default, there applied to each singular value).  Any
    ``tol`` below it is raised to it, so ``tol=0`` means "exact up to rounding": a Gaussian
    built in float32 is still rank 1.  ``npconv.separable.conv2d`` uses the dtype it computes in.

    Parameters
    ----------
    shape : sequence of ints
        The kernel's shape.
    dtype : dtype
        A float dtype.

    Returns
    -------
    float

    Examples
    --------
    >>> rounding_floor((3, 3), np.float32)  # 3 * 2**-23
    3.5762786865234375e-07
    """
    return max(shape) * float(np.finfo(dtype).eps)


def check_tol(tol: object, op: str) -> float:
    """``tol`` as a float, or the ValueError (worded for ``op``) when it is not a finite number >= 0."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"{op}: tol must be a finite number >= 0 (the relative Frobenius error "
                         f"allowed), got tol={tol!r}")
    return float(tol)


def ranks_within(weights: np.ndarray, tol: float) -> np.ndarray:
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


def _outer(vectors: Sequence[np.ndarray]) -> np.ndarray:
    return functools.reduce(np.multiply.outer, vectors)


def _with_last_factors(kernel: np.ndarray, leading_sets: Sequence[Sequence[np.ndarray]]) -> tuple[tuple[np.ndarray, ...], ...]:
    """Terms (a_1, ..., a_n) with each last factor the least-squares fit for the others:

        a_n = <K, a_1 ⊗ ... ⊗ a_{n-1}> / prod_i |a_i|^2

    (exact here: the leading parts of different terms are orthogonal)."""
    terms = []
    for leading in leading_sets:
        last = np.tensordot(_outer(leading), kernel, axes=kernel.ndim - 1)
        terms.append(tuple(leading) + (last / math.prod(float(v @ v) for v in leading),))
    return tuple(terms)


def _reconstruct(terms: tuple[tuple[np.ndarray, ...], ...], shape: tuple[int, ...]) -> np.ndarray:
    total = np.zeros(shape)
    for term in terms:
        total += _outer(term)
    return total


def _relative_error(kernel: np.ndarray, terms: tuple[tuple[np.ndarray, ...], ...]) -> float:
    norm = np.linalg.norm(kernel)
    return float(np.linalg.norm(kernel - _reconstruct(terms, kernel.shape)) / norm) if norm else 0.0


def _readable_terms(kernel: np.ndarray, unit_vectors: Sequence[Sequence[np.ndarray]]) -> tuple[tuple[np.ndarray, ...], ...]:
    """The kept terms with readable factors: integer factors where they are exact (Sobel's
    [1, 2, 1] x [-1, 0, 1] reconstructs with error 0.0), unit-sum ones where not."""
    candidates = []
    for snap in (True, False):
        leading = [[_readable(v, snap) for v in vectors[:-1]] for vectors in unit_vectors]
        terms = _with_last_factors(kernel, leading)
        candidates.append((_relative_error(kernel, terms), not snap, terms))  # a tie keeps integers
    return min(candidates, key=lambda candidate: candidate[:2])[2]


def _as_kernel(kernel: npt.ArrayLike) -> np.ndarray:
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


def factor(kernel: npt.ArrayLike, tol: float = 1e-6, *, name: str | None = None) -> "Factorization":
    """Split a kernel into rank-1 terms of 1-D factors: kernel ~ sum_t a_t1 ⊗ ... ⊗ a_tn.

    ``rank`` is the fewest terms whose relative Frobenius error is <= ``tol`` (raised to
    :func:`rounding_floor`); the factors are scaled to read well (integers where exact, else
    the first ones summing to 1) and the last factor of each term is fitted to the kernel.

    Parameters
    ----------
    kernel : array_like
        A real kernel of at least 2 dims, none empty.
    tol : float, default 1e-6
        The relative Frobenius error allowed.
    name : str, optional
        The name its summary shows (default: its shape, "3x3 kernel").

    Returns
    -------
    Factorization

    Raises
    ------
    ValueError
        ``tol`` negative or not finite; a kernel that is empty, 0-D or not finite.
    TypeError
        A kernel that is not real numbers.

    Examples
    --------
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
    tol_used = max(check_tol(tol, "factor"), rounding_floor(k.shape, k.dtype))
    k64 = k.astype(np.float64)
    unit = _unit_terms(k64)
    weights = np.array([weight for weight, _ in unit])
    rank = int(ranks_within(weights, tol_used))
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
    kernel's ``dtype``).  Made by :func:`factor`; ``str()`` gives a one-line summary.

    Attributes
    ----------
    name : str
    shape : tuple of int
    terms : tuple of tuples of numpy.ndarray
        ``rank`` terms of one 1-D factor per dim each (read-only).
    rank : int
    error : float
    singular_values : numpy.ndarray
    tol : float
    dtype : numpy.dtype
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
                how = f"exact to rounding (error {short_number(self.error)})"
            else:
                how = f"within tol {short_number(self.tol)} (error {short_number(self.error)})"
            return f"{self.name}: rank 1, {how}: " + " x ".join(map(_format_vector, self.terms[0]))
        split, full = self.multiply_adds
        what = "pairs of 1-D filters" if len(self.shape) == 2 else "rank-1 terms"
        return (f"{self.name}: rank {self.rank} needed for tol {short_number(self.tol)}; rank 1 would leave "
                f"error {short_number(self.error_at(1))} — not separable ({self.rank} {what}: {split} "
                f"multiply-adds per output vs {full} for the full kernel)")


def short_number(value: float) -> str:
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
