"""Shared helpers: PyTorch is the oracle and is imported unconditionally (never skipped)."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny cases: one thread keeps the suite fast and quiet

TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-3}


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(want).max(initial=0.0), np.finfo(np.float64).tiny)
    return float(np.abs(got - want).max(initial=0.0) / scale)


def assert_matches(got, want, dtype):
    """Same dtype, same shape, max |err| <= tol * max |ref| (tol by dtype)."""
    dtype = np.dtype(dtype)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    err = relative_error(got, want)
    assert err <= TOLERANCE[dtype], f"relative error {err:.3e} > {TOLERANCE[dtype]:.0e}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
