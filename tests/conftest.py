"""Shared helpers: PyTorch is the oracle and is imported unconditionally (never skipped)."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny cases: one thread keeps the suite fast and quiet

TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-3,
             np.dtype(np.complex128): 1e-12, np.dtype(np.complex64): 1e-5}


def relative_error(got, want) -> float:
    """max |got - want| / max |want|, in float64 (complex128 for complex operands: never the real part only)."""
    wide = np.complex128 if np.iscomplexobj(got) or np.iscomplexobj(want) else np.float64
    got, want = np.asarray(got, wide), np.asarray(want, wide)
    scale = max(np.abs(want).max(initial=0.0), np.finfo(np.float64).tiny)
    return float(np.abs(got - want).max(initial=0.0) / scale)


def assert_matches(got, want, dtype, what=""):
    """Same dtype, same shape, max |err| <= tol * max |ref| (tol by dtype; complex moduli)."""
    dtype = np.dtype(dtype)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.dtype == dtype, f"{what} dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what} shape {got.shape}, expected {want.shape}"
    err = relative_error(got, want)
    assert err <= TOLERANCE[dtype], f"{what} relative error {err:.3e} > {TOLERANCE[dtype]:.0e}"


@pytest.fixture(params=["whole", "blocked"])
def fft_layout(request, monkeypatch):
    """Force the FFT's layout; blocks of 2 kernels give several tiles on small maps."""
    from npconv.algorithms import fft
    if request.param == "blocked":
        monkeypatch.setattr(fft, "BLOCK_PER_KERNEL", 2)
        monkeypatch.setattr(fft, "MIN_BLOCK", 4)
        monkeypatch.setattr(fft, "BLOCKED_FROM_TILES", 1)
    else:
        monkeypatch.setattr(fft, "BLOCKED_FROM_TILES", 10**9)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---- hypothesis profiles for the differential fuzz suite (tests/test_fuzz.py) ------------
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
# 'ci' (the default, `make test`): derandomized, so every run draws the same examples and a
# red CI run reproduces anywhere; 9000 examples take about 80 s on two quiet cores.
settings.register_profile("ci", max_examples=9000, derandomize=True, deadline=None,
                          suppress_health_check=_FUZZ_HEALTH, print_blob=True)
# 'long' (`make fuzz`, NPCONV_FUZZ=long): fresh random examples each run, failures kept in
# .hypothesis/ and replayed first next time.
settings.register_profile("long", max_examples=150000, deadline=None,
                          suppress_health_check=_FUZZ_HEALTH, print_blob=True)
settings.load_profile(os.environ.get("NPCONV_FUZZ", "ci"))
if os.environ.get("NPCONV_FUZZ_EXAMPLES"):  # a one-off budget, e.g. a shorter long run
    settings.register_profile("custom", settings(), max_examples=int(os.environ["NPCONV_FUZZ_EXAMPLES"]))
    settings.load_profile("custom")
