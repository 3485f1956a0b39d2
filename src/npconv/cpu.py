"""The CPU and its runtimes: environment variables that make npconv faster, set only when asked.

Importing npconv changes no environment variable.  Three settings help on some machines; they
must be in the environment before the library that reads them loads, so npconv cannot apply
them for you after the fact.  :func:`recommended_environment` says which apply here and
:func:`tune_environment` sets them (only those not set already); for every library to see
them, set them in the shell instead (``npconv environment`` prints the lines for this
machine)::

    eval "$(npconv environment)"; python train.py

- ``OPENBLAS_CORETYPE=SKYLAKEX`` on an AMD CPU with the AVX-512 subsets SkylakeX kernels use.
  OpenBLAS picks its kernels when its library loads.  The OpenBLAS bundled with NumPy and SciPy
  (0.3.31) does not know AMD's Zen 5 and falls back to its Haswell (AVX2) kernels, at half the
  speed of its SkylakeX (AVX-512) kernels on the same CPU: sgemm 2048^3 210 vs 420-450 GFLOP/s
  measured on this project's 2-core machines.  NumPy loads its OpenBLAS when it is imported,
  and ``import npconv`` loads SciPy's (through ``scipy.fft``), so this one must be in the
  environment before Python starts: ``eval "$(npconv environment)"`` prints and applies the
  advice for this machine in a shell; :func:`tune_environment` cannot reach it any more.
  ``NPCONV_KEEP_BLAS=1`` keeps this one out of the advice.
- ``OMP_WAIT_POLICY=PASSIVE``.  Numba's parallel kernels run on GNU OpenMP, whose idle workers
  spin for a while after each kernel.  On two cores that spinning took the cores from the BLAS
  and NumPy work that follows (measured 10-40x slower calls after a compiled depthwise layer).
  OpenMP reads the policy when it loads: Numba's runtime loads at the first compiled parallel
  kernel, so :func:`tune_environment` right after ``import npconv`` reaches it; a runtime
  already loaded (torch's, when torch was imported first) keeps spinning.
- ``OPENBLAS_THREAD_TIMEOUT=4``.  OpenBLAS's workers spin for 2^28 cycles (about 0.1 s) after
  each GEMM before they sleep; a network alternates GEMMs with compiled kernels and NumPy
  passes, which that spinning slowed (ResNet-18 at batch 8, fused, 2 cores: 285 ms with the
  default, 220 with 2^4 cycles; MobileNetV2 195 vs 160; ConvNeXt-T at batch 1, 139 vs 119;
  medians of 7 runs in 3 processes each).  OpenBLAS reads it when it loads, like the coretype.

This module imports nothing heavy.
"""

from __future__ import annotations

import functools
import os
import platform

AVX512_FOR_SKYLAKEX = ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd")


def _cpuinfo_field(name: str) -> str:
    """The first ``name`` field of /proc/cpuinfo (its first processor); "" where there is none."""
    try:
        with open("/proc/cpuinfo") as info:
            text = info.read(20000)
    except OSError:
        return ""
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() == name and ":" in line:
            return line.split(":", 1)[1].strip()
    return ""


def cpu_flags() -> tuple[str, set[str]]:
    """(vendor, flags) from /proc/cpuinfo; ("", set()) where it cannot be read."""
    return _cpuinfo_field("vendor_id"), set(_cpuinfo_field("flags").split())


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name, read once per process: /proc/cpuinfo's "model name" (Linux on x86),
    else :func:`platform.processor`, else the machine type (``"x86_64"``, ``"arm64"``).

    The autotune cache keys its choices by it, and the benchmark's chart names it.
    """
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def openblas_coretype_advice(environ=os.environ) -> str | None:
    """"SKYLAKEX" where OpenBLAS would pick AVX2 on an AVX-512 AMD CPU and neither
    ``OPENBLAS_CORETYPE`` nor ``NPCONV_KEEP_BLAS`` is set in ``environ``; else None."""
    if "OPENBLAS_CORETYPE" in environ or environ.get("NPCONV_KEEP_BLAS"):
        return None
    vendor, flags = cpu_flags()
    if vendor == "AuthenticAMD" and all(flag in flags for flag in AVX512_FOR_SKYLAKEX):
        return "SKYLAKEX"
    return None


def tune_openblas_coretype(environ=os.environ) -> str | None:
    """Set ``OPENBLAS_CORETYPE=SKYLAKEX`` in ``environ`` where :func:`openblas_coretype_advice`
    gives it; returns what it set (None: nothing)."""
    coretype = openblas_coretype_advice(environ)
    if coretype is not None:
        environ["OPENBLAS_CORETYPE"] = coretype
    return coretype


def recommended_environment(environ=os.environ) -> dict[str, str]:
    """The variables npconv advises on this machine that ``environ`` does not set yet (see the
    module docstring for why each one); reads, changes nothing."""
    advice = {}
    coretype = openblas_coretype_advice(environ)
    if coretype is not None:
        advice["OPENBLAS_CORETYPE"] = coretype
    if "OMP_WAIT_POLICY" not in environ:
        advice["OMP_WAIT_POLICY"] = "PASSIVE"
    if "OPENBLAS_THREAD_TIMEOUT" not in environ and "GOTO_THREAD_TIMEOUT" not in environ:
        advice["OPENBLAS_THREAD_TIMEOUT"] = "4"
    return advice


def tune_environment(environ=os.environ) -> dict[str, str]:
    """Set :func:`recommended_environment`'s variables in ``environ`` (never one already set);
    returns those it set.  Call it before the libraries it steers load (right after
    ``import npconv``, before the first convolution); it reaches SciPy's OpenBLAS and Numba's
    OpenMP runtime, not NumPy's OpenBLAS (loaded with NumPy) nor a runtime already loaded."""
    advice = recommended_environment(environ)
    environ.update(advice)
    return advice

