"""Which route a complex convolution takes (npconv.select.complex_algorithm), and that every
route gives the four-real-convolution answer."""

import numpy as np
import pytest
import torch

import npconv
from npconv import ConvSpec, select
from npconv import functional as F


def complex_operands(x_shape, w_shape, dtype=np.complex64, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(x_shape) + 1j * rng.standard_normal(x_shape)).astype(dtype)
    w = (rng.standard_normal(w_shape) + 1j * rng.standard_normal(w_shape)).astype(dtype)
    return x, w


def four_real(x, w, padding):
    conv = torch.nn.functional.conv1d if x.ndim == 3 else torch.nn.functional.conv2d
    xr, xi, wr, wi = (torch.from_numpy(np.ascontiguousarray(p, np.float64)) for p in (x.real, x.imag, w.real, w.imag))
    real = conv(xr, wr, padding=padding) - conv(xi, wi, padding=padding)
    imag = conv(xr, wi, padding=padding) + conv(xi, wr, padding=padding)
    return real.numpy() + 1j * imag.numpy()


# (input, weight, padding, the route: the algorithm that takes the complex operands whole, or None)
ROUTES = {
    "3x3-64ch: Winograd's layer as one complex GEMM": ((2, 64, 12, 12), (64, 64, 3, 3), 1, "im2col_gemm"),
    "1x1: pointwise": ((2, 32, 8, 8), (16, 32, 1, 1), 0, "pointwise"),
    "1-D k=31, 16 channels: the complex FFT": ((1, 16, 512), (16, 16, 31), 15, "fft"),
    "1-D k=9, 16 channels: a GEMM": ((1, 16, 512), (16, 16, 9), 4, "im2col_gemm"),
    "7x7, 32 channels: the complex FFT": ((1, 32, 24, 24), (32, 32, 7, 7), 3, "fft"),
}


@pytest.mark.parametrize("case", ROUTES.values(), ids=ROUTES.keys())
def test_route_and_values(case):
    x_shape, w_shape, padding, route = case
    x, w = complex_operands(x_shape, w_shape)
    spec = ConvSpec.build(w_shape[2:], padding=padding)
    chosen = select.complex_algorithm(spec, x, w)
    assert (chosen.name if chosen else None) == route
    conv = F.conv1d if x.ndim == 3 else F.conv2d
    want = four_real(x, w, padding)
    got = conv(x, w, padding=padding)
    assert got.dtype == np.complex64
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_forcing_an_algorithm_is_kept():
    """Forced Winograd runs by parts (three real Winograd convolutions), not as a GEMM."""
    x, w = complex_operands((1, 32, 10, 10), (32, 32, 3, 3))
    spec = ConvSpec.build((3, 3), padding=1)
    with npconv.config(algorithm="winograd_f2"):
        assert select.complex_algorithm(spec, x, w) is None
        got = F.conv2d(x, w, padding=1)
    want = four_real(x, w, 1)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_complex_fft_rule_counts_stride_and_channels():
    assert select.complex_fft_pays(ConvSpec.build((31,)), (1, 16, 512), (16, 16, 31))
    assert not select.complex_fft_pays(ConvSpec.build((31,), stride=2), (1, 16, 512), (16, 16, 31))
    assert not select.complex_fft_pays(ConvSpec.build((3, 3)), (1, 64, 56, 56), (64, 64, 3, 3))
    assert select.complex_fft_pays(ConvSpec.build((7, 7)), (1, 64, 56, 56), (64, 64, 7, 7))


def test_nonfinite_operands_leave_the_transforms():
    """An inf in a complex operand (the imaginary part too) keeps the FFT out: the parts go direct."""
    x, w = complex_operands((1, 16, 512), (16, 16, 31))
    x[0, 0, 7] = complex(0, np.inf)
    spec = ConvSpec.build((31,), padding=15)
    assert select.complex_algorithm(spec, x, w) is None
    got = F.conv1d(x, w, padding=15)
    torch_got = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), padding=15).numpy()
    assert np.array_equal(np.isfinite(got), np.isfinite(torch_got))


@pytest.mark.parametrize("kernel", [(15, 15), (13, 13)], ids=["dense-15x15", "depthwise-13x13"])
def test_nan_in_the_imaginary_part_alone_keeps_the_fft_out(kernel):
    """A NaN only in an imaginary part must reach no more outputs than PyTorch's (the FFT would
    spread it over the whole map)."""
    depthwise = kernel == (13, 13)
    x, w = complex_operands((1, 4, 40, 40), (4, 1 if depthwise else 4) + kernel, np.complex128)
    x[0, 0, 3, 3] = complex(1.0, np.nan)
    groups, padding = (4 if depthwise else 1), kernel[0] // 2
    got = F.conv2d(x, w, padding=padding, groups=groups)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=padding,
                                      groups=groups).numpy()
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    finite = np.isfinite(want)
    assert np.abs(got[finite] - want[finite]).max() <= 1e-12 * np.abs(want[finite]).max()


def test_choose_algorithm_names_the_complex_route():
    """The public planner, asked about a complex dtype, names the route the complex operands take."""
    spec = ConvSpec.build((3, 3), padding=1)
    assert npconv.choose_algorithm(spec, (8, 64, 56, 56), (64, 64, 3, 3), np.float32) == "winograd_f4"
    assert npconv.choose_algorithm(spec, (8, 64, 56, 56), (64, 64, 3, 3), np.complex64) == "im2col_gemm"
    long = ConvSpec.build((31,), padding=15)
    assert npconv.choose_algorithm(long, (4, 16, 4096), (16, 16, 31), np.complex128) == "fft"
