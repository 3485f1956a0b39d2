"""Window gathering: every padding mode read in place, and col2im as im2col's adjoint."""

import tracemalloc

import numpy as np
import pytest

from npconv.algorithms.reference import NUMPY_PAD_MODES
from npconv.windows import col2im, im2col


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("stride,dilation,pads", [((1, 1), (1, 1), ((2, 2), (1, 3))),
                                                  ((2, 3), (2, 1), ((3, 1), (0, 2))),
                                                  ((3, 2), (1, 2), ((4, 4), (4, 4)))])
@pytest.mark.parametrize("k", [(3, 2), (5, 6)])  # the second has more taps than windows
def test_im2col_equals_windows_of_a_padded_copy(rng, mode, stride, dilation, pads, k):
    x = rng.standard_normal((2, 3, 5, 6))
    padded = np.pad(x, [(0, 0), (0, 0), *pads], mode=NUMPY_PAD_MODES[mode])
    out = [(p - d * (kk - 1) - 1) // s + 1 for p, kk, d, s in zip(padded.shape[2:], k, dilation, stride)]
    cols = im2col(x, k, stride, dilation, pads, out, mode)
    for i in range(k[0]):
        for j in range(k[1]):
            window = padded[:, :, i * dilation[0]::stride[0], j * dilation[1]::stride[1]][:, :, :out[0], :out[1]]
            np.testing.assert_array_equal(cols[:, :, i, j], window)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
def test_im2col_makes_no_padded_copy(rng, mode):
    x = rng.standard_normal((4, 16, 64, 64))
    out = np.empty((4, 16, 3, 3, 64, 64))
    tracemalloc.start()
    im2col(x, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), (64, 64), mode, out=out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes / 100, f"{peak} bytes allocated gathering {x.nbytes} bytes of input"


def test_col2im_is_the_adjoint_of_im2col(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    args = ((3, 2), (2, 1), (1, 2), ((1, 1), (2, 2)), (4, 4))
    cols = im2col(x, *args)
    other = rng.standard_normal(cols.shape)
    back = col2im(other, x.shape[2:], args[1], args[2], args[3])
    assert np.isclose(np.vdot(cols, other), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel,out", [((3, 2), (4, 4)), ((6, 5), (2, 2))])  # taps outer / positions outer
def test_col2im_is_the_adjoint_of_im2col_in_every_mode(rng, mode, kernel, out):
    x = rng.standard_normal((2, 3, 7, 6))
    args = (kernel, (2, 1), (1, 1), ((2, 1), (3, 2)), out)
    cols = im2col(x, *args, mode)
    other = rng.standard_normal(cols.shape)
    back = col2im(other, x.shape[2:], args[1], args[2], args[3], mode)
    assert np.isclose(np.vdot(cols, other), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_reads_past_end_are_zeros_in_every_mode(rng, mode):
    """Windows overhanging the padded input (Winograd's last tiles) read zeros past ``ends``."""
    x = rng.standard_normal((1, 2, 7, 6))
    pads, kernel, stride, out = ((1, 1), (1, 1)), (6, 6), (4, 4), (2, 2)
    cols = im2col(x, kernel, stride, (1, 1), pads, out, mode, ends=(8, 7))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1 + 4), (1, 1 + 4)), mode=NUMPY_PAD_MODES[mode])
    padded[:, :, 9:] = 0
    padded[:, :, :, 8:] = 0
    for t in np.ndindex(*kernel):
        for o in np.ndindex(*out):
            assert cols[(0, slice(None)) + t + o].tolist() == padded[0, :, o[0] * 4 + t[0], o[1] * 4 + t[1]].tolist()
