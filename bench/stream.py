"""Streaming benchmark: a WaveNet-style causal stack run on audio as it arrives, beside recomputing
the offline stack on the whole prefix at every step.

The stack: 10 causal ``npconv.nn.Conv1d`` layers, 64 -> 64 channels, kernel 2, dilation 1, 2, 4,
..., 512 (``padding='causal'``: ``dilation`` zeros before), ReLU between, float32, batch 1; its
receptive field is 1024 samples.  The input is 16 kHz audio (random samples, 64 channels).  Two
ways of feeding it:

- (a) one sample per step (sample-by-sample generation, as WaveNet's fast generation);
- (b) 10 ms chunks: 160 samples per step (a streaming front end).

Each is timed two ways, step by step with ``time.perf_counter``:

- streaming: ``npconv.stream.StreamingSequential`` over the layers, ``step(chunk)`` per step;
- recompute: the ``npconv.nn.Sequential`` of the same layers on the whole prefix received so far
  (the new outputs are its last ones).  Its cost grows with the prefix, so it runs at a few
  prefix lengths only (a few steps each, medians), up to the prefixes listed in the output;
  nothing is extrapolated.

Figures: µs per step (median); the real-time factor (audio duration / compute time; above 1 is
faster than real time): the audio of one step over the median step's time, and for the streamed
run also the whole signal over the sum of its steps; the max error of the joined streamed outputs
against the offline stack on the whole signal.  The first steps (Numba compiles or cache loads)
are run once before the timing and the stream reset.  Output: a table,
``bench/results/stream.json``, and a plot of µs per step against the prefix length,
``bench/results/stream.png``, copied to ``docs/images/stream_cost.png``.

    python bench/stream.py [--quick] [--json bench/results/stream.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

import npconv
from npconv.cpu import cpu_model
from npconv.stream import StreamingSequential

RATE = 16_000  # samples per second
CHANNELS, LAYERS, KERNEL = 64, 10, 2
CHUNK = 160  # 10 ms at 16 kHz
DOCS_IMAGE = Path(__file__).resolve().parent.parent / "docs" / "images" / "stream_cost.png"


def wavenet_stack(seed: int = 0) -> npconv.nn.Sequential:
    """10 causal dilated Conv1d layers (dilation 1 ... 512), ReLU between, float32."""
    npconv.manual_seed(seed)
    layers: list[npconv.nn.Module] = []
    for i in range(LAYERS):
        d = 2 ** i
        layers.append(npconv.nn.Conv1d(CHANNELS, CHANNELS, KERNEL, dilation=d, padding="causal"))
        if i < LAYERS - 1:
            layers.append(npconv.nn.ReLU())
    return npconv.nn.Sequential(*layers)


def timed(call: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Seconds one call took, and its result."""
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def stream_run(stream: StreamingSequential, x: np.ndarray, chunk: int) -> dict:
    """Every step's seconds (one warm-up pass first, then reset) and the joined outputs' error."""
    steps = range(0, x.shape[2], chunk)
    for t in steps[:3]:  # compile / load kernels
        stream.step(x[:, :, t:t + chunk])
    stream.reset()
    seconds, outputs = [], []
    for t in steps:
        s, out = timed(lambda: stream.step(x[:, :, t:t + chunk]))
        seconds.append(s)
        outputs.append(out)
    return dict(seconds=seconds, output=np.concatenate(outputs, axis=2))


def recompute_run(stack: npconv.nn.Sequential, x: np.ndarray, chunk: int, prefixes: list[int],
                  repeats: int) -> list[dict]:
    """The offline stack on the prefix of each length (the step that completes it), ``repeats``
    times each (the first call at each length untimed), medians."""
    rows = []
    for prefix in prefixes:
        signal = x[:, :, :prefix]
        stack(signal)
        times = [timed(lambda: stack(signal)[:, :, -chunk:])[0] for _ in range(repeats)]
        rows.append(dict(prefix=prefix, us_per_step=statistics.median(times) * 1e6,
                         real_time_factor=chunk / RATE / statistics.median(times)))
    return rows


def measure_mode(stack: npconv.nn.Sequential, x: np.ndarray, chunk: int, prefixes: list[int],
                 repeats: int) -> dict:
    stream = StreamingSequential(stack)
    streamed = stream_run(stream, x, chunk)
    reference = stack(x)
    error = float(np.abs(streamed["output"] - reference).max())
    seconds = streamed["seconds"]
    return dict(chunk=chunk, samples=x.shape[2], steps=len(seconds),
                streaming=dict(us_per_step=statistics.median(seconds) * 1e6,
                               real_time_factor=chunk / RATE / statistics.median(seconds),
                               whole_run_real_time_factor=x.shape[2] / RATE / sum(seconds),
                               step_us=[s * 1e6 for s in seconds]),
                max_error=error, relative_error=error / float(np.abs(reference).max()),
                recompute=recompute_run(stack, x, chunk, prefixes, repeats))


