"""Deformable convolution benchmark: a DCNv2 layer as detection necks use it, beside the plain
convolution of the same shape (npconv's and torch's), in one process, same data, same threads.

The layer: N=2, 256 -> 256 channels, 3x3, padding 1, a 64 x 64 map, float32, with a mask (v2),
offset groups 1 and 4; offsets ~ 2 * standard normal pixels (fractional everywhere, some samples
leave the image), mask = sigmoid(standard normal).  Rows:

- ``npconv.ops.deform_conv2d`` (offset groups 1 and 4), forward; forward + backward is the
  forward then ``npconv.ops.deform_conv2d_backward`` (input, offset, mask, weight, bias);
- ``npconv.functional.conv2d`` of the same shape (the planner's algorithm, Winograd here), forward;
  forward + backward adds ``npconv.grad.conv_input``, ``conv_weight`` and ``conv_bias``;
- the same with ``im2col_gemm`` forced (``npconv.config``): the plain conv on the deformable
  path's scheme (columns, then one GEMM), so that its ratio is the cost of the sampling alone;
- torch's ``conv2d`` of the same shape, forward; forward + backward by autograd;
- ONNX Runtime's DeformConv (bench/peers.py) on the same offsets and mask, forward only (it has
  no gradients); its output must match npconv's within 1e-4 of the largest value.

Figures per row: ms (median of the turns), GFLOP/s counting the GEMM's work only, 2 * N * C_out *
C_in * 9 * oh * ow for the forward and 3x that for forward + backward (the bilinear sampling is
extra work that this count leaves out), time relative to npconv's plain conv2d (the overhead
of deformation; issue 16 aims at <= 2x) and to torch's conv2d, and the roofline floor of
bench/roofline.py (input, offset, mask, weights and output moved once).  The timing is
bench/layers.py's ``time_turns``: the rows alternate, turn by turn, and only the last call of
each turn's block is timed (first calls, with Numba's compiles, never are).  Ratios to npconv's
conv2d are medians of the per-turn ratios; ratios to torch are ratios of the medians.  A check
before the timing: zero offsets and a unit mask give npconv's conv2d (max difference reported).

    python bench/deform.py [--repeats 9 | --quick] [--json bench/results/deform.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch  # before npconv, as bench/layers.py (OpenMP runtimes load in that order)

import npconv
import npconv.grad
import npconv.ops
from layers import chosen_algorithm, make_case, max_error, print_machine, time_turns, versions
from npconv.cpu import cpu_model
from peers import onnx_runtime_deform_conv
from roofline import measure_machine, roofline_floor

# the neck layer in bench/layers.py's row format: (row, name, N, C_in, spatial, C_out, k, stride,
# pad, dilation, groups, extra); make_case builds its data and the plain conv's calls
LAYER = (0, "DCNv2 neck 3x3", 2, 256, (64, 64), 256, 3, 1, 1, 1, 1, {})
OFFSET_GROUPS = (1, 4)
OFFSET_SCALE = 2.0  # pixels: the offsets' standard deviation


def deform_data(x: np.ndarray, out_size: tuple[int, int], offset_groups: int, k: int = 3) -> tuple:
    """Offsets and mask for ``x``: fractional offsets of a few pixels and a mask in (0, 1)."""
    rng = np.random.default_rng(offset_groups)
    n, taps = x.shape[0], offset_groups * k * k
    offset = (OFFSET_SCALE * rng.standard_normal((n, 2 * taps) + out_size)).astype(x.dtype)
    mask = (1 / (1 + np.exp(-rng.standard_normal((n, taps) + out_size)))).astype(x.dtype)
    return offset, mask


def deform_calls(case, offset: np.ndarray, mask: np.ndarray, gy: np.ndarray) -> tuple[Callable, Callable]:
    """The deformable layer's forward and forward + backward on the case's data."""
    x, w, b = case.x, case.w, case.b
    geometry = dict(stride=case.params["stride"], padding=case.params["padding"], dilation=case.params["dilation"])

    def forward():
        return npconv.ops.deform_conv2d(x, offset, w, b, mask=mask, **geometry)

    def forward_backward():
        forward()
        return npconv.ops.deform_conv2d_backward(gy, x, offset, w, b, mask=mask, **geometry)

    return forward, forward_backward


def plain_calls(case, gy: np.ndarray, algorithm: str | None = None) -> tuple[Callable, Callable]:
    """npconv.functional.conv2d's forward and forward + backward (npconv.grad) on the case's data,
    with the planner's algorithms or, given ``algorithm``, that one forced (npconv.config)."""
    x, w, b = case.x, case.w, case.b
    stride, padding = case.params["stride"], case.params["padding"]

    def forward():
        with npconv.config(algorithm=algorithm):
            return npconv.functional.conv2d(x, w, b, stride, padding)

    def forward_backward():
        forward()
        with npconv.config(algorithm=algorithm):
            return (npconv.grad.conv_input(x.shape, w, gy, stride=stride, padding=padding),
                    npconv.grad.conv_weight(x, w.shape, gy, stride=stride, padding=padding),
                    npconv.grad.conv_bias(gy))

    return forward, forward_backward


