"""Requests too large for this machine are refused before any work, naming the bytes.

Linux overcommits, so without the check a huge ``np.empty`` succeeds and the kernel kills
the process later, when the pages are touched.  Each case below would need terabytes; the
refusal must come at once, as an error that is both a MemoryError and a ValueError, with the
exact byte count, and with next to no memory allocated on the way.
"""

import math
import time
import tracemalloc

import numpy as np
import pytest

import npconv
import npconv.functional as F
from npconv.memory import AllocationRefused, available_bytes, check_allocation, human_bytes

TINY = np.ones((1, 1, 1, 1), np.float32)
BIG = 10 ** 6

CASES = {  # name: (call, the refused array's shape, its dtype)
    "conv2d output": (lambda: F.conv2d(TINY, TINY, padding=BIG), (1, 1, 2 * BIG + 1, 2 * BIG + 1), np.float32),
    "conv_transpose2d output": (lambda: F.conv_transpose2d(np.ones((1, 1, 100, 100)), np.ones((1, 1, 1, 1)),
                                                           stride=BIG), (1, 1, 99 * BIG + 1, 99 * BIG + 1), np.float64),
    "conv3d output": (lambda: F.conv3d(np.ones((1, 1, 1, 1, 1)), np.ones((8, 1, 1, 1, 1)), padding=20_000),
                      (1, 8) + (40_001,) * 3, np.float64),
    "conv2d_input result": (lambda: npconv.grad.conv2d_input((1, 1, BIG, BIG), np.ones((1, 1, 1, 1)),
                                                             np.ones((1, 1, 1, 1)), stride=BIG), (1, 1, BIG, BIG), np.float64),
    "fold output": (lambda: F.fold(np.ones((1, 1, 1)), (2 * BIG, 2 * BIG), 1, stride=2 * BIG),
                    (1, 1, 2 * BIG, 2 * BIG), np.float64),
    "pad output": (lambda: F.pad(np.ones((1, 1, 2, 2)), (BIG, BIG, BIG, BIG)), (1, 1, 2 * BIG + 2, 2 * BIG + 2), np.float64),
}


@pytest.mark.parametrize("name", CASES)
def test_enormous_request_is_refused_before_work(name):
    call, shape, dtype = CASES[name]
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    assert nbytes > available_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(AllocationRefused) as refusal:
        call()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(refusal.value)
    assert f"needs {nbytes} bytes" in message and human_bytes(nbytes) in message
    assert isinstance(refusal.value, MemoryError) and isinstance(refusal.value, ValueError)
    assert elapsed < 2 and peak < 16 * 2 ** 20  # refused at once, nothing large touched


def test_module_forward_refuses_too():
    layer = npconv.nn.Conv2d(1, 4, 1, padding=BIG)
    with pytest.raises(MemoryError, match=r"Conv2d output: shape \[1, 4, 2000001, 2000001\]"):
        layer(np.ones((1, 1, 1, 1), np.float32))


def test_check_allocation_passes_what_fits():
    assert check_allocation("x", (1024, 1024), np.float64) == 8 * 2 ** 20
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(100) == "100 bytes"
    assert human_bytes(4 * 2 ** 60) == "4 EiB"
