"""Layer benchmark: what a user of npconv gets, beside PyTorch's CPU path and ONNX Runtime's,
in one process, on the same data, with the same thread count (the machine's cores).

- torch: forward, and forward + backward (grad input, weight and bias; torch's autograd on the
  same graph), against npconv's forward and its three gradients.
- ONNX Runtime (bench/peers.py): forward only, one Conv/ConvTranspose node per row (weights as
  initializers, default graph optimisations; reflect rows as Pad(reflect) + Conv; the Gaussian
  rows as the full-kernel Conv); no figure for the float64 row (no float64 Conv on its CPU).
  Its output must match torch's within 1e-4 of the largest value, or the run stops.
- The roofline floor (bench/roofline.py): max(direct FLOPs / GEMM rate, bytes in + out / copy
  bandwidth), both measured at the start of the run; reported as time / floor per row.

The libraries alternate, turn by turn (npconv, torch, ONNX Runtime, npconv, ...).  Each turn is
a short block of calls of which only the last is timed: the first call after a switch pays for
the other library's worker threads still spinning (OpenBLAS, OpenMP and ONNX Runtime's pool all
spin after a call), which measured 2-4x on this VM and would make either side look slow; every
row's very first npconv call (where Numba compiles or loads its kernels) is never timed either.
Reported: medians of the turns, the medians of the per-turn ratios peer/npconv (> 1 means
npconv is faster), and geometric means with min and max of each ratio over the rows.  Output: two
tables, a JSON file (every row, the machine's figures, the geometric means) and a PNG beside it
(bench/chart.py, which also redraws docs/bench_speedups.png from a saved JSON).

    python bench/layers.py [--repeats 9 | --quick] [--rows 3,26] [--json bench/results/layers.json]

Rows 28-29 blur 8 channels with a 31x31 Gaussian (sigma 5, built in 2-D): npconv's separable
path (``npconv.separable.conv2d``: two 1-D passes) and plain ``npconv.conv`` on the full kernel,
each beside torch's conv2d and ONNX Runtime's Conv on the full kernel.  Their GFLOP/s and floor
count the full kernel's work (so the separable row can go under its floor), and their backward
is npconv's full-kernel gradients in both rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as TF
from tqdm import tqdm

import npconv
import npconv.grad
import npconv.separable
import onnxruntime as ort
from chart import draw_chart
from npconv.cpu import cpu_model
from peers import onnx_runtime_conv
from roofline import measure_machine, roofline_floor

try:
    import numba
except ImportError:
    numba = None

# passive OpenMP waiting for Numba's workers (npconv.cpu), unless the environment sets a policy;
# OpenBLAS's coretype is loaded already: `make bench` sets it in the shell (npconv environment)
npconv.cpu.tune_environment()

PEER_TOLERANCE = 1e-4  # ONNX Runtime vs torch, relative to the largest output

# (row, name, N, C_in, spatial, C_out, k, stride, pad, dilation, groups, extra): the project's layer suite
ROWS = [
    (1, "ResNet-50 stem", 8, 3, (224, 224), 64, 7, 2, 3, 1, 1, {}),
    (2, "ResNet conv2_x 3x3, N=1", 1, 64, (56, 56), 64, 3, 1, 1, 1, 1, {}),
    (3, "ResNet conv2_x 3x3, N=8", 8, 64, (56, 56), 64, 3, 1, 1, 1, 1, {}),
    (4, "ResNet 1x1 expand", 8, 64, (56, 56), 256, 1, 1, 0, 1, 1, {}),
    (5, "ResNet 1x1 reduce", 8, 256, (56, 56), 64, 1, 1, 0, 1, 1, {}),
    (6, "ResNet v1.5 3x3 stride 2", 8, 128, (56, 56), 128, 3, 2, 1, 1, 1, {}),
    (7, "ResNet conv4_x 3x3", 8, 256, (14, 14), 256, 3, 1, 1, 1, 1, {}),
    (8, "ResNet conv5_x 3x3", 8, 512, (7, 7), 512, 3, 1, 1, 1, 1, {}),
    (9, "downsample 1x1 stride 2", 8, 512, (28, 28), 1024, 1, 2, 0, 1, 1, {}),
    (10, "MobileNetV2 depthwise", 8, 144, (56, 56), 144, 3, 1, 1, 1, 144, {}),
    (11, "MobileNetV2 dw stride 2", 8, 96, (112, 112), 96, 3, 2, 1, 1, 96, {}),
    (12, "MobileNetV2 dw late", 8, 960, (7, 7), 960, 3, 1, 1, 1, 960, {}),
    (13, "ResNeXt grouped", 8, 128, (56, 56), 128, 3, 1, 1, 1, 32, {}),
    (14, "ConvNeXt depthwise 7x7", 8, 96, (56, 56), 96, 7, 1, 3, 1, 96, {}),
    (15, "ConvNeXt stem (patchify)", 8, 3, (224, 224), 96, 4, 4, 0, 1, 1, {}),
    (16, "RepLKNet dw 31x31", 1, 128, (56, 56), 128, 31, 1, 15, 1, 128, {}),
    (17, "RepLKNet dw 27x27", 1, 512, (14, 14), 512, 27, 1, 13, 1, 512, {}),
    (18, "DeepLabv3 ASPP dilated", 1, 2048, (33, 33), 256, 3, 1, 12, 12, 1, {}),
    (19, "DeepSpeech2 5x20", 4, 1, (161, 700), 32, (5, 20), 2, 0, 1, 1, {}),
    (20, "wav2vec2 conv0 (1-D)", 4, 1, (16000,), 512, 10, 5, 0, 1, 1, {}),
    (21, "wav2vec2 conv1 (1-D)", 4, 512, (3199,), 512, 3, 2, 0, 1, 1, {}),
    (22, "WaveNet dilated (1-D)", 4, 64, (16000,), 64, 2, 1, 64, 64, 1, {}),
    (23, "C3D conv2 (3-D)", 1, 64, (16, 56, 56), 128, 3, 1, 1, 1, 1, {}),
    (24, "DCGAN ConvTranspose", 64, 256, (8, 8), 128, 4, 2, 1, 1, 1, {"transposed": True}),
    (25, "U-Net up-conv", 4, 1024, (28, 28), 512, 2, 2, 0, 1, 1, {"transposed": True}),
    (26, "reflect-padded 3x3", 8, 64, (128, 128), 64, 3, 1, 1, 1, 1, {"padding_mode": "reflect"}),
    (27, "float64 3x3", 4, 32, (64, 64), 32, 3, 1, 1, 1, 1, {"dtype": np.float64}),
    (28, "Gaussian 31x31 separable", 1, 8, (512, 512), 8, 31, 1, 15, 1, 8,
     {"gaussian_sigma": 5.0, "separable": True}),
    (29, "Gaussian 31x31 full kernel", 1, 8, (512, 512), 8, 31, 1, 15, 1, 8, {"gaussian_sigma": 5.0}),
]


def gaussian_weight(w_shape, sigma: float, dtype) -> np.ndarray:
    """exp(-(i^2 + j^2) / (2 sigma^2)), normalised, for every filter: built in 2-D, so that
    the separable path has to find the factors itself."""
    t = [np.arange(k) - (k - 1) / 2 for k in w_shape[2:]]
    g = np.exp(-(t[0][:, None] ** 2 + t[1][None, :] ** 2) / (2 * sigma ** 2))
    return np.broadcast_to(g / g.sum(), w_shape).astype(dtype)


class Case(NamedTuple):
    """One row ready to run: the four timed callables, its direct FLOPs and the data itself."""
    forward: Callable
    torch_forward: Callable
    forward_backward: Callable
    torch_forward_backward: Callable
    flops: int
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    params: dict
    bytes_moved: int        # input + weights + output, for the roofline floor
    first_call_ms: float    # npconv's first forward call (Numba compiles or loads its kernels here)


def make_case(row) -> Case:
    """The row's data and calls: npconv and torch, forward and forward + backward."""
    _, _, n, c_in, spatial, c_out, k, stride, pad, dilation, groups, extra = row
    dtype = extra.get("dtype", np.float32)
    transposed = extra.get("transposed", False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in) + spatial).astype(dtype)
    kernel = k if isinstance(k, tuple) else (k,) * len(spatial)
    w_shape = (c_in, c_out // groups) if transposed else (c_out, c_in // groups)
    w = (rng.standard_normal(w_shape + kernel) / math.sqrt(c_in * math.prod(kernel))).astype(dtype)
    if "gaussian_sigma" in extra:
        w = gaussian_weight(w_shape + kernel, extra["gaussian_sigma"], dtype)
    b = np.zeros(c_out, dtype)
    params = dict(stride=stride, padding=pad, dilation=dilation, groups=groups, transposed=transposed,
                  padding_mode=extra.get("padding_mode", "zeros"))
    forward = lambda: npconv.conv(x, w, b, **params)  # noqa: E731
    if extra.get("separable"):
        forward = lambda: npconv.separable.conv2d(x, w, b, stride, pad, dilation, groups,  # noqa: E731
                                                  padding_mode=params["padding_mode"])
    start = time.perf_counter()
    gy = rng.standard_normal(forward().shape).astype(dtype)
    first_call_ms = (time.perf_counter() - start) * 1e3

    def forward_backward():
        forward()
        return (npconv.grad.conv_input(x.shape, w, gy, **params), npconv.grad.conv_weight(x, w.shape, gy, **params),
                npconv.grad.conv_bias(gy))

    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    torch_forward = _torch_call(tx, tw, tb, params, len(spatial))

    def torch_forward_backward():
        tx.grad = tw.grad = tb.grad = None
        torch_forward().backward(torch.from_numpy(gy))

    flops = 2 * math.prod(gy.shape) * (c_in // groups) * math.prod(kernel)
    if transposed:
        flops = 2 * x.size * (c_out // groups) * math.prod(kernel)
    return Case(forward, torch_forward, forward_backward, torch_forward_backward, flops, x, w, b, params,
                x.nbytes + w.nbytes + gy.nbytes, first_call_ms)


def _torch_call(tx, tw, tb, params, n):
    stride, pad, dilation, groups = (params[k] for k in ("stride", "padding", "dilation", "groups"))
    if params["transposed"]:
        fn = getattr(TF, f"conv_transpose{n}d")
        return lambda: fn(tx, tw, tb, stride, pad, 0, groups, dilation)
    fn = getattr(TF, f"conv{n}d")
    if params["padding_mode"] == "zeros":
        return lambda: fn(tx, tw, tb, stride, pad, dilation, groups)
    pads = (pad,) * (2 * n)  # what torch.nn.Conv2d does for a non-zero padding_mode
    return lambda: fn(TF.pad(tx, pads, mode=params["padding_mode"]), tw, tb, stride, 0, dilation, groups)


def time_turns(calls: dict, repeats: int, block: int):
    """Medians of each library's time, and of the per-turn ratios library / npconv (the first).

    Every turn runs each library in turn for ``block`` calls and times only the last, so
    neither the first call after a switch (the other library's threads still spinning) nor a
    compile is ever timed."""
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            for _ in range(block):  # the last call of the block is the timed one
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
            times[name].append(elapsed)
    ours = times["npconv"]
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: statistics.median(p / o for o, p in zip(ours, t)) for name, t in times.items()}
    return medians, ratios


def chosen_algorithm(row) -> str:
    """The planner's choice for the row's forward pass (stride-1 transposed rows run as a conv)."""
    forward, *_ = make_case(row)
    seen = []
    real = npconv.select.choose_algorithm
    npconv.select.choose_algorithm = lambda *a, **k: seen.append(real(*a, **k)) or seen[-1]
    try:
        forward()
    finally:
        npconv.select.choose_algorithm = real
    if row[-1].get("separable"):  # the algorithms of the 1-D passes, or of the fallback
        return "1-D: " + "+".join(dict.fromkeys(seen))
    return seen[-1]


def peak_workspace_mib(npconv_call) -> float:
    """Peak memory NumPy allocates during one forward call beyond its result (tracemalloc),
    the scratch buffers npconv keeps between calls included (released first)."""
    npconv.workspace.release()
    tracemalloc.start()
    result = npconv_call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return max(peak - result.nbytes, 0) / 2**20


def max_error(npconv_call, torch_call) -> float:
    got = npconv_call()
    with torch.no_grad():
        want = torch_call().numpy()
    return float(np.abs(got - want).max() / np.abs(want).max())


def check_peer(peer_call, torch_call, row) -> float:
    """ONNX Runtime's relative error against torch; a wrong peer is worse than none."""
    error = max_error(peer_call, torch_call)
    if not error <= PEER_TOLERANCE:
        raise AssertionError(f"row {row[0]} ({row[1]}): ONNX Runtime differs from torch by {error:.1e} "
                             f"of the largest output (> {PEER_TOLERANCE:.0e}): the peer's model is wrong")
    return error


def measure_row(row, threads: int, rates: dict, repeats: int, block: int) -> dict:
    """Every figure of one row: errors, algorithm, workspace, the three-way forward timings,
    the two-way forward + backward timings, and the roofline floor."""
    case = make_case(row)
    peer = onnx_runtime_conv(case.x, case.w, case.b, **case.params, threads=threads)
    peer_error = check_peer(peer, case.torch_forward, row) if peer else None
    result = dict(row=row[0], name=row[1], dtype=case.x.dtype.name,
                  max_rel_error=max_error(case.forward, case.torch_forward),
                  onnxruntime_max_rel_error=peer_error, algorithm=chosen_algorithm(row),
                  workspace_mib=peak_workspace_mib(case.forward), first_call_ms=case.first_call_ms)
    forward_calls = dict(npconv=case.forward, torch=case.torch_forward)
    if peer:
        forward_calls["onnxruntime"] = peer
    with torch.no_grad():
        result["forward"] = timing_figures(*time_turns(forward_calls, repeats, block), case.flops)
    backward_calls = dict(npconv=case.forward_backward, torch=case.torch_forward_backward)
    result["forward_backward"] = timing_figures(*time_turns(backward_calls, repeats, block), 3 * case.flops)
    floor = roofline_floor(case.flops, case.bytes_moved, rates, case.x.dtype)
    forward = result["forward"]
    forward.update(floor_ms=floor * 1e3, npconv_floor=forward["npconv_ms"] / 1e3 / floor,
                   onnxruntime_floor=forward["onnxruntime_ms"] / 1e3 / floor if peer else None)
    return result


def timing_figures(medians: dict, ratios: dict, flops: int) -> dict:
    """ms per library, peer/npconv ratios (> 1: npconv faster), npconv's GFLOP/s."""
    figures = dict(npconv_ms=medians["npconv"] * 1e3, torch_ms=medians["torch"] * 1e3, speedup=ratios["torch"],
                   onnxruntime_ms=None, onnxruntime_speedup=None, npconv_gflops=flops / medians["npconv"] / 1e9)
    if "onnxruntime" in medians:
        figures.update(onnxruntime_ms=medians["onnxruntime"] * 1e3, onnxruntime_speedup=ratios["onnxruntime"])
    return figures


# (label, section, key): the columns summarised by geometric mean, min and max
SUMMARY = [("torch/npconv forward", "forward", "speedup"),
           ("torch/npconv fwd+bwd", "forward_backward", "speedup"),
           ("ORT/npconv forward", "forward", "onnxruntime_speedup"),
           ("npconv/floor forward", "forward", "npconv_floor"),
           ("ORT/floor forward", "forward", "onnxruntime_floor")]


def summarise(results) -> dict:
    """Geometric mean, min and max of each SUMMARY column over the rows that have it."""
    summary = {}
    for label, section, key in SUMMARY:
        values = [r[section][key] for r in results if r[section][key] is not None]
        if values:
            summary[label] = dict(geomean=math.exp(statistics.mean(map(math.log, values))),
                                  min=min(values), max=max(values), rows=len(values))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="turns per row (medians)")
    parser.add_argument("--quick", action="store_true", help="3 turns per row")
    parser.add_argument("--block", type=int, default=3, help="calls per turn; the last is timed")
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--json", default="bench/results/layers.json")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    wanted = {int(r) for r in args.rows.split(",")} if args.rows else None
    rows = [r for r in ROWS if wanted is None or r[0] in wanted]
    machine = dict(threads=threads, cpu=cpu_model(), **measure_machine())
    print_machine(machine)
    results = [measure_row(row, threads, machine, repeats, args.block)
               for row in tqdm(rows, desc="layers", unit="layer")]
    summary = summarise(results)
    for label in ("forward", "forward_backward"):
        print_table(results, threads, label)
    print_summary(summary)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(machine=machine, versions=versions(), repeats=repeats,
                                               block=args.block, rows=results, summary=summary), indent=2))
    chart = draw_chart(results, summary, Path(args.json).with_suffix(".png"), machine, versions())
    print(f"\nwrote {args.json} and {chart} (docs/bench_speedups.png: python bench/chart.py {args.json})")