def first_call_ms(call: Callable) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def measure(repeats: int, block: int, rates: dict) -> dict:
    """Every row's figures: the checks, then the forward turns, then the forward + backward turns."""
    case = make_case(LAYER)
    plain = npconv.functional.conv2d(case.x, case.w, case.b, case.params["stride"], case.params["padding"])
    gy = np.random.default_rng(7).standard_normal(plain.shape).astype(plain.dtype)
    forward, forward_backward = {}, {}
    forward["conv2d"], forward_backward["conv2d"] = plain_calls(case, gy)
    forward["conv2d_gemm"], forward_backward["conv2d_gemm"] = plain_calls(case, gy, "im2col_gemm")
    n, out_size = plain.shape[0], plain.shape[2:]
    exact = npconv.ops.deform_conv2d(case.x, np.zeros((n, 18) + out_size, plain.dtype), case.w, case.b,
                                     padding=1, mask=np.ones((n, 9) + out_size, plain.dtype))
    checks = dict(zero_offset_vs_conv2d=float(np.abs(exact - plain).max() / np.abs(plain).max()),
                  conv2d_vs_torch=max_error(forward["conv2d"], case.torch_forward),
                  conv2d_algorithm=chosen_algorithm(LAYER))
    first = {}
    bytes_moved = {}
    for g in OFFSET_GROUPS:
        offset, mask = deform_data(case.x, out_size, g)
        name = f"deform_g{g}"
        forward[name], forward_backward[name] = deform_calls(case, offset, mask, gy)
        first[name] = first_call_ms(forward[name])
        first[name + "_backward"] = first_call_ms(forward_backward[name])
        forward[f"ort_g{g}"] = onnx_runtime_deform_conv(case.x, case.w, case.b, offset, mask, padding=1,
                                                        threads=os.cpu_count())
        checks[f"ort_g{g}_vs_npconv"] = float(np.abs(forward[f"ort_g{g}"]() - forward[name]()).max()
                                              / np.abs(forward[name]()).max())
        if checks[f"ort_g{g}_vs_npconv"] > 1e-4:
            raise SystemExit(f"ONNX Runtime's DeformConv differs from npconv's: {checks[f'ort_g{g}_vs_npconv']:.1e}")
        bytes_moved[name] = bytes_moved[f"ort_g{g}"] = case.bytes_moved + offset.nbytes + mask.nbytes
    forward["torch"], forward_backward["torch"] = case.torch_forward, case.torch_forward_backward
    bytes_moved["conv2d"] = bytes_moved["conv2d_gemm"] = bytes_moved["torch"] = case.bytes_moved
    # time_turns's ratios are to the entry named "npconv": the plain conv2d goes first under that name
    order = ["conv2d", "conv2d_gemm"] + [f"deform_g{g}" for g in OFFSET_GROUPS] + ["torch"]
    order += [f"ort_g{g}" for g in OFFSET_GROUPS]
    timed = {}
    for section, calls, flops, grad_mode in (("forward", forward, case.flops, torch.no_grad()),
                                             ("forward_backward", forward_backward, 3 * case.flops,
                                              contextlib.nullcontext())):
        named = {("npconv" if k == "conv2d" else k): calls[k] for k in order if k in calls}
        with grad_mode:
            medians, ratios = time_turns(named, repeats, block)
        timed[section] = {k: dict(ms=medians[key] * 1e3, gflops=flops / medians[key] / 1e9,
                                  vs_conv2d=ratios[key], vs_torch=medians[key] / medians["torch"])
                          for k, key in zip(order, named)}
    rows = []
    for k in order:
        floor = roofline_floor(case.flops, bytes_moved[k], rates, case.x.dtype)
        rows.append(dict(name=k, forward=timed["forward"][k], forward_backward=timed["forward_backward"].get(k),
                         floor_ms=floor * 1e3, vs_floor=timed["forward"][k]["ms"] / 1e3 / floor,
                         first_call_ms=first.get(k), first_backward_ms=first.get(k + "_backward")))
    return dict(layer=dict(batch=LAYER[2], in_channels=LAYER[3], size=list(LAYER[4]), out_channels=LAYER[5],
                           kernel=LAYER[6], padding=LAYER[8], dtype="float32", mask=True,
                           offset_scale=OFFSET_SCALE, gemm_flops=case.flops),
                checks=checks, rows=rows)


