"""The compiled engine's plumbing: a first compile is reported once with a CompileNotice (and a
process that loads Numba's disk cache says nothing), and without Numba the planner keeps to the
NumPy algorithms, which give PyTorch's values on the benchmark's layer kinds."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import npconv
from npconv import compiled, select
from npconv.spec import ConvSpec

from conftest import assert_matches


class FakeKernel:
    """A Numba dispatcher's face: ``signatures`` grows when a call compiles."""

    __name__ = "forward"

    def __init__(self):
        self.signatures = []

    def __call__(self, x):
        if x.dtype.name not in self.signatures:
            self.signatures.append(x.dtype.name)
        return x.sum()


def test_a_call_that_compiles_is_reported_once_per_signature(monkeypatch):
    monkeypatch.setattr(compiled, "NOTICE_SECONDS", 0.0)
    kernel = FakeKernel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compiled.run(kernel, np.ones(3, np.float32)) == 3
        compiled.run(kernel, np.ones(3, np.float32))
        compiled.run(kernel, np.ones(3, np.float64))
    notices = [w for w in caught if issubclass(w.category, compiled.CompileNotice)]
    assert len(notices) == 2
    assert "forward kernel for float32" in str(notices[0].message)
    assert "float64" in str(notices[1].message)


def test_a_fast_compile_or_cache_load_says_nothing():
    kernel = FakeKernel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled.run(kernel, np.ones(3))  # under NOTICE_SECONDS: silent


def test_the_first_process_is_told_and_the_second_loads_the_disk_cache_silently(tmp_path):
    script = ("import warnings, numpy as np, npconv\n"
              "warnings.simplefilter('always')\n"
              "x = np.ones((1, 16, 6, 6), np.float32); w = np.ones((16, 1, 3, 3), np.float32)\n"
              "npconv.set_algorithm('depthwise_jit')\n"
              "print(npconv.conv(x, w, padding=1, groups=16)[0, 0, 1, 1])\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert [run.stdout.split()[-1] for run in runs] == ["9.0", "9.0"]
    assert "CompileNotice" in runs[0].stderr and "Numba keeps it on disk" in runs[0].stderr
    assert "CompileNotice" not in runs[1].stderr


LAYERS = [((2, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8)),
          ((2, 8, 12, 12), (8, 2, 3, 3), dict(padding=1, groups=4)),
          ((2, 8, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1)),
          ((2, 8, 12, 12), (16, 8, 3, 3), dict(padding=1, padding_mode="reflect")),
          ((2, 8, 12), (6, 8, 5), dict(padding=2, dilation=2)),
          ((1, 4, 6, 7, 8), (5, 4, 3, 3, 3), dict(padding=1))]


@pytest.mark.parametrize("x_shape,w_shape,kwargs", LAYERS)
def test_without_numba_the_planner_keeps_to_numpy_and_matches_torch(monkeypatch, x_shape, w_shape, kwargs):
    monkeypatch.setattr(compiled, "numba", None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    spec = ConvSpec.build(w_shape[2:], kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
                          kwargs.get("groups", 1), kwargs.get("padding_mode", "zeros"))
    choice = select.choose_algorithm(spec, x_shape, w_shape)
    assert choice in select.NUMPY_ALGORITHMS
    assert all(name in select.NUMPY_ALGORITHMS for name in select.candidates(spec, x_shape, w_shape))
    mode = kwargs.pop("padding_mode", "zeros")
    tx = torch.from_numpy(x)
    if mode != "zeros":
        tx = torch.nn.functional.pad(tx, (kwargs.pop("padding"),) * (2 * (len(x_shape) - 2)), mode=mode)
        kwargs_np = dict(kwargs, padding=w_shape[-1] // 2, padding_mode=mode)
    else:
        kwargs_np = kwargs
    want = getattr(torch.nn.functional, f"conv{len(x_shape) - 2}d")(tx, torch.from_numpy(w), **kwargs)
    assert_matches(npconv.conv(x, w, **kwargs_np), want.numpy(), np.float32)


def test_openmp_waits_passively_when_asked_unless_the_environment_says_otherwise():
    """Importing npconv leaves the policy alone; npconv.cpu.tune_environment() asks for passive
    waiting before Numba starts its workers, and never overrides a policy already set."""
    script = ("import os, npconv; print(os.environ.get('OMP_WAIT_POLICY')); "
              "npconv.cpu.tune_environment(); print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          check=True).stdout.split() == ["None", "PASSIVE"]
    assert subprocess.run([sys.executable, "-c", script], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, check=True).stdout.split() == ["ACTIVE", "ACTIVE"]
