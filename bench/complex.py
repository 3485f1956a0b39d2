"""Complex convolution benchmark: npconv's complex64/complex128 convolutions beside PyTorch's
complex convolution, in one process, on the same data, with the same thread count (the
machine's cores).

Rows (issue 19, point 3):

- complex64 3x3 conv2d: input (8, 64, 56, 56), weight (64, 64, 3, 3), padding 1, bias;
- complex128 1-D conv1d: input (4, 16, 4096), weight (16, 16, 31), padding 15, bias.

Each row runs forward (``npconv.conv`` against ``torch.nn.functional.conv{1,2}d`` on complex
tensors), and forward + backward (npconv's forward and ``npconv.grad.conv{1,2}d_input`` /
``_weight`` and ``conv_bias`` with a complex grad_output, against torch's autograd on the same
graph with ``requires_grad`` on input, weight and bias).  Both sides' outputs and gradients must
agree before anything is timed (complex64 within 1e-4 of the largest value, complex128 within
1e-10), or the run stops; where torch raises NotImplementedError on a row, the JSON and the
table say so, the values are checked against four real float64 torch convolutions instead, and
npconv is timed alone.  No ONNX Runtime column: ONNX's Conv takes real floating-point tensors
only (no complex type in its T), so ONNX Runtime has no complex convolution to run.

Timing as bench/layers.py: the libraries alternate turn by turn; each turn is a short block of
calls of which only the last is timed (the first call after a switch pays for the other
library's spinning worker threads; the first npconv calls, where Numba compiles or loads its
kernels, are never timed).  Reported: medians of the turns and the median of the per-turn ratios
torch/npconv (> 1 means npconv is faster).  Context: the work of the real-convolution equivalent
(three real convolutions per complex one, Gauss's form; the backward counts two more
convolutions' worth) as GFLOP/s achieved, beside the machine's sgemm/dgemm rate
(bench/roofline.py); and the route npconv took: complex arithmetic in one algorithm (native) or
three real convolutions of the parts (by parts), with the algorithms the planner chose.

    python bench/complex.py [--repeats 5 | --quick] [--block 2] [--json bench/results/complex.json]

``--quick`` is a smoke run (the tests use it): the rows at a small size, 2 turns; its figures are
not the benchmark's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as TF
from tqdm import tqdm

import npconv
import npconv.grad
from layers import time_turns
from npconv.cpu import cpu_model
from npconv.spec import ConvSpec
from roofline import measure_machine

npconv.cpu.tune_environment()

TOLERANCE = {np.dtype(np.complex64): 1e-4, np.dtype(np.complex128): 1e-10}  # relative to the largest value

# (name, dtype, input shape, weight shape, padding)
ROWS = [
    ("complex64 3x3 conv2d", np.complex64, (8, 64, 56, 56), (64, 64, 3, 3), 1),
    ("complex128 1-D conv1d k=31", np.complex128, (4, 16, 4096), (16, 16, 31), 15),
]
# the same rows at a smoke-test size (--quick)
QUICK_ROWS = [
    ("complex64 3x3 conv2d", np.complex64, (1, 4, 8, 8), (4, 4, 3, 3), 1),
    ("complex128 1-D conv1d k=31", np.complex128, (1, 2, 64), (2, 2, 31), 15),
]


class Case(NamedTuple):
    """One row ready to run: npconv's and torch's calls, the data, the real-equivalent FLOPs."""
    forward: Callable
    forward_backward: Callable
    torch_forward: Callable
    torch_forward_backward: Callable
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    gy: np.ndarray
    padding: int
    flops: int  # one complex forward as three real convolutions


def complex_normal(rng, shape, dtype, scale: float = 1.0) -> np.ndarray:
    return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * scale).astype(dtype)


def make_case(row) -> Case:
    """The row's data and its four calls (each forward + backward returns its three gradients)."""
    _, dtype, x_shape, w_shape, padding = row
    rng = np.random.default_rng(0)
    n = len(x_shape) - 2
    x = complex_normal(rng, x_shape, dtype)
    w = complex_normal(rng, w_shape, dtype, 1 / math.sqrt(math.prod(w_shape[1:])))
    b = complex_normal(rng, w_shape[:1], dtype)
    gy = complex_normal(rng, npconv.conv(x, w, b, padding=padding).shape, dtype)
    grad_input, grad_weight = (getattr(npconv.grad, f"conv{n}d_{what}") for what in ("input", "weight"))
    forward = lambda: npconv.conv(x, w, b, padding=padding)  # noqa: E731

    def forward_backward():
        forward()
        return (grad_input(x.shape, w, gy, padding=padding), grad_weight(x, w.shape, gy, padding=padding),
                npconv.grad.conv_bias(gy))

    conv = getattr(TF, f"conv{n}d")
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    tgy = torch.from_numpy(gy)

    def torch_forward():
        with torch.no_grad():
            return conv(tx, tw, tb, padding=padding)

    def torch_forward_backward():
        tx.grad = tw.grad = tb.grad = None
        conv(tx, tw, tb, padding=padding).backward(tgy)
        return tx.grad, tw.grad, tb.grad

    real_flops = 2 * math.prod(gy.shape) * w_shape[1] * math.prod(w_shape[2:])
    return Case(forward, forward_backward, torch_forward, torch_forward_backward, x, w, b, gy, padding,
                3 * real_flops)


