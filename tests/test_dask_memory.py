"""npconv.dask's memory bound (issue 17): a 3x3 convolution of an image too large to hold
comfortably, reduced to a number, runs in a fraction of the image's memory.

A fresh process (so that its peak RSS is its own) builds a lazy 4 x 4096 x 4096 float32 image
(256 MiB, drawn chunk by chunk with ``dask.array.random``, never whole in memory), convolves it
with npconv.dask.conv2d (reflect padding, bias) and sums it with the threaded scheduler (two
threads, each task's npconv on one thread, so the bound does not depend on the machine's cores).  The peak RSS
(Linux's VmHWM; ``getrusage().ru_maxrss`` elsewhere, which on Linux keeps the forking pytest
process's peak across exec) above the RSS after the imports and a small warm-up (Numba compiles
its kernels there) must stay under 40% of the image's size.  glibc's malloc runs with a fixed mmap threshold
(1 MiB): by default the threshold grows to 32 MiB once large blocks are freed, after which freed
4 MiB chunks stay in its heap and the RSS measures the allocator's cache (about 30 MiB more
here) rather than what the graph holds.  The sum is then checked against
the same convolution done in memory band by band (each band of rows with its halo, npconv on
NumPy), and two crops, one at the image's corner and one across chunk edges, against npconv on
the matching NumPy windows.
"""

import json
import os
import subprocess
import sys

from helpers import require

require("dask.array", "npconv.dask's memory test")
require("npconv.dask", "npconv.dask's memory test")

SIDE, CHUNK, CHANNELS = 4096, 512, 4
IMAGE_BYTES = CHANNELS * SIDE * SIDE * 4
BOUND = 0.4  # of IMAGE_BYTES

SCRIPT = """
import json, resource, sys
import numpy as np

def rss():  # peak RSS in bytes: Linux's VmHWM (ru_maxrss survives exec: it would start at pytest's peak)
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

import dask, dask.array as da
import npconv, npconv.dask, npconv.functional as F
imports = rss()
npconv.set_num_threads(1)  # one thread per task: the workspaces do not grow with the machine's cores
side, chunk, channels = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
w = np.random.default_rng(1).standard_normal((channels, channels, 3, 3)).astype(np.float32)
b = np.linspace(-1, 1, channels, dtype=np.float32)
settings = dict(padding=1, padding_mode="reflect")

def image():  # the same values on every call: one seed, one chunking
    rng = da.random.default_rng(7)
    return rng.standard_normal((1, channels, side, side), dtype=np.float32, chunks=(1, channels, chunk, chunk))

with dask.config.set(scheduler="threads", num_workers=2):
    small = image()[:, :, :2 * chunk, :2 * chunk]  # warm-up: Numba compiles, pools fill
    npconv.dask.conv2d(small, w, b, **settings).sum(dtype=np.float64).compute()
    base = rss()
    y = npconv.dask.conv2d(image(), w, b, **settings)
    total, absolute = dask.compute(y.sum(dtype=np.float64), abs(y).sum(dtype=np.float64))
    peak = rss()

x = image()
band_total = 0.0
for r0 in range(0, side, chunk):  # in memory, band by band: rows [r0, r1) of the output
    r1 = min(r0 + chunk, side)
    lo, hi = int(r0 == 0), int(r1 == side)  # the reflect pad only at the true edges
    rows = x[:, :, r0 - 1 + lo:r1 + 1 - hi].compute(scheduler="threads")
    band_total += float(F.conv2d(rows, w, b, padding=((lo, hi), (1, 1)), padding_mode="reflect").sum(dtype=np.float64))

crops = []
for (r0, r1), (c0, c1) in (((0, 20), (side - 20, side)), ((chunk - 7, chunk + 9), (3 * chunk - 5, 3 * chunk + 6))):
    got = y[:, :, r0:r1, c0:c1].compute(scheduler="threads")
    lo_r, hi_r, lo_c, hi_c = int(r0 == 0), int(r1 == side), int(c0 == 0), int(c1 == side)
    window = x[:, :, r0 - 1 + lo_r:r1 + 1 - hi_r, c0 - 1 + lo_c:c1 + 1 - hi_c].compute(scheduler="threads")
    want = F.conv2d(window, w, b, padding=((lo_r, hi_r), (lo_c, hi_c)), padding_mode="reflect")
    crops.append(float(np.abs(got - want).max() / np.abs(want).max()))
print(json.dumps(dict(imports=imports, base=base, peak=peak, total=float(total), absolute=float(absolute),
                      band_total=band_total, crops=crops, dtype=str(y.dtype), shape=list(y.shape))))
"""


def test_a_large_lazy_image_is_convolved_and_reduced_in_a_fraction_of_its_memory():
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2 ** 20))  # see the module's docstring
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(SIDE), str(CHUNK), str(CHANNELS)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    mib = 2 ** 20
    over = report["peak"] - report["base"]
    print(f"\nnpconv.dask memory: image {IMAGE_BYTES / mib:.0f} MiB; RSS after imports "
          f"{report['imports'] / mib:.0f} MiB, after warm-up {report['base'] / mib:.0f} MiB, peak "
          f"{report['peak'] / mib:.0f} MiB: {over / mib:.0f} MiB over the warm-up "
          f"({over / IMAGE_BYTES:.0%} of the image; bound {BOUND:.0%})")
    assert (report["shape"], report["dtype"]) == ([1, CHANNELS, SIDE, SIDE], "float32")
    assert over < BOUND * IMAGE_BYTES, f"peak {over / mib:.0f} MiB over the baseline"
    # float32 outputs summed in float64: each term is off by at most ~1e-6 of its size
    assert abs(report["total"] - report["band_total"]) <= 1e-5 * report["absolute"], report
    assert max(report["crops"]) <= 1e-5, report["crops"]
