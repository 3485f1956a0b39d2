"""The CPU and its BLAS: steer OpenBLAS to its AVX-512 kernels where it would not pick them.

OpenBLAS picks its kernels when its library loads.  The OpenBLAS bundled with NumPy and SciPy
(0.3.31) does not know AMD's Zen 5 and falls back to its Haswell (AVX2) kernels, at half the
speed of its SkylakeX (AVX-512) kernels on the same CPU: sgemm 2048^3 210 vs 420-450 GFLOP/s
measured on this project's 2-core machines.  So, when npconv is imported:

- if ``OPENBLAS_CORETYPE`` is unset, the CPU is AMD and has the AVX-512 subsets SkylakeX
  kernels use, npconv sets ``OPENBLAS_CORETYPE=SKYLAKEX`` (set ``NPCONV_KEEP_BLAS=1``, or the
  variable yourself, to opt out);
- SciPy's OpenBLAS is a separate library loaded on first use, so it takes the setting even
  when NumPy was imported before npconv; :func:`npconv.blas.gemm` calls whichever of the two
  libraries runs the wider kernels.

This module imports nothing heavy: it runs before NumPy is imported.
"""

from __future__ import annotations

import functools
import os

AVX512_FOR_SKYLAKEX = ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd")


def cpu_flags() -> tuple[str, set[str]]:
    """(vendor, flags) from /proc/cpuinfo; ("", set()) where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as info:
            text = info.read(20000)
    except OSError:
        return "", set()
    vendor = flags = ""
    for line in text.splitlines():
        if line.startswith("vendor_id") and not vendor:
            vendor = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1]
    return vendor, set(flags.split())


def tune_openblas_coretype(environ=os.environ) -> str | None:
    """Set OPENBLAS_CORETYPE=SKYLAKEX where OpenBLAS would pick AVX2 on an AVX-512 AMD CPU."""
    if "OPENBLAS_CORETYPE" in environ or environ.get("NPCONV_KEEP_BLAS"):
        return None
    vendor, flags = cpu_flags()
    if vendor == "AuthenticAMD" and all(flag in flags for flag in AVX512_FOR_SKYLAKEX):
        environ["OPENBLAS_CORETYPE"] = "SKYLAKEX"
        return "SKYLAKEX"
    return None