def four_real_oracle(case: Case) -> np.ndarray:
    """The forward from four real float64 torch convolutions: re = xr*wr - xi*wi, im = xr*wi + xi*wr;
    then the bias."""
    conv = getattr(TF, f"conv{case.x.ndim - 2}d")
    xr, xi, wr, wi = (torch.from_numpy(np.ascontiguousarray(p, np.float64))
                      for p in (case.x.real, case.x.imag, case.w.real, case.w.imag))
    re = conv(xr, wr, padding=case.padding) - conv(xi, wi, padding=case.padding)
    im = conv(xr, wi, padding=case.padding) + conv(xi, wr, padding=case.padding)
    bias = case.b.astype(np.complex128).reshape((-1,) + (1,) * (case.x.ndim - 2))
    return (re + 1j * im).numpy() + bias


def relative_error(got, want) -> float:
    want = np.asarray(want)
    return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


def try_torch(call: Callable):
    """torch's result, or the words of its NotImplementedError (a complex kernel it lacks)."""
    try:
        return call(), None
    except NotImplementedError as error:
        return None, f"NotImplementedError: {str(error).splitlines()[0]}"


def check(row, what: str, got, want, tolerance: float) -> float:
    """The largest relative error; over the tolerance, the run stops (a wrong figure is worse than none)."""
    error = max(relative_error(g, np.asarray(t)) for g, t in zip(got, want))
    if not error <= tolerance:
        raise AssertionError(f"{row[0]}: npconv's {what} differs from the reference by {error:.1e} of the "
                             f"largest value (> {tolerance:.0e})")
    return error


def check_case(row, case: Case) -> dict:
    """npconv against torch (forward, and the three gradients), or against four real convolutions
    where torch lacks the complex kernel; returns the errors and torch's refusals."""
    tolerance = TOLERANCE[case.x.dtype]
    want, forward_error = try_torch(case.torch_forward)
    if want is None:
        want = four_real_oracle(case)
    result = dict(tolerance=tolerance, torch_forward_error=forward_error,
                  max_rel_error=check(row, "forward", [case.forward()], [want], tolerance))
    grads, backward_error = try_torch(case.torch_forward_backward)
    result["torch_forward_backward_error"] = backward_error
    result["grad_max_rel_error"] = None if grads is None else check(
        row, "gradients", case.forward_backward(), [g.detach().numpy() for g in grads], tolerance)
    return result


def route(case: Case) -> dict:
    """The routes of the forward and of the weight gradient (native: complex arithmetic in one
    algorithm; by parts: Gauss's three real convolutions) with their algorithms, and every
    algorithm the planner named during a forward + backward (the input gradient's included)."""
    spec = ConvSpec.build(case.w.shape[2:], padding=case.padding)
    select = npconv.select
    forward = select.complex_algorithm(spec, case.x, case.w)
    weight_grad = select.complex_weight_grad_algorithm(spec, np.conjugate(case.x), case.gy, case.w.shape)
    parts = (select.choose_algorithm(spec, case.x.shape, case.w.shape, case.x.real.dtype),
             select.weight_grad_algorithm(spec, case.x.real, case.gy.real, case.w.shape).name)
    seen, choose, choose_weight_grad = [], select.choose_algorithm, select.weight_grad_algorithm
    select.choose_algorithm = lambda *a, **k: seen.append(choose(*a, **k)) or seen[-1]
    select.weight_grad_algorithm = lambda *a, **k: seen.append(choose_weight_grad(*a, **k).name) or \
        select.ALGORITHMS[seen[-1]]
    try:
        case.forward_backward()
    finally:
        select.choose_algorithm, select.weight_grad_algorithm = choose, choose_weight_grad
    return dict(route=_route_name(forward), algorithm=forward.name if forward else parts[0],
                weight_grad_route=_route_name(weight_grad),
                weight_grad_algorithm=weight_grad.name if weight_grad else parts[1],
                forward_backward_algorithms=list(dict.fromkeys(seen)))


