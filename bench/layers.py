"""Layer benchmark: npconv beside PyTorch's CPU path, in one process, forward and
forward + backward (grad input, weight and bias; torch's autograd on the same graph).

Both run on the same data with the same thread count, alternating A B A B.  Each turn is a
short block of calls of which only the last is timed: the first call after a switch pays for
the other library's worker threads still spinning (OpenBLAS and OpenMP both spin after a
call), which measured 2-4x on this VM and would make either side look slow.  Reported:
medians and the median of the per-turn ratios torch/npconv (> 1 means npconv is faster).

    python bench/layers.py [--repeats 9] [--rows 3,26] [--json bench/results/layers.json]

Rows 28-29 blur 8 channels with a 31x31 Gaussian (sigma 5, built in 2-D): npconv's separable
path (``npconv.separable.conv2d``: two 1-D passes) and plain ``npconv.conv`` on the full kernel,
each beside torch's conv2d on the full kernel.  Their GFLOP/s count the full kernel's work, and
their backward is npconv's full-kernel gradients in both rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as TF
from tqdm import tqdm

import npconv
import npconv.grad
import npconv.separable

# (row, name, N, C_in, spatial, C_out, k, stride, pad, dilation, groups, extra) from BENCHMARK.md
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


def make_case(row):
    """(npconv forward, torch forward, npconv fwd+bwd, torch fwd+bwd, flops) for one row."""
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
    gy = rng.standard_normal(forward().shape).astype(dtype)

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
    return forward, torch_forward, forward_backward, torch_forward_backward, flops


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


def time_pair(npconv_call, torch_call, repeats: int, block: int):
    ours, theirs = [], []
    for _ in range(repeats):
        for call, times in ((npconv_call, ours), (torch_call, theirs)):
            for _ in range(block):  # the last call of the block is the timed one
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
            times.append(elapsed)
    ratios = [t / o for o, t in zip(ours, theirs)]
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--block", type=int, default=3, help="calls per turn; the last is timed")
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--json", default="bench/results/layers.json")
    args = parser.parse_args(argv)
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    wanted = {int(r) for r in args.rows.split(",")} if args.rows else None
    rows = [r for r in ROWS if wanted is None or r[0] in wanted]
    results = []
    for row in tqdm(rows, desc="layers", unit="layer"):
        forward, torch_forward, forward_backward, torch_forward_backward, flops = make_case(row)
        result = dict(row=row[0], name=row[1], max_rel_error=max_error(forward, torch_forward),
                      algorithm=chosen_algorithm(row), workspace_mib=peak_workspace_mib(forward))
        for label, ours, theirs, work in (("forward", forward, torch_forward, flops),
                                          ("forward_backward", forward_backward, torch_forward_backward, 3 * flops)):
            with torch.set_grad_enabled(label != "forward"):
                mine, torchs, ratio = time_pair(ours, theirs, args.repeats, args.block)
            result[label] = dict(npconv_ms=mine * 1e3, torch_ms=torchs * 1e3, speedup=ratio,
                                 npconv_gflops=work / mine / 1e9)
        results.append(result)
    for label in ("forward", "forward_backward"):
        print_table(results, threads, label)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(threads=threads, torch=torch.__version__,
                                               numpy=np.__version__, rows=results), indent=2))
    print(f"\nwrote {args.json} and {draw_chart(results, Path(args.json).with_suffix('.png'))}")


def print_table(results, threads, label) -> None:
    print(f"\n{label.replace('_', ' + ')}, float32 unless noted, {threads} threads; "
          f"speedup = torch time / npconv time")
    print(f"{'#':>3} {'layer':<26} {'npconv ms':>10} {'torch ms':>9} {'speedup':>8} {'GFLOP/s':>8} {'max err':>9} "
          f"{'algorithm':<16} {'workspace':>9}")
    for r in results:
        t = r[label]
        print(f"{r['row']:>3} {r['name']:<26} {t['npconv_ms']:>10.2f} {t['torch_ms']:>9.2f} "
              f"{t['speedup']:>7.2f}x {t['npconv_gflops']:>8.1f} {r['max_rel_error']:>9.1e} "
              f"{r['algorithm']:<16} {r['workspace_mib']:>6.1f} MiB")
    geo = math.exp(statistics.mean(math.log(r[label]["speedup"]) for r in results))
    print(f"geometric-mean speedup {geo:.2f}x, min {min(r[label]['speedup'] for r in results):.2f}x")


def draw_chart(results, path: Path) -> Path:
    """Bar chart of the speedups (log scale), forward and forward + backward, with 1x marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['row']} {r['name']}" for r in results]
    y = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(results) + 1.5))
    for offset, label, color in ((-0.2, "forward", "#3b75af"), (0.2, "forward_backward", "#ef8636")):
        ax.barh(y + offset, [r[label]["speedup"] for r in results], height=0.38, color=color,
                label=label.replace("_", " + "))
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over torch 2.13 CPU (torch time / npconv time, log scale; > 1: npconv faster)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
