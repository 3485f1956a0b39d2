"""The complex benchmark (bench/complex.py) in its --quick smoke mode: the JSON has every field
the report reads, the FLOP count is the three-real-convolution equivalent, npconv's outputs and
gradients agree with torch's complex convolution and autograd (and with four real float64
convolutions), and a wrong npconv figure stops the run."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import require
from npconv.algorithm_registry import ALGORITHMS

require("tqdm", "the benchmark's progress bar")
require("onnxruntime", "bench/layers.py, whose turn timer the complex benchmark shares")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import complex as complex_bench  # noqa: E402  (bench/complex.py)

ROUTES = {"native", "by parts (Gauss, 3 real convolutions)"}
TIMING_FIELDS = {"npconv_ms", "torch_ms", "speedup", "real_equivalent_gflop", "npconv_gflops", "torch_gflops",
                 "npconv_of_gemm_rate"}


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "complex.json"
    threads = torch.get_num_threads()
    try:
        complex_bench.main(["--quick", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)  # main() gives torch every core; the suite runs on one
    return json.loads(path.read_text())


def test_the_quick_run_writes_both_rows_with_every_field(quick_result):
    assert quick_result["quick"] is True and quick_result["repeats"] == 2
    assert "no complex Conv" in quick_result["onnxruntime"]
    rows = quick_result["rows"]
    assert [(r["name"], r["dtype"]) for r in rows] == [("complex64 3x3 conv2d", "complex64"),
                                                       ("complex128 1-D conv1d k=31", "complex128")]
    for r in rows:
        assert r["route"] in ROUTES and r["weight_grad_route"] in ROUTES
        named = r["forward_backward_algorithms"]
        assert set(named) <= set(ALGORITHMS)
        assert {r["algorithm"], r["weight_grad_algorithm"]} <= set(named)
        assert r["max_rel_error"] <= r["tolerance"]
        for label in ("forward", "forward_backward"):
            figures = r[label]
            assert set(figures) == TIMING_FIELDS
            assert figures["npconv_ms"] > 0 and figures["npconv_gflops"] > 0
            if r[f"torch_{label}_error"] is None:  # torch ran: its time and the ratio are there
                assert figures["torch_ms"] > 0 and figures["speedup"] > 0
            else:
                assert figures["torch_ms"] is None and r[f"torch_{label}_error"].startswith("NotImplementedError")


@pytest.mark.parametrize("row", complex_bench.QUICK_ROWS, ids=lambda row: row[0])
def test_the_flops_are_three_real_convolutions_and_the_backward_counts_three_passes(quick_result, row):
    name, _, x_shape, w_shape, padding = row
    out = [size + 2 * padding - k + 1 for size, k in zip(x_shape[2:], w_shape[2:])]
    real_conv = 2 * x_shape[0] * w_shape[0] * math.prod(out) * w_shape[1] * math.prod(w_shape[2:])
    figures = next(r for r in quick_result["rows"] if r["name"] == name)
    assert figures["forward"]["real_equivalent_gflop"] == pytest.approx(3 * real_conv / 1e9)
    assert figures["forward_backward"]["real_equivalent_gflop"] == pytest.approx(9 * real_conv / 1e9)


@pytest.mark.parametrize("row", complex_bench.QUICK_ROWS, ids=lambda row: row[0])
def test_npconv_and_torch_agree_on_the_forward_and_the_gradients(row):
    case = complex_bench.make_case(row)
    tolerance = complex_bench.TOLERANCE[case.x.dtype]
    got = case.forward()
    assert got.dtype == case.x.dtype
    want = case.torch_forward().numpy()
    assert complex_bench.relative_error(got, want) <= tolerance
    # the second oracle, independent of torch's complex kernels: four real float64 convolutions
    assert complex_bench.relative_error(got, complex_bench.four_real_oracle(case)) <= tolerance
    gradients = case.forward_backward()
    for ours, theirs in zip(gradients, case.torch_forward_backward()):
        assert ours.dtype == case.x.dtype
        assert complex_bench.relative_error(ours, theirs.detach().numpy()) <= tolerance


def test_a_wrong_npconv_value_stops_the_run():
    row = complex_bench.QUICK_ROWS[0]
    want = np.ones(4, np.complex64)
    with pytest.raises(AssertionError, match="differs from the reference by 1.0e-03"):
        complex_bench.check(row, "forward", [want * (1 + 1e-3)], [want], 1e-4)
