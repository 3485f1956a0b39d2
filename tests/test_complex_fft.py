"""The FFT algorithm on complex operands in complex arithmetic (full ``fftn``/``ifft``, issue 19):
forward and depthwise weight gradient, both layouts (whole map, overlap-save blocks), against
the complex result assembled from four real PyTorch convolutions in float64; the kept kernel
spectra (reuse, in-place changes, real and complex apart), the workspace cap, and the planner
giving complex operands to the FFT whole."""

import dataclasses
import tracemalloc

import numpy as np
import pytest
import torch

import npconv
from npconv import algorithm_registry, complex_forms, select, workspace
from npconv.algorithms import fft, fft_spectra
from npconv.spec import ConvSpec

from conftest import assert_matches

F = torch.nn.functional
TOLERANCE = {np.dtype(np.complex64): 1e-5, np.dtype(np.complex128): 1e-12}
TORCH_MODES = {"zeros": "constant", "reflect": "reflect", "circular": "circular"}
CONV = {1: F.conv1d, 2: F.conv2d}
CONV_WEIGHT = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight}
DTYPES = [np.complex64, np.complex128]


@pytest.fixture(autouse=True)
def native(monkeypatch):
    """The FFT computes complex whole (the registry flag), with fresh scratch and spectra."""
    fft_entry = algorithm_registry.ALGORITHMS["fft"]
    monkeypatch.setitem(algorithm_registry.ALGORITHMS, "fft", dataclasses.replace(fft_entry, complex_native=True))
    workspace.release()
    fft.forget_kept_spectra()
    yield
    workspace.release()
    fft.forget_kept_spectra()


@pytest.fixture
def no_parts(monkeypatch):
    """Fail where a complex convolution would go by real parts instead of whole."""
    def refused(run, a, b):
        raise AssertionError("went by real parts, not native complex FFT")
    monkeypatch.setattr(complex_forms, "by_parts", refused)


def assert_close(got, want, dtype):
    dtype = np.dtype(dtype)
    assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= TOLERANCE[dtype], f"relative error {err:.3e} > {TOLERANCE[dtype]:.0e}"