def _route_name(native) -> str:
    return "native" if native else "by parts (Gauss, 3 real convolutions)"


def timing_figures(medians: dict, ratios: dict, flops: int, gemm_gflops: float | None) -> dict:
    """ms per library, torch/npconv (> 1: npconv faster), GFLOP/s of the real-equivalent work."""
    gflops = flops / medians["npconv"] / 1e9
    torch_ms = medians["torch"] * 1e3 if "torch" in medians else None
    return dict(npconv_ms=medians["npconv"] * 1e3, torch_ms=torch_ms, speedup=ratios.get("torch"),
                real_equivalent_gflop=flops / 1e9, npconv_gflops=gflops,
                torch_gflops=flops / medians["torch"] / 1e9 if torch_ms else None,
                npconv_of_gemm_rate=gflops / gemm_gflops if gemm_gflops else None)


def measure_row(row, repeats: int, block: int, rates: dict | None) -> dict:
    """Every figure of one row: route, errors, forward and forward + backward timings."""
    case = make_case(row)  # its first calls (compiles, kernel loads) are in here, untimed
    checked = check_case(row, case)
    gemm = None if rates is None else rates["dgemm_gflops" if case.x.dtype == np.complex128 else "sgemm_gflops"]
    result = dict(name=row[0], dtype=case.x.dtype.name, input=list(case.x.shape), weight=list(case.w.shape),
                  padding=case.padding, **route(case), **checked)
    for label, ours, theirs, flops in (("forward", case.forward, case.torch_forward, case.flops),
                                       ("forward_backward", case.forward_backward, case.torch_forward_backward,
                                        3 * case.flops)):
        calls = dict(npconv=ours)
        if checked[f"torch_{label}_error"] is None:
            calls["torch"] = theirs
        result[label] = timing_figures(*time_turns(calls, repeats, block), flops, gemm)
    return result


def versions() -> dict:
    return dict(npconv=getattr(npconv, "__version__", None), numpy=np.__version__, torch=torch.__version__,
                python=platform.python_version())


def print_table(results: list[dict], threads: int) -> None:
    print(f"\ncomplex convolutions, {threads} threads; torch/np = torch time / npconv time (> 1: npconv faster); "
          f"GFLOP/s of the real equivalent (3 real convolutions per complex one)")
    print(f"{'row':<28} {'pass':<8} {'npconv ms':>10} {'torch ms':>9} {'torch/np':>8} {'GFLOP/s':>8} "
          f"{'of GEMM':>7} {'max err':>8}  route")
    for r in results:
        for label, short in (("forward", "fwd"), ("forward_backward", "fwd+bwd")):
            t, refusal = r[label], r[f"torch_{label}_error"]
            error = r["max_rel_error" if label == "forward" else "grad_max_rel_error"]
            torch_ms = "n/a" if t["torch_ms"] is None else f"{t['torch_ms']:.1f}"
            speedup = "-" if t["speedup"] is None else f"{t['speedup']:.2f}x"
            share = "-" if t["npconv_of_gemm_rate"] is None else f"{t['npconv_of_gemm_rate']:.0%}"
            print(f"{r['name']:<28} {short:<8} {t['npconv_ms']:>10.1f} {torch_ms:>9} {speedup:>8} "
                  f"{t['npconv_gflops']:>8.1f} {share:>7} {'-' if error is None else f'{error:.1e}':>8}  "
                  + (f"{r['route']}: {r['algorithm']}" if label == "forward" else
                     f"weight grad {r['weight_grad_route']}: {r['weight_grad_algorithm']}; planner named "
                     + ", ".join(r["forward_backward_algorithms"])))
            if refusal:
                print(f"{'':<28} torch: {refusal}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="turns per row and pass (medians)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small rows, 2 turns")
    parser.add_argument("--block", type=int, default=2, help="calls per turn; the last is timed")
    parser.add_argument("--json", default="bench/results/complex.json")
    args = parser.parse_args(argv)
    repeats, rows = (2, QUICK_ROWS) if args.quick else (args.repeats, ROWS)
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    rates = None if args.quick else measure_machine()
    print(f"{cpu_model()}, {threads} threads" + ("" if rates is None else
          f"; sgemm {rates['sgemm_gflops']:.1f} GFLOP/s, dgemm {rates['dgemm_gflops']:.1f} GFLOP/s"))
    results = [measure_row(row, repeats, args.block, rates) for row in tqdm(rows, desc="complex", unit="row")]
    print_table(results, threads)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(machine=dict(cpu=cpu_model(), threads=threads, **(rates or {})),
                                    versions=versions(), quick=args.quick, repeats=repeats, block=args.block,
                                    onnxruntime="no complex Conv in ONNX (no peer column)", rows=results), indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
