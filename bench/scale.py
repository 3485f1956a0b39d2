"""Scale benchmark: one convolution over an image larger than this machine's memory, by Dask.

A 40,000 x 40,000 single-channel float32 image (6.4 GB; the default ``--size``) is convolved with a
5x5 kernel (padding 2, zeros: the output has the input's size) by ``npconv.dask.conv2d`` and
reduced to its mean and maximum in one pass, with Dask's threaded scheduler and
``dask.diagnostics.ProgressBar``.  The image is generated lazily, chunk by chunk
(``dask.array.random.default_rng(seed).random``, uniform in [0, 1); its values depend on the
chunking), so neither it nor the output is ever held in memory: each task makes its chunk, the
convolution reads it with its neighbours' halos, and the reductions keep a few numbers per block.
Chunks of 2048 x 2048 (16 MiB) by default: on 2 cores they ran the 40k image in 8.2-9.4 s (six
runs), against 9.3-10.4 s (three) with 4096 x 4096 and a peak 0.1-0.2 GiB higher.  Reported:

- the Dask run: wall time (graph building included), throughput in output Mpixel/s, peak resident
  memory of the process (``resource.getrusage(...).ru_maxrss``, the high-water mark) beside the
  resident memory before the run, the mean and maximum; then the generated image's mean and max
  alone, without the convolution (the share of the generation and of Dask itself);
- in memory, on one tile (``--tile`` x ``--tile``, 4096 by default), best of ``--repeats``:
  ``npconv.functional.conv2d`` alone, the generation of the random tile alone (the same generator
  as the Dask array's chunks), and generation + conv: the Dask run's work per chunk without
  Dask, so that the Dask rate reads against it (the difference is the cost of the halos, the
  rechunking, the scheduling and the reductions);
- a check of the big result: two 512 x 512 windows of the Dask output (the top-left corner, where
  the zero padding applies, and one across a chunk corner, where the halos meet) against
  ``npconv.functional.conv2d`` on the same input window, computed in memory.

Output: a table on stdout and JSON (``--json``, bench/results/scale.json by default).

    python bench/scale.py [--size 40000 | --quick] [--chunk 2048] [--tile 4096] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.diagnostics import ProgressBar
except ImportError:  # the optional extra
    raise SystemExit("bench/scale.py needs Dask: pip install 'npconv[dask]'") from None

import npconv
import npconv.dask
import npconv.functional as F
from npconv.cpu import cpu_model

KERNEL = 5
SEED = 17
WINDOW = 512  # the checked windows' side


def rss_mib() -> float:
    """The process's resident memory now (Linux's /proc; the peak where that is absent)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """The process's peak resident memory so far: ru_maxrss is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def lazy_image(size: int, chunk: int, seed: int = SEED) -> da.Array:
    """The (1, 1, size, size) float32 image, uniform in [0, 1), as chunk x chunk tasks."""
    return da.random.default_rng(seed).random((1, 1, size, size), dtype=np.float32,
                                              chunks=(1, 1, chunk, chunk))


def kernel(k: int = KERNEL) -> np.ndarray:
    """A fixed (1, 1, k, k) float32 kernel with mixed signs."""
    return np.random.default_rng(0).standard_normal((1, 1, k, k)).astype(np.float32)


def best_of(call: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls after one untimed call (Numba's compile, caches)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def timed_reduction(image: da.Array, workers: int, progress: bool) -> tuple[float, float, float]:
    """(seconds, mean, max) of one threaded pass over ``image``; the progress bar where asked."""
    start = time.perf_counter()
    with ProgressBar(dt=1.0) if progress else contextlib.nullcontext(), \
            dask.config.set(scheduler="threads", num_workers=workers):
        mean, largest = dask.compute(image.mean(dtype=np.float64), image.max())
    return time.perf_counter() - start, float(mean), float(largest)


def run_dask(size: int, chunk: int, w: np.ndarray, workers: int, progress: bool) -> dict:
    """The big run: lazily generated image -> npconv.dask.conv2d -> mean and max, one pass; then
    the same image's mean and max alone (the generation's and Dask's share of the time)."""
    rss_before = rss_mib()
    start = time.perf_counter()
    y = npconv.dask.conv2d(lazy_image(size, chunk), w, padding=w.shape[-1] // 2)
    graph_s = time.perf_counter() - start
    seconds, mean, largest = timed_reduction(y, workers, progress)
    wall, peak = graph_s + seconds, peak_rss_mib()
    generation_s = timed_reduction(lazy_image(size, chunk), workers, False)[0]
    return dict(wall_s=wall, graph_s=graph_s, mpix_per_s=size * size / wall / 1e6, mean=mean, max=largest,
                output_shape=list(y.shape), output_chunksize=list(y.chunksize), blocks=list(y.numblocks),
                tasks=len(y.__dask_graph__()), rss_before_mib=rss_before, peak_rss_mib=peak,
                generation_only=dict(wall_s=generation_s, mpix_per_s=size * size / generation_s / 1e6))


def reference_window(x: da.Array, w: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """The output window ``rows`` x ``cols`` of the zero-padded same-size convolution, in memory:
    the input window with its halo, zeros where the halo leaves the image, then a valid conv."""
    pad, size = w.shape[-1] // 2, x.shape[-1]
    lo = [max(a - pad, 0) for a in (rows[0], cols[0])]
    hi = [min(b + pad, size) for b in (rows[1], cols[1])]
    tile = x[..., lo[0]:hi[0], lo[1]:hi[1]].compute(scheduler="sync")
    pads = [(lo[i] - (a - pad), (b + pad) - hi[i]) for i, (a, b) in enumerate((rows, cols))]
    return F.conv2d(np.pad(tile, [(0, 0), (0, 0), *pads]), w)


def check_windows(size: int, chunk: int, w: np.ndarray) -> dict:
    """max |dask - in memory| / max |in memory| on the corner window and on one across a chunk corner."""
    x = lazy_image(size, chunk)
    y = npconv.dask.conv2d(x, w, padding=w.shape[-1] // 2)
    centre = min(chunk, size - WINDOW // 2)
    windows = dict(corner=(0, WINDOW), chunk_corner=(centre - WINDOW // 2, centre + WINDOW // 2))
    errors = {}
    for name, (a, b) in windows.items():
        b, a = min(b, size), max(a, 0)
        got = y[..., a:b, a:b].compute(scheduler="threads")
        want = reference_window(x, w, (a, b), (a, b))
        errors[name] = float(np.abs(got - want).max() / np.abs(want).max())
    return errors


def run_tile(side: int, w: np.ndarray, repeats: int) -> dict:
    """In memory, on one side x side tile: the conv alone, the generation alone, both."""
    pad = w.shape[-1] // 2
    generator = np.random.default_rng(SEED)  # what each of the Dask array's chunk tasks calls

    def generate() -> np.ndarray:
        return generator.random((1, 1, side, side), dtype=np.float32)

    tile = generate()
    times = dict(conv=best_of(lambda: F.conv2d(tile, w, padding=pad), repeats),
                 generate=best_of(generate, repeats),
                 generate_and_conv=best_of(lambda: F.conv2d(generate(), w, padding=pad), repeats))
    return {name: dict(ms=t * 1e3, mpix_per_s=side * side / t / 1e6) for name, t in times.items()}


def versions() -> dict:
    import distributed  # part of the extra, not needed by the threaded run: only its version is recorded

    return dict(npconv=getattr(npconv, "__version__", None), numpy=np.__version__, dask=dask.__version__,
                distributed=distributed.__version__, python=platform.python_version())


def print_table(result: dict) -> None:
    size, chunk, side = result["size"], result["chunk"], result["tile_side"]
    run, tile = result["dask"], result["tile"]
    gb = size * size * 4 / 1e9
    print(f"\n{size} x {size} float32 ({gb:.1f} GB), {KERNEL}x{KERNEL} kernel, padding {KERNEL // 2}; chunks "
          f"{chunk} x {chunk}; threaded scheduler, {result['workers']} workers; {result['machine']['cpu']}, "
          f"load average {result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after")
    threads = result["machine"]["threads"]
    print(f"{'what':<56} {'time':>10} {'Mpixel/s':>9}")
    rows = [("Dask: npconv.dask.conv2d -> mean, max (with generation)", run),
            ("Dask: the generated image -> mean, max alone (no conv)", run["generation_only"])]
    for label, figures in rows:
        print(f"{label:<56} {figures['wall_s']:>9.1f}s {figures['mpix_per_s']:>9.0f}")
    names = dict(conv=f"in memory: npconv.functional.conv2d, {side}² tile, {threads} threads",
                 generate=f"in memory: random {side}² tile",
                 generate_and_conv=f"in memory: random tile, then conv2d ({threads} threads)")
    for key, label in names.items():
        print(f"{label:<56} {tile[key]['ms']:>8.1f}ms {tile[key]['mpix_per_s']:>9.0f}")
    ratio = run["mpix_per_s"] / tile["generate_and_conv"]["mpix_per_s"]
    print(f"\nthe Dask run's rate is {ratio:.2f}x the in-memory rate of generate + conv2d on one tile")
    print(f"peak RSS {run['peak_rss_mib']:.0f} MiB (before the run {run['rss_before_mib']:.0f} MiB) for a "
          f"{gb:.1f} GB image; graph {run['tasks']} tasks, built in {run['graph_s']:.2f} s")
    print(f"output mean {run['mean']:.6f}, max {run['max']:.4f}; windows vs in memory: "
          + ", ".join(f"{k} {v:.1e}" for k, v in result["checks"].items()) + " of the largest value")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40_000, help="the image's side (default 40000: 6.4 GB)")
    parser.add_argument("--quick", action="store_true", help="an 8000 x 8000 image")
    parser.add_argument("--chunk", type=int, default=2048, help="the chunks' side (default 2048)")
    parser.add_argument("--tile", type=int, default=4096, help="the in-memory tile's side (default 4096)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="the threaded scheduler's threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of the in-memory tile (best of)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", default="bench/results/scale.json")
    args = parser.parse_args(argv)
    size = 8000 if args.quick else args.size
    w = kernel()
    # untimed: Numba compiles or loads the kernels, Dask starts its thread pool
    timed_reduction(npconv.dask.conv2d(lazy_image(2 * WINDOW, WINDOW), w, padding=KERNEL // 2), args.workers, False)
    load_before = os.getloadavg()
    run = run_dask(size, args.chunk, w, args.workers, not args.no_progress)
    load_after = os.getloadavg()
    result = dict(size=size, chunk=args.chunk, kernel=KERNEL, workers=args.workers, dask=run,
                  machine=dict(cpu=cpu_model(), threads=os.cpu_count()), load_before=load_before,
                  load_after=load_after, tile_side=args.tile, tile=run_tile(args.tile, w, args.repeats),
                  checks=check_windows(size, args.chunk, w), versions=versions())
    print_table(result)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {path}")
    if max(result["checks"].values()) > 1e-5:
        raise SystemExit("the Dask result differs from the in-memory one")


if __name__ == "__main__":
    sys.exit(main())
