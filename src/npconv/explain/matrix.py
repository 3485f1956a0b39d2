"""Convolution as a matrix: ``conv(x).ravel() == C @ x.ravel()`` and ``o = C^T i``.

The matrix is built from the engine's per-dim tables of source indices
(:func:`npconv.windows.tap_sources`): row ``(c_out, *o)`` holds ``w[c_out, c, *k]`` in the
column of the input element that tap ``k`` reads.  Reflect, replicate and circular padding
read some elements through several taps; their weights add up in one entry.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse

from ..spec import ConvSpec, IntOrTuple, Padding, Pads, check_operands
from ..windows import tap_tables


def conv_matrix(weight: npt.ArrayLike, input_shape: Sequence[int], stride: IntOrTuple = 1,
                padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
                padding_mode: str = "zeros") -> scipy.sparse.csr_array:
    """The sparse matrix ``C`` of the convolution: ``conv(x).ravel() == C @ x.ravel()``.

    Row ``(c_out, *o)`` holds ``weight[c_out, c, *k]`` in the column of the input element that
    tap ``k`` reads.  ``C.T @ y.ravel()`` is the transposed convolution of ``y`` with the same
    weight, stride, padding, dilation and groups (the output size chosen to be the input's).

    A complex weight gives a complex matrix.  Its adjoint ``C.conj().T`` (``vdot(y, C @ x) ==
    vdot(C.conj().T @ y, x)``) is the transposed convolution with ``conj(weight)``, which is
    the input gradient :func:`npconv.grad.conv_input` computes (PyTorch autograd's convention).

    Parameters
    ----------
    weight : array_like
        ``(C_out, C_in / groups, *kernel)``, 1, 2 or 3 spatial dims.
    input_shape : sequence of int
        ``(C_in, *spatial)``, or ``(N, C_in, *spatial)``: then the matrix is block diagonal
        over the batch.
    stride, padding, dilation, groups
        As :func:`npconv.functional.conv2d`.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        An npconv extension: reflect, replicate and circular padding read some elements
        through several taps, and their weights add up in one entry.

    Returns
    -------
    scipy.sparse.csr_array
        ``(N * C_out * prod(out_spatial), N * C_in * prod(spatial))``, in the weight's dtype
        (complex64 or complex128 for a complex weight).

    Raises
    ------
    ValueError
        A setting the convolution refuses (the engine's message).

    Examples
    --------
    >>> w = np.ones((1, 1, 2), np.float32)
    >>> conv_matrix(w, (1, 4)).toarray()
    array([[1., 1., 0., 0.],
           [0., 1., 1., 0.],
           [0., 0., 1., 1.]], dtype=float32)
    >>> c = conv_matrix(np.array([[[1j, 2]]], np.complex64), (1, 3))
    >>> c.toarray()
    array([[0.+1.j, 2.+0.j, 0.+0.j],
           [0.+0.j, 0.+1.j, 2.+0.j]], dtype=complex64)
    >>> c.conj().T.toarray()  # the adjoint: conv_transpose with conj(weight)
    array([[0.-1.j, 0.+0.j],
           [2.+0.j, 0.-1.j],
           [0.+0.j, 2.+0.j]], dtype=complex64)
    """
    w = np.asarray(weight)
    n = w.ndim - 2
    shape = tuple(int(v) for v in input_shape)
    batch = shape[0] if len(shape) == n + 2 else 1
    single = shape[-(n + 1):]
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode, ndim=n,
                          op=f"conv_matrix ({n}-d)")
    check_operands(spec, (1,) + single, w.shape)
    matrix = _single_image_matrix(spec, w, single)
    if batch == 1:
        return matrix
    return scipy.sparse.kron(scipy.sparse.identity(batch, dtype=w.dtype), matrix, format="csr")


def _single_image_matrix(spec: ConvSpec, w: np.ndarray, single: tuple[int, ...]) -> scipy.sparse.csr_array:
    in_spatial = single[1:]
    out_spatial = spec.out_spatial(in_spatial)
    pads = spec.pads(in_spatial)
    n = spec.ndim
    sources = _flat_sources(spec, in_spatial, out_spatial, pads)  # (*out, *k), -1: zero padding
    c_out, per_group = w.shape[0], w.shape[1]
    out_per_group = c_out // spec.groups
    n_in, n_out = math.prod(in_spatial), math.prod(out_spatial)
    co = np.arange(c_out).reshape((-1, 1) + (1,) * (2 * n))
    cl = np.arange(per_group).reshape((1, -1) + (1,) * (2 * n))
    ci = (co // out_per_group) * per_group + cl  # (C_out, C/g, 1...)
    rows = co * n_out + np.arange(n_out).reshape(out_spatial + (1,) * n)
    cols = ci * n_in + sources
    data = np.broadcast_to(w.reshape((c_out, per_group) + (1,) * n + spec.kernel_size), cols.shape)
    rows = np.broadcast_to(rows, cols.shape)
    keep = np.broadcast_to(sources >= 0, cols.shape)
    matrix = scipy.sparse.coo_array((data[keep], (rows[keep], cols[keep])),
                                    shape=(c_out * n_out, single[0] * n_in))
    return matrix.tocsr()  # duplicates (several taps on one element) are summed here


def _flat_sources(spec: ConvSpec, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...],
                  pads: Pads) -> np.ndarray:
    """(*out, *kernel) flat index of the input element each output reads through each tap."""
    n = spec.ndim
    flat = np.zeros(out_spatial + spec.kernel_size, dtype=np.int64)
    valid = np.ones(out_spatial + spec.kernel_size, dtype=bool)
    stride_of_dim = [math.prod(in_spatial[d + 1:]) for d in range(n)]
    for d, table in enumerate(tap_tables(spec, in_spatial, out_spatial, pads)):  # (out_d, k_d) each
        shape = [1] * (2 * n)
        shape[d], shape[n + d] = table.shape
        table = table.reshape(shape)
        flat = flat + table * stride_of_dim[d]
        valid = valid & (table >= 0)
    return np.where(valid, flat, -1)