def versions() -> dict:
    return dict(npconv=getattr(npconv, "__version__", None), numpy=np.__version__, torch=torch.__version__,
                onnxruntime=ort.__version__, numba=numba.__version__ if numba else None,
                python=platform.python_version())


def print_machine(machine: dict) -> None:
    print(f"{machine['cpu']}, {machine['threads']} threads; OPENBLAS_CORETYPE={machine['openblas_coretype']}")
    print(f"sgemm (np.matmul 2048^3 float32, best of 5) {machine['sgemm_gflops']:.1f} GFLOP/s, "
          f"dgemm {machine['dgemm_gflops']:.1f} GFLOP/s; "
          f"copy bandwidth (np.copyto 256 MiB, read + write, best of 5) {machine['copy_gbps']:.1f} GB/s")
    print(f"Numba {'%s: compiled kernels on' % numba.__version__ if numba else 'absent: no compiled kernels'}; "
          f"each row's first calls (compiles included) are not timed")


def print_table(results, threads, label) -> None:
    forward = label == "forward"
    print(f"\n{label.replace('_', ' + ')}, float32 unless noted, {threads} threads; ratios = peer time / npconv "
          f"time (> 1: npconv faster)" + ("; floor = roofline floor, x = time / floor" if forward else ""))
    print(f"{'#':>3} {'layer':<26} {'npconv ms':>10} {'torch ms':>9} " + (f"{'ORT ms':>8} " if forward else "")
          + f"{'torch/np':>8} " + (f"{'ORT/np':>7} " if forward else "") + f"{'GFLOP/s':>8} "
          + (f"{'floor ms':>8} {'np/floor':>8} {'ORT/floor':>9} " if forward else "")
          + f"{'max err':>8} {'algorithm':<16} {'workspace':>9}")
    for r in results:
        t = r[label]
        peer = (f"{_fmt(t['onnxruntime_ms'], '8.2f')} " if forward else "")
        print(f"{r['row']:>3} {r['name']:<26} {t['npconv_ms']:>10.2f} {t['torch_ms']:>9.2f} {peer}"
              f"{t['speedup']:>7.2f}x " + (f"{_fmt(t['onnxruntime_speedup'], '6.2f', 'x')} " if forward else "")
              + f"{t['npconv_gflops']:>8.1f} "
              + (f"{t['floor_ms']:>8.2f} {t['npconv_floor']:>7.1f}x {_fmt(t['onnxruntime_floor'], '8.1f', 'x')} "
                 if forward else "")
              + f"{r['max_rel_error']:>8.1e} {r['algorithm']:<16} {r['workspace_mib']:>6.1f} MiB")


def print_summary(summary: dict) -> None:
    print("\ngeometric means over the rows that have the figure (ORT: float32 rows only)")
    print(f"{'':<22} {'geomean':>8} {'min':>8} {'max':>8} {'rows':>5}")
    for label, s in summary.items():
        print(f"{label:<22} {s['geomean']:>7.2f}x {s['min']:>7.2f}x {s['max']:>7.2f}x {s['rows']:>5}")


def _fmt(value, spec: str, suffix: str = "") -> str:
    width = int(spec.split(".")[0]) + len(suffix)
    return f"{'-':>{width}}" if value is None else f"{value:{spec}}{suffix}"


if __name__ == "__main__":
    main()