def label(name: str, algorithm: str = "plain") -> str:
    plain = {"conv2d": f"npconv conv2d ({algorithm})", "conv2d_gemm": "npconv conv2d (im2col_gemm)",
             "torch": "torch conv2d"}
    groups = name.split("_g")[-1]
    return plain.get(name) or (f"ONNX Runtime DeformConv, G {groups}" if name.startswith("ort")
                               else f"DCNv2, offset groups {groups}")


def print_table(result: dict, threads: int) -> None:
    layer = result["layer"]
    print(f"\nN={layer['batch']}, {layer['in_channels']} -> {layer['out_channels']} channels, 3x3, padding 1, "
          f"{layer['size'][0]}x{layer['size'][1]}, float32, {threads} threads; GFLOP/s counts the GEMM only "
          f"(2*N*C_out*C_in*9*oh*ow = {layer['gemm_flops'] / 1e9:.2f} GFLOP forward, 3x that forward + backward; "
          "Winograd does fewer multiplications, so it can pass the GEMM rate and its floor)")
    print(f"{'layer':<32} {'ms':>8} {'GFLOP/s':>8} {'/conv2d':>8} {'/torch':>7} {'floor ms':>8} {'/floor':>7}   "
          f"{'fwd+bwd ms':>10} {'/conv2d':>8} {'/torch':>7}")
    for r in result["rows"]:
        f, b = r["forward"], r["forward_backward"]
        backward = (f"{b['ms']:>10.1f} {b['vs_conv2d']:>7.2f}x {b['vs_torch']:>6.2f}x" if b
                    else f"{'-':>10} {'-':>8} {'-':>7}")
        print(f"{label(r['name'], result['checks']['conv2d_algorithm']):<32} {f['ms']:>8.1f} {f['gflops']:>8.1f} "
              f"{f['vs_conv2d']:>7.2f}x {f['vs_torch']:>6.2f}x {r['floor_ms']:>8.1f} {r['vs_floor']:>6.1f}x   {backward}")
    checks = result["checks"]
    print(f"\nchecks: zero offsets + unit mask vs conv2d {checks['zero_offset_vs_conv2d']:.1e} of the largest output; "
          f"conv2d ({checks['conv2d_algorithm']}) vs torch {checks['conv2d_vs_torch']:.1e}; ONNX Runtime's "
          f"DeformConv vs npconv's " + ", ".join(f"{checks[f'ort_g{g}_vs_npconv']:.1e}" for g in OFFSET_GROUPS))
    firsts = ", ".join(f"offset groups {r['name'].split('_g')[1]}: {r['first_call_ms']:.0f} ms, backward "
                       f"{r['first_backward_ms']:.0f} ms" for r in result["rows"] if r["first_call_ms"] is not None)
    print(f"first calls (Numba compiles or cache loads, untimed above): {firsts}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="turns per row (medians)")
    parser.add_argument("--quick", action="store_true", help="3 turns, 2 calls per turn")
    parser.add_argument("--block", type=int, default=3, help="calls per turn; the last is timed")
    parser.add_argument("--json", default="bench/results/deform.json")
    args = parser.parse_args(argv)
    repeats, block = (3, 2) if args.quick else (args.repeats, args.block)
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    machine = dict(threads=threads, cpu=cpu_model(), **measure_machine(2 if args.quick else 5))
    print_machine(machine)
    result = measure(repeats, block, machine)
    print_table(result, threads)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(machine=machine, versions=versions(), repeats=repeats, block=block, **result),
                               indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())
