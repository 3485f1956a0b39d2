"""The layer benchmark's chart (docs/bench_speedups.png), drawn from the JSON bench/layers.py wrote:
three panels of ratios on a log axis labelled at 0.25x, 0.5x, 1x, 2x, 4x, 10x and 20x (1x
marked), the machine's CPU model and thread count in the title.

    python bench/chart.py [bench/results/layers.json] [--out docs/bench_speedups.png]

bench/layers.py draws it at the end of each run (beside its JSON); this redraws a saved run
without measuring again.  Needs matplotlib only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# labelled ticks of the log axes; every panel spans at least LEAST_RANGE, so 0.25x to 20x show
TICKS = (0.1, 0.25, 0.5, 1, 2, 4, 10, 20, 50, 100)
LEAST_RANGE = (0.2, 25.0)

PANELS = [
    ("torch time / npconv time (> 1: npconv faster)",
     [("forward", "speedup", "forward", "#3b75af"), ("forward_backward", "speedup", "fwd + bwd", "#ef8636")]),
    ("ONNX Runtime time / npconv time, forward (> 1: npconv faster)",
     [("forward", "onnxruntime_speedup", "forward", "#519e3e")]),
    ("time / roofline floor, forward (1 = at the machine's limit)",
     [("forward", "npconv_floor", "npconv", "#3b75af"),
      ("forward", "onnxruntime_floor", "ONNX Runtime", "#519e3e")]),
]


def title(machine: dict, versions: dict, summary: dict) -> str:
    """Two lines: the peers and the machine (CPU model, threads), then the geometric means."""
    means = ", ".join(f"{label} {s['geomean']:.2f}x" for label, s in summary.items())
    return (f"npconv vs torch {versions.get('torch')} and ONNX Runtime {versions.get('onnxruntime')} (CPU) "
            f"on {machine.get('cpu', 'an unnamed CPU')}, {machine.get('threads', '?')} threads\n"
            f"geometric means: {means}")


def draw_chart(results: list, summary: dict, path: Path, machine: dict, versions: dict) -> Path:
    """Three panels, log scale, 1x marked: torch/npconv (forward, fwd+bwd), ORT/npconv forward,
    and time / roofline floor (npconv and ORT); written as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.arange(len(results))
    fig, axes = plt.subplots(1, 3, sharey=True, figsize=(16, 0.32 * len(results) + 2.4))
    for ax, (panel_title, bars) in zip(axes, PANELS):
        _draw_panel(ax, y, results, bars)
        ax.set_title(panel_title, fontsize=9)
    axes[0].set_yticks(y, [f"{r['row']} {r['name']}" for r in results], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title(machine, versions, summary), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _draw_panel(ax, y, results, bars) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator
    from matplotlib.transforms import blended_transform_factory

    height, drawn = 0.8 / len(bars), []
    for i, (section, key, label, color) in enumerate(bars):
        values = [r[section][key] or np.nan for r in results]  # no bar where the figure is missing
        drawn += [value for value in values if not np.isnan(value)]
        offsets = y + (i - (len(bars) - 1) / 2) * height
        ax.barh(offsets, values, height=height * 0.95, color=color, label=label)
        for offset, value in zip(offsets, values):
            if np.isnan(value):  # the float64 row: ONNX Runtime has no float64 Conv on CPU
                ax.text(0.01, offset, "n/a (float64)", va="center", fontsize=7,
                        transform=blended_transform_factory(ax.transAxes, ax.transData))
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(min([LEAST_RANGE[0]] + [v / 1.2 for v in drawn]), max([LEAST_RANGE[1]] + [v * 1.2 for v in drawn]))
    ax.xaxis.set_major_locator(FixedLocator(TICKS))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", which="major", linewidth=0.3, alpha=0.5)
    ax.legend(loc="lower right", fontsize=8)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", default="bench/results/layers.json", help="bench/layers.py's output")
    parser.add_argument("--out", default="docs/bench_speedups.png")
    args = parser.parse_args(argv)
    run = json.loads(Path(args.json).read_text())
    print(f"wrote {draw_chart(run['rows'], run['summary'], Path(args.out), run['machine'], run['versions'])}")


if __name__ == "__main__":
    main()
