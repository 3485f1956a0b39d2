"""The benchmark's chart (bench/chart.py, docs/bench_speedups.png) is readable: every panel's log
axis is labelled at 0.25x, 0.5x, 1x, 2x, 4x, 10x and 20x, and the title names the machine's
CPU model and thread count."""

import sys
from pathlib import Path

import numpy as np

from helpers import require

require("matplotlib", "drawing the benchmark's chart")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import chart  # noqa: E402

ROWS = [dict(row=1, name="stem", forward=dict(speedup=1.7, onnxruntime_speedup=0.6, npconv_floor=3.0,
                                              onnxruntime_floor=5.0), forward_backward=dict(speedup=2.2)),
        dict(row=2, name="float64", forward=dict(speedup=0.4, onnxruntime_speedup=None, npconv_floor=1.5,
                                                 onnxruntime_floor=None), forward_backward=dict(speedup=0.9))]
MACHINE, VERSIONS = dict(cpu="AMD EPYC 7B13", threads=2), dict(torch="2.13.0", onnxruntime="1.32.0")
SUMMARY = {"torch/npconv forward": dict(geomean=0.82)}


def test_every_panel_is_labelled_from_a_quarter_to_twenty():
    for _, bars in chart.PANELS:
        fig, ax = plt.subplots()
        chart._draw_panel(ax, np.arange(len(ROWS)), ROWS, bars)
        fig.canvas.draw()
        low, high = ax.get_xlim()
        shown = {label.get_text() for label, at in zip(ax.get_xticklabels(), ax.get_xticks()) if low <= at <= high}
        plt.close(fig)
        assert {"0.25x", "0.5x", "1x", "2x", "4x", "10x", "20x"} <= shown, shown


def test_the_title_names_the_machine_and_threads_and_the_png_is_written(tmp_path):
    title = chart.title(MACHINE, VERSIONS, SUMMARY)
    assert "on AMD EPYC 7B13, 2 threads" in title and "torch/npconv forward 0.82x" in title
    path = chart.draw_chart(ROWS, SUMMARY, tmp_path / "chart.png", MACHINE, VERSIONS)
    assert path.read_bytes().startswith(b"\x89PNG")