def measure(quick: bool) -> dict:
    stack = wavenet_stack()
    rng = np.random.default_rng(0)
    sample_steps = 500 if quick else 4000
    chunk_samples = RATE // 4 if quick else 2 * RATE  # (b): 0.25 s quick, 2 s
    repeats = 3 if quick else 5
    x = rng.standard_normal((1, CHANNELS, max(sample_steps, chunk_samples))).astype(np.float32)
    sample_prefixes = [p for p in (1, 16, 128, 512, 1024, 2048) if p < sample_steps] + [sample_steps]
    chunk_prefixes = [p for p in (CHUNK, 4 * CHUNK, 16 * CHUNK, 50 * CHUNK, 100 * CHUNK) if p < chunk_samples]
    chunk_prefixes.append(chunk_samples)
    return dict(one_sample=measure_mode(stack, x[:, :, :sample_steps], 1, sample_prefixes, repeats),
                chunks_10ms=measure_mode(stack, x[:, :, :chunk_samples], CHUNK, chunk_prefixes, repeats),
                stack=dict(layers=LAYERS, channels=CHANNELS, kernel=KERNEL, dilations=[2 ** i for i in range(LAYERS)],
                           activation="ReLU", dtype="float32", batch=1, rate=RATE, receptive_field=2 ** LAYERS),
                repeats=repeats)


def binned(step_us: list[float], chunk: int, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """The streamed steps' median µs over log-spaced runs of prefix lengths (for a readable line)."""
    prefix = np.arange(1, len(step_us) + 1) * chunk
    edges = np.unique(np.geomspace(1, len(step_us) + 1, bins).astype(int))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        xs.append(float(np.median(prefix[lo - 1:hi - 1])))
        ys.append(float(np.median(step_us[lo - 1:hi - 1])))
    return np.array(xs), np.array(ys)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in ((axes[0], "one_sample", "(a) one sample per step"),
                           (axes[1], "chunks_10ms", f"(b) 10 ms chunks ({CHUNK} samples) per step")):
        mode = result[key]
        xs, ys = binned(mode["streaming"]["step_us"], mode["chunk"])
        ax.plot(xs, ys, "o-", color="tab:blue", ms=3, label="npconv.stream (step)")
        rec = mode["recompute"]
        ax.plot([r["prefix"] for r in rec], [r["us_per_step"] for r in rec], "s-", color="tab:red",
                label="recompute the stack on the prefix")
        ax.axhline(mode["chunk"] / RATE * 1e6, color="gray", ls="--", lw=1, label="real time (audio per step)")
        ax.set(xscale="log", yscale="log", title=title, xlabel="prefix length (samples)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("µs per step (median)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"WaveNet-style stack: {LAYERS} causal Conv1d, {CHANNELS} ch, kernel {KERNEL}, "
                 f"dilation 1..{2 ** (LAYERS - 1)}, float32, 16 kHz")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def print_table(result: dict) -> None:
    for key, label in (("one_sample", "(a) one sample per step"),
                       ("chunks_10ms", f"(b) {CHUNK}-sample (10 ms) chunks")):
        mode = result[key]
        s = mode["streaming"]
        print(f"\n{label}: {mode['steps']} steps over {mode['samples']} samples ({mode['samples'] / RATE:.3f} s)")
        print(f"  streaming: {s['us_per_step']:.1f} µs per step (median), real-time factor "
              f"{s['real_time_factor']:.3g} (audio per step / median step; {s['whole_run_real_time_factor']:.3g} "
              f"over the whole run); max error vs offline {mode['max_error']:.1e} "
              f"({mode['relative_error']:.1e} of the largest output)")
        for r in mode["recompute"]:
            print(f"  recompute at prefix {r['prefix']:>6} samples: {r['us_per_step']:>10.1f} µs per step, "
                  f"real-time factor {r['real_time_factor']:.3g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and shorter prefixes")
    parser.add_argument("--json", default="bench/results/stream.json")
    args = parser.parse_args(argv)
    threads = os.cpu_count()
    print(f"{cpu_model()}, {threads} threads; load average {os.getloadavg()[0]:.2f}")
    result = measure(args.quick)
    print_table(result)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    versions = dict(npconv=getattr(npconv, "__version__", None), numpy=np.__version__,
                    python=platform.python_version())
    path.write_text(json.dumps(dict(machine=dict(cpu=cpu_model(), threads=threads), versions=versions,
                                    quick=args.quick, **result), indent=2))
    chart = plot(result, path.with_suffix(".png"))
    if not args.quick:
        shutil.copyfile(chart, DOCS_IMAGE)
    print(f"\nwrote {path} and {chart}" + ("" if args.quick else f" (copied to {DOCS_IMAGE})"))


if __name__ == "__main__":
    main()
