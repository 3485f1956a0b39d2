"""When a transform algorithm (FFT, Winograd) may compute a convolution, given its operands.

A direct algorithm (im2col + GEMM, the depthwise kernels) forms each output from its own
window's products, so a NaN or inf reaches exactly the outputs whose windows hold it, as in
PyTorch.  A transform mixes many inputs into each transformed value first: an FFT sums the
whole map into every frequency, Winograd a tile of (m + 2)^n inputs.  Then one NaN poisons
every output of the map or tile, an inf turns into NaN (inf - inf), finite values near the
top of the range overflow in the sums although every true output is finite, and values near
the bottom (subnormal) lose the bits the transforms' fractions shift out (F(4, 3) on float32
inputs of 1e-40 erred 7.3e-5 of the largest output; the promise is 1e-5).

So the planner hands those algorithms only operands that are finite and well inside their
dtype's range (:func:`transform_safe`), at the cost of one max and one min pass over each.

>>> import numpy as np
>>> transform_safe(np.ones(4, np.float32), np.ones(4, np.float32), terms=100)
True
>>> transform_safe(np.array([1, np.nan], np.float32), np.ones(4, np.float32), terms=100)
False
>>> transform_safe(np.full(4, 1e36, np.float32), np.full(4, 1e-3, np.float32), terms=400)
False
"""

from __future__ import annotations

import math

import numpy as np

# room left at both ends of the range: the transforms' constants (Winograd's up to 5.25,
# the FFT's twiddles) and rounding must not reach max or fall below the normal numbers
HEADROOM = 2.0 ** 10


def magnitude(array) -> float:
    """The largest |value| (NaN if any value is NaN, inf if any is infinite; 0 when empty)."""
    if array.size == 0:
        return 0.0
    if np.iscomplexobj(array):  # the larger part: within sqrt(2) of the largest modulus
        parts = magnitude(array.real), magnitude(array.imag)
        return math.nan if math.isnan(parts[0]) or math.isnan(parts[1]) else max(parts)
    top, bottom = float(np.max(array)), float(np.min(array))
    if math.isnan(top) or math.isnan(bottom):
        return math.nan
    return max(top, -bottom)


def transform_safe(x, w, terms: int) -> bool:
    """True when ``x`` and ``w`` are finite and sums of ``terms`` of their values and products
    stay inside their dtype's range with :data:`HEADROOM` to spare at both ends."""
    ax, aw = magnitude(x), magnitude(w)
    if not (math.isfinite(ax) and math.isfinite(aw)):
        return False
    if ax == 0 or aw == 0:
        return True
    info = np.finfo(np.result_type(x, w))
    top, bottom = float(info.max) / HEADROOM, float(info.tiny) * HEADROOM
    largest = max(ax, aw, ax * aw) * terms
    return min(ax, aw, ax * aw) >= bottom and largest <= top


def transform_terms(x_shape, w_shape) -> int:
    """A bound on how many values a transform sums: the input map's size times the
    kernel's size times the channels of a group (the FFT's worst case; Winograd sums fewer)."""
    return math.prod(x_shape[2:]) * math.prod(w_shape[1:])


def quiet():
    """NumPy's floating-point warnings off for the block: a NaN or inf in the operands makes
    GEMMs and sums warn 'invalid value', while PyTorch (whose numbers npconv returns) is silent."""
    return np.errstate(all="ignore")
