"""Convolution algorithms: each computes the same thing from a validated spec.

- :mod:`.reference` — short loops over kernel taps, float64, the oracle for tests and teaching;
- :mod:`.gemm` — strided windows + one batched BLAS GEMM per group (and its adjoint for
  transposed convolution).
"""
