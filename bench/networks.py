"""Whole networks: the four zoo architectures end to end, npconv beside PyTorch and ONNX Runtime,
in one process, on the same weights and the same images, with the same thread count.

Rows (issue 20, point 6): ResNet-18, ResNet-50 and MobileNetV2 at batch 1 and 8, ConvNeXt-T at
batch 1 and 4, all 224 x 224 float32 in eval mode; then one training step of ResNet-18 at batch 8.

- npconv: ``npconv.models.<name>()`` loaded with the torch model's state dict, then
  ``npconv.nn.fuse`` (BatchNorm folded into the convolutions, ReLU applied in place on the
  convolution's output); the network's Sequential keeps activations channels-last throughout.
- PyTorch: the same architecture written in torch.nn (tests/torch_zoo.py), eval, ``no_grad``.
- ONNX Runtime: that torch model exported by ``torch.onnx.export`` (opset 17), CPU provider,
  default graph optimisations, ``intra_op_num_threads`` = the same threads.

Outputs must agree (npconv within 1e-4 of torch's largest logit) before anything is timed, or the
run stops.  Timing as bench/layers.py: the libraries alternate turn by turn, each turn a block
of calls of which the last is timed; reported are medians and the median per-turn ratio
peer/npconv (> 1: npconv faster), ms per batch and images per second, and GFLOP/s from the
architectures' multiply-accumulate counts (torchvision's documented GFLOPS per 224 x 224
image) beside the machine's sgemm rate (bench/roofline.py).

The training row: train mode, forward, cross-entropy loss, backward (every parameter's
gradient) and an SGD step with momentum, npconv against torch's autograd and torch.optim.SGD.

    python bench/networks.py [--repeats 5 | --quick] [--block 2] [--json bench/results/networks.json]

``--quick`` is a smoke run (the tests use it): ResNet-18 only at 64 x 64, 2 turns.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tqdm import tqdm

import npconv
import npconv.models
import npconv.nn as nn
from layers import time_turns
from npconv.cpu import cpu_model
from peers import session_options
from roofline import measure_machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import torch_zoo  # noqa: E402  (tests/torch_zoo.py: the architectures in torch.nn, the oracle)

npconv.cpu.tune_environment()

# multiply-accumulates per 224 x 224 image, in G (torchvision's model cards: GFLOPS = GMACs there)
GMACS = {"resnet18": 1.81, "resnet50": 4.09, "mobilenet_v2": 0.30, "convnext_tiny": 4.46}
ROWS = [("resnet18", 1), ("resnet18", 8), ("resnet50", 1), ("resnet50", 8), ("mobilenet_v2", 1),
        ("mobilenet_v2", 8), ("convnext_tiny", 1), ("convnext_tiny", 4)]
QUICK_ROWS = [("resnet18", 1)]
AGREEMENT = 1e-4  # relative to the largest logit


def build_pair(name: str, seed: int = 0):
    """(torch model, npconv model) in eval mode with the same random weights and BN statistics."""
    torch.manual_seed(seed)
    theirs = torch_zoo.build(name).eval()
    for module in theirs.modules():  # non-trivial statistics, so the fold has work to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = getattr(npconv.models, name)()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs, ours.eval()


def onnx_session(model, image: np.ndarray, threads: int):
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.from_numpy(image),), buffer, dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    return ort.InferenceSession(buffer.getvalue(), session_options(threads), providers=["CPUExecutionProvider"])


def inference_row(name: str, batch: int, size: int, repeats: int, block: int, threads: int, gemm: float | None):
    theirs, ours = build_pair(name)
    fused = nn.fuse(ours)
    image = np.random.default_rng(1).standard_normal((batch, 3, size, size)).astype(np.float32)
    session = onnx_session(theirs, image, threads)
    with torch.no_grad():
        want = theirs(torch.from_numpy(image)).numpy()
    calls = dict(npconv=lambda: fused(image), torch=lambda: _torch_eval(theirs, image),
                 onnxruntime=lambda: session.run(None, {"x": image})[0])
    errors = {label: float(np.abs(call() - want).max() / np.abs(want).max()) for label, call in calls.items()}
    errors["npconv_unfused"] = float(np.abs(ours(image) - want).max() / np.abs(want).max())
    if max(errors.values()) > AGREEMENT:
        raise SystemExit(f"{name} batch {batch}: outputs disagree with torch's: {errors}")
    medians, ratios = time_turns(calls, repeats, block)
    flops = 2 * GMACS[name] * 1e9 * batch * (size / 224) ** 2
    return dict(name=name, batch=batch, size=size, errors=errors,
                ms={k: v * 1e3 for k, v in medians.items()},
                images_per_s={k: batch / v for k, v in medians.items()},
                speedup={k: v for k, v in ratios.items() if k != "npconv"},
                npconv_gflops=flops / medians["npconv"] / 1e9,
                npconv_of_sgemm=None if gemm is None else flops / medians["npconv"] / 1e9 / gemm)


def _torch_eval(model, image):
    with torch.no_grad():
        return model(torch.from_numpy(image))


def training_row(batch: int, size: int, repeats: int, block: int) -> dict:
    """One SGD step of ResNet-18 (train mode: batch statistics), npconv against torch."""
    theirs, ours = build_pair("resnet18")
    theirs.train(), ours.train()
    rng = np.random.default_rng(2)
    image = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 1000, batch)
    loss_ours, loss_theirs = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt_ours = npconv.optim.SGD(ours.parameters(), lr=1e-3, momentum=0.9)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=1e-3, momentum=0.9)

    def ours_step():
        opt_ours.zero_grad()
        loss = loss_ours(ours(image), labels)
        ours.backward(loss_ours.backward())
        opt_ours.step()
        return loss

    def torch_step():
        opt_theirs.zero_grad()
        loss = loss_theirs(theirs(torch.from_numpy(image)), torch.from_numpy(labels))
        loss.backward()
        opt_theirs.step()
        return loss.detach()

    first = (float(ours_step()), float(torch_step()))  # the same weights: the same first loss
    if abs(first[0] - first[1]) > 1e-4 * abs(first[1]):
        raise SystemExit(f"training step: first losses differ: npconv {first[0]}, torch {first[1]}")
    medians, ratios = time_turns(dict(npconv=ours_step, torch=torch_step), repeats, block)
    return dict(name="resnet18 train step", batch=batch, size=size, first_loss=first,
                ms={k: v * 1e3 for k, v in medians.items()}, speedup=dict(torch=ratios["torch"]),
                images_per_s={k: batch / v for k, v in medians.items()})


def print_table(rows: list[dict], threads: int) -> None:
    print(f"\nwhole networks, float32, {threads} threads; peer/np = peer time / npconv time (> 1: npconv faster)")
    print(f"{'model':<22} {'batch':>5} {'npconv ms':>10} {'img/s':>7} {'torch ms':>9} {'torch/np':>8} "
          f"{'ORT ms':>8} {'ORT/np':>7} {'GFLOP/s':>8} {'max err':>8}")
    for r in rows:
        ort_ms = r["ms"].get("onnxruntime")
        print(f"{r['name']:<22} {r['batch']:>5} {r['ms']['npconv']:>10.1f} {r['images_per_s']['npconv']:>7.1f} "
              f"{r['ms']['torch']:>9.1f} {r['speedup']['torch']:>7.2f}x "
              + (f"{ort_ms:>8.1f} {r['speedup']['onnxruntime']:>6.2f}x " if ort_ms else f"{'-':>8} {'-':>7} ")
              + (f"{r['npconv_gflops']:>8.1f} {max(r['errors'].values()):>8.1e}" if "errors" in r else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="turns per row (medians)")
    parser.add_argument("--quick", action="store_true", help="smoke run: ResNet-18 at 64 x 64, 2 turns")
    parser.add_argument("--block", type=int, default=2, help="calls per turn; the last is timed")
    parser.add_argument("--json", default="bench/results/networks.json")
    args = parser.parse_args(argv)
    repeats, rows, size = (2, QUICK_ROWS, 64) if args.quick else (args.repeats, ROWS, 224)
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    rates = None if args.quick else measure_machine()
    print(f"{cpu_model()}, {threads} threads" + ("" if rates is None else f"; sgemm {rates['sgemm_gflops']:.1f} GFLOP/s"))
    results = [inference_row(name, batch, size, repeats, args.block, threads, rates and rates["sgemm_gflops"])
               for name, batch in tqdm(rows, desc="networks", unit="row")]
    results.append(training_row(2 if args.quick else 8, size, repeats, args.block))
    print_table(results, threads)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(machine=dict(cpu=cpu_model(), threads=threads, **(rates or {})),
                                    versions=dict(npconv=getattr(npconv, "__version__", None), numpy=np.__version__,
                                                  torch=torch.__version__, onnxruntime=ort.__version__),
                                    quick=args.quick, repeats=repeats, block=args.block, rows=results), indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
