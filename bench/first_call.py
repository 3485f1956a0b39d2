"""How long the first call of each compiled path takes on a fresh install (an empty Numba
cache), and the same call again in a new process (the cache loaded from disk).

    python bench/first_call.py          # a table: path, first call (compiles), cached call

Each measurement runs in its own subprocess with NUMBA_CACHE_DIR pointing at a new folder, so
nothing compiled earlier on this machine is reused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

PATHS = {
    "direct_jit (3x3 conv)": ("direct_jit", (2, 16, 32, 32), (16, 16, 3, 3), {"padding": 1}),
    "depthwise_jit planes (7x7 depthwise)": ("depthwise_jit", (2, 32, 56, 56), (32, 1, 7, 7), {"padding": 3, "groups": 32}),
    "depthwise_jit channels (3x3 depthwise, 7x7 map)": ("depthwise_jit", (2, 64, 7, 7), (64, 1, 3, 3), {"padding": 1, "groups": 64}),
    "winograd_f4 transforms (3x3, 64 ch)": ("winograd_f4", (1, 64, 32, 32), (64, 64, 3, 3), {"padding": 1}),
    "planner's default (no forcing), 3x3 conv": (None, (1, 16, 32, 32), (16, 16, 3, 3), {"padding": 1}),
}

CHILD = """
import json, sys, time
import numpy as np
import npconv
algorithm, x_shape, w_shape, kwargs = json.loads(sys.argv[1])
x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
w = np.random.default_rng(1).standard_normal(w_shape).astype(np.float32)
with npconv.config(algorithm=algorithm):
    start = time.perf_counter()
    npconv.functional.conv2d(x, w, **kwargs)
    print(time.perf_counter() - start)
"""


def seconds(case, cache_dir: str) -> float:
    env = {"NUMBA_CACHE_DIR": cache_dir, "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], env=env, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"{'path':48s} {'first call':>11s} {'cached':>8s}")
    for name, case in PATHS.items():
        with tempfile.TemporaryDirectory() as cache_dir:
            first, again = seconds(case, cache_dir), seconds(case, cache_dir)
        print(f"{name:48s} {first:10.2f}s {again:7.2f}s")


if __name__ == "__main__":
    main()
