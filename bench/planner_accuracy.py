"""How often the planner's heuristic picks the fastest algorithm, on the layer suite's shapes.

For every forward row of bench/layers.py, times every candidate (``choose_algorithm(...,
measure=True)``, best of 3 after a warm-up) and compares with the heuristic's pick:
a hit when it is the measured fastest, else the time lost.

    python bench/planner_accuracy.py [--rows 3,12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

import npconv
from npconv import core, select
from npconv.spec import ConvSpec

from layers import ROWS

npconv.cpu.tune_environment()  # as bench/layers.py: the environment the measurements had (npconv.cpu)


def row_problem(row):
    """(spec, input shape, weight shape, dtype) of the forward conv the planner sees."""
    _, _, n, c_in, spatial, c_out, k, stride, pad, dilation, groups, extra = row
    kernel = k if isinstance(k, tuple) else (k,) * len(spatial)
    transposed = extra.get("transposed", False)
    spec = ConvSpec.build(kernel, stride, pad, dilation, groups, extra.get("padding_mode", "zeros"), transposed)
    w_shape = ((c_in, c_out // groups) if transposed else (c_out, c_in // groups)) + kernel
    if transposed and core.flip_and_swap_applies(spec, spec.pads(spatial)):
        spec, w, _ = core.as_forward_convolution(spec, np.empty(w_shape, np.float32), spec.pads(spatial))
        w_shape = w.shape
    return spec, (n, c_in) + spatial, w_shape, extra.get("dtype", np.float32)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--json", default="bench/results/planner_accuracy.json")
    args = parser.parse_args(argv)
    wanted = {int(r) for r in args.rows.split(",")} if args.rows else None
    results = []
    for row in tqdm([r for r in ROWS if wanted is None or r[0] in wanted], desc="rows", unit="row"):
        spec, x_shape, w_shape, dtype = row_problem(row)
        picked = select.heuristic(spec, x_shape, w_shape)
        fastest, timings = npconv.choose_algorithm(spec, x_shape, w_shape, dtype, measure=True)
        results.append(dict(row=row[0], name=row[1], picked=picked, fastest=fastest,
                            loss=timings[picked] / timings[fastest], timings_ms={k: v * 1e3 for k, v in timings.items()}))
    for r in results:
        mark = "hit" if r["picked"] == r["fastest"] else f"{r['loss']:.2f}x slower"
        print(f"{r['row']:>3} {r['name']:<26} picked {r['picked']:<16} fastest {r['fastest']:<16} {mark}")
    hits = sum(r["picked"] == r["fastest"] for r in results)
    worst = max(r["loss"] for r in results)
    print(f"\nheuristic = measured fastest on {hits}/{len(results)} rows; worst pick {worst:.2f}x the fastest")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