def _complex(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _parts(a, pads, mode):
    """(real, imag) float64 tensors, padded in ``mode`` (the torch convolutions then pad nothing)."""
    flat = tuple(p for lo_hi in reversed(pads) for p in lo_hi)
    return tuple(F.pad(torch.from_numpy(np.ascontiguousarray(p, np.float64)), flat, mode=TORCH_MODES[mode])
                 for p in (a.real, a.imag))


def oracle_forward(x, w, pads, mode, **kw):
    """re = conv(xr, wr) - conv(xi, wi), im = conv(xr, wi) + conv(xi, wr), in float64."""
    conv = CONV[w.ndim - 2]
    (xr, xi), (wr, wi) = _parts(x, pads, mode), _parts(w, ((0, 0),) * (w.ndim - 2), "zeros")
    return (conv(xr, wr, **kw) - conv(xi, wi, **kw)).numpy() + 1j * (conv(xr, wi, **kw) + conv(xi, wr, **kw)).numpy()


def oracle_weight_grad(x, w_shape, gy, pads, mode, **kw):
    """The correlation of conj(x) with gy (PyTorch's convention) from four real weight gradients."""
    grad = CONV_WEIGHT[len(w_shape) - 2]
    (xr, xi), (gr, gi) = _parts(x, pads, mode), _parts(gy, ((0, 0),) * (gy.ndim - 2), "zeros")

    def rule(a, b):
        return grad(a, w_shape, b, **kw).numpy()
    return rule(xr, gr) + rule(xi, gi) + 1j * (rule(xr, gi) - rule(xi, gr))


# id: (x shape, w shape, stride, padding, dilation, groups, mode)
FORWARD_CASES = {
    "dense_2d": ((2, 3, 22, 22), (5, 3, 7, 7), 1, 3, 1, 1, "zeros"),
    "grouped_stride2": ((2, 4, 23, 23), (6, 2, 5, 5), 2, 2, 1, 2, "zeros"),
    "depthwise_dilation2_reflect": ((2, 4, 20, 20), (8, 1, 5, 5), 1, 4, 2, 4, "reflect"),
    "dense_1d_circular": ((2, 3, 60), (4, 3, 9), 1, 4, 1, 1, "circular"),
    "depthwise_1d_long": ((2, 4, 2000), (4, 1, 31), 1, 15, 1, 4, "zeros"),
}


def _spec(w_shape, stride, padding, dilation, groups, mode):
    return ConvSpec.build(w_shape[2:], stride, padding, dilation, groups, mode, ndim=len(w_shape) - 2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", FORWARD_CASES.values(), ids=FORWARD_CASES.keys())
def test_native_forward_matches_four_real_convolutions(case, dtype, fft_layout, no_parts):
    x_shape, w_shape, stride, padding, dilation, groups, mode = case
    rng = np.random.default_rng(0)
    x, w = _complex(rng, x_shape, dtype), _complex(rng, w_shape, dtype)
    pads = _spec(w_shape, stride, padding, dilation, groups, mode).pads(x_shape[2:])
    with npconv.config(algorithm="fft"):
        got = npconv.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    assert_close(got, oracle_forward(x, w, pads, mode, stride=stride, dilation=dilation, groups=groups), dtype)


# id: (x shape, channel multiplier, kernel, padding, dilation, mode): depthwise, stride 1 (the FFT's weight gradient)
GRAD_CASES = {
    "2d_zeros": ((2, 3, 21, 21), 1, 7, 3, 1, "zeros"),
    "2d_multiplier2_dilation2_reflect": ((2, 4, 20, 20), 2, 5, 4, 2, "reflect"),
    "1d_circular": ((2, 3, 50), 1, 9, 4, 1, "circular"),
    "1d_long": ((2, 2, 2000), 1, 31, 15, 1, "zeros"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", GRAD_CASES.values(), ids=GRAD_CASES.keys())
def test_native_weight_grad_matches_four_real_gradients(case, dtype, fft_layout, no_parts):
    x_shape, m, k, padding, dilation, mode = case
    c, nd = x_shape[1], len(x_shape) - 2
    w_shape = (c * m, 1) + (k,) * nd
    spec = _spec(w_shape, 1, padding, dilation, c, mode)
    rng = np.random.default_rng(1)
    x, gy = _complex(rng, x_shape, dtype), _complex(rng, (x_shape[0], c * m) + spec.out_spatial(x_shape[2:]), dtype)
    with npconv.config(algorithm="fft"):
        got = npconv.grad.conv_weight(x, w_shape, gy, padding=padding, dilation=dilation, groups=c, padding_mode=mode)
    want = oracle_weight_grad(x, w_shape, gy, spec.pads(x_shape[2:]), mode, dilation=dilation, groups=c)
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cap_forces_blocks_and_holds(dtype, no_parts):
    x_shape, w_shape = (1, 4, 192, 192), (4, 1, 15, 15)  # the whole map is preferred, 4-7 MiB
    spec = _spec(w_shape, 1, 7, 1, 4, "zeros")
    itemsize = np.dtype(dtype).itemsize
    cap = fft.min_workspace(spec, x_shape, w_shape, itemsize)  # what the planner checks for this dtype
    whole = fft.whole_plan(spec, x_shape, complex_operands=True)
    assert fft._whole_bytes(spec, x_shape, w_shape, itemsize, whole) > cap  # the whole map does not fit
    rng = np.random.default_rng(2)
    x, w = _complex(rng, x_shape, dtype), _complex(rng, w_shape, dtype)
    with npconv.config(algorithm="fft", workspace_limit=cap):
        assert fft._chosen_plan(spec, x_shape, w_shape, itemsize, complex_operands=True).blocked
        assert fft.planned_workspace(spec, x_shape, w_shape, itemsize, complex_operands=True) <= cap
        tracemalloc.start()
        got = npconv.conv(x, w, padding=7, groups=4)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak - got.nbytes <= cap + 2**20
    assert_close(got, oracle_forward(x, w, spec.pads(x_shape[2:]), "zeros", groups=4), dtype)


def _counting_spectra(monkeypatch):
    made = []
    original = fft._kernel_spectrum

    def counted(w, spec, lengths):
        made.append(w.dtype)
        return original(w, spec, lengths)
    monkeypatch.setattr(fft, "_kernel_spectrum", counted)
    return made


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kept_spectrum_reused_never_stale_and_apart_from_real(dtype, fft_layout, monkeypatch, no_parts):
    made = _counting_spectra(monkeypatch)
    rng = np.random.default_rng(3)
    x, w = _complex(rng, (2, 4, 30, 30), dtype), _complex(rng, (4, 1, 9, 9), dtype)
    pads = ((4, 4), (4, 4))
    with npconv.config(algorithm="fft"):
        first = npconv.conv(x, w, padding=4, groups=4)
        np.testing.assert_array_equal(npconv.conv(x, w, padding=4, groups=4), first)
        assert len(made) == 1
        w[1, 0, 2, 3] += 1 - 2j  # in place: same array, shape and strides
        changed = npconv.conv(x, w, padding=4, groups=4)
        assert len(made) == 2
        assert_close(changed, oracle_forward(x, w, pads, "zeros", groups=4), dtype)
        real_dtype = np.float64 if dtype == np.complex64 else np.float32  # float64 has complex64's itemsize
        xr, wr = x.real.astype(real_dtype), w.real.astype(real_dtype)
        real = npconv.conv(xr, wr, padding=4, groups=4)
        assert len(made) == 3 and made[-1] == real_dtype  # its own spectrum, not the complex one
    want = F.conv2d(torch.from_numpy(xr.astype(np.float64)), torch.from_numpy(wr.astype(np.float64)),
                    padding=4, groups=4)
    assert_matches(real, want.numpy().astype(real_dtype), real_dtype)
    kept = fft_spectra._spectra._entries()  # keyed ((key, shape, dtype, strides), memory)
    assert {layout[2] for layout, _ in kept} == {np.dtype(dtype).str, np.dtype(real_dtype).str}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_planner_gives_big_kernels_to_native_fft(dtype):
    rng = np.random.default_rng(4)
    x, w = _complex(rng, (1, 64, 28, 28), dtype), _complex(rng, (64, 1, 31, 31), dtype)  # RepLKNet's 31x31
    spec = _spec(w.shape, 1, 15, 1, 64, "zeros")
    assert select.complex_algorithm(spec, x, w) is algorithm_registry.ALGORITHMS["fft"]
    small = _spec((64, 1, 3, 3), 1, 1, 1, 64, "zeros")
    assert select.complex_algorithm(small, x, w[..., :3, :3]) is None  # not the FFT's: by parts
