"""The whole-network benchmark (bench/networks.py) in its --quick smoke mode: every row's JSON
fields, outputs that agree with torch and ONNX Runtime before anything is timed, a training
step that starts from torch's loss, and a run that stops when npconv's output is wrong."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import require

require("tqdm", "the benchmark's progress bar")
require("onnxruntime", "the ONNX Runtime column")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import networks as networks_bench  # noqa: E402  (bench/networks.py)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "networks.json"
    threads = torch.get_num_threads()
    try:
        networks_bench.main(["--quick", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)  # main() gives torch every core; the suite runs on one
    return json.loads(path.read_text())


def test_the_quick_run_times_every_library_on_agreeing_outputs(quick_result):
    assert quick_result["quick"] is True and quick_result["repeats"] == 2
    inference, training = quick_result["rows"]
    assert (inference["name"], inference["batch"], inference["size"]) == ("resnet18", 1, 64)
    assert set(inference["ms"]) == {"npconv", "torch", "onnxruntime"}
    assert set(inference["speedup"]) == {"torch", "onnxruntime"}
    assert all(v > 0 for v in [*inference["ms"].values(), *inference["speedup"].values()])
    assert set(inference["errors"]) == {"npconv", "torch", "onnxruntime", "npconv_unfused"}
    assert max(inference["errors"].values()) <= networks_bench.AGREEMENT
    assert inference["errors"]["torch"] == 0.0  # the reference itself
    assert training["name"] == "resnet18 train step" and training["speedup"]["torch"] > 0
    ours, theirs = training["first_loss"]
    assert ours == pytest.approx(theirs, rel=1e-4) and np.isfinite(ours)


def test_a_wrong_npconv_output_stops_the_run(monkeypatch):
    real_fuse = networks_bench.nn.fuse

    def broken_fuse(model):
        fused = real_fuse(model)
        return lambda x: fused(x) * 1.001
    monkeypatch.setattr(networks_bench.nn, "fuse", broken_fuse)
    with pytest.raises(SystemExit, match="outputs disagree"):
        networks_bench.inference_row("resnet18", 1, 32, 1, 1, 1, None)
