"""The complex forward grid (issue 19): npconv.functional on complex64/complex128 against two
oracles.

Oracle 1 is PyTorch's own complex convolution, where torch 2.13's CPU build has the kernel
(a NotImplementedError or RuntimeError from torch drops a case to oracle 2 alone).  Oracle 2,
on every case, is the complex result assembled from four real float64 torch convolutions of
the parts (re = conv(xr, wr) - conv(xi, wi), im = conv(xr, wi) + conv(xi, wr)); padding modes
other than zeros and npconv's extensions pad the parts with torch's F.pad first, as PyTorch's
Conv modules do (tests/helpers.py's ``torch_conv``).  The grid is the real one of
tests/test_torch_parity.py (every dims x channels x geometry, 300 cases), each in complex64 or
complex128.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv
import npconv.functional as F
from npconv import ConvSpec, select
from npconv.arrays import as_channels_last, is_channels_last

from conftest import assert_matches
from helpers import (CHANNELS, CONV_GEOMETRIES, SPATIAL, TRANSPOSED_GEOMETRIES, grid_operands, torch_conv,
                     torch_conv_transpose)

COMPLEX = {"c64": np.complex64, "c128": np.complex128}
# transposed: 'valid' (no crop) too, which torch's conv_transpose spells padding=0
GRID_TRANSPOSED = dict(TRANSPOSED_GEOMETRIES, **{"k3-valid-s2-op1": dict(k=3, padding="valid", stride=2,
                                                                         output_padding=1)})


def complex_grid(geometries):
    """parametrize arguments over every (dims, channels, geometry), each in one complex dtype
    drawn by a seeded choice (half the cartesian product, each dtype on about half the cases):
    ``index,case``."""
    draw = np.random.default_rng(19)
    cases = list(enumerate((n, channels, geometry, str(draw.choice(list(COMPLEX)))) for n in SPATIAL
                           for channels in CHANNELS for geometry in geometries))
    return dict(argnames="index,case", argvalues=cases, ids=[f"{n}d-{c}-{g}-{d}" for _, (n, c, g, d) in cases])


def complex_operands(n, channels, geometry, dtype, transposed, index):
    """A grid case's (x, w, b, groups, params) with random real AND imaginary parts."""
    x, w, b, groups, params = grid_operands(n, channels, geometry, np.float64, transposed, index)
    rng = np.random.default_rng(100_000 + index)
    with_imag = [None if a is None else (a + 1j * rng.standard_normal(a.shape)).astype(dtype) for a in (x, w, b)]
    return (*with_imag, groups, params)


def torch_params(params, transposed):
    """torch's spelling of a grid case's params (conv_transpose takes no padding string)."""
    if transposed and params.get("padding") == "valid":
        return dict(params, padding=0)
    return params


def four_real_oracle(x, w, b, groups, params, n, transposed):
    """The complex result from four real float64 torch convolutions of the parts, plus the bias."""
    oracle = torch_conv_transpose if transposed else torch_conv
    params = torch_params(params, transposed)

    def run(a, c):
        return oracle(np.array(a, np.float64), np.array(c, np.float64),
                      None, groups, params, n).numpy()
    xr, xi, wr, wi = np.real(x), np.imag(x), np.real(w), np.imag(w)
    out = (run(xr, wr) - run(xi, wi)) + 1j * (run(xr, wi) + run(xi, wr))
    if b is not None:
        out = out + np.asarray(b, np.complex128).reshape((-1,) + (1,) * n)
    return out


def torch_complex_oracle(x, w, b, groups, params, n, transposed):
    """torch's own complex convolution, or None where torch's CPU build has no such kernel."""
    oracle = torch_conv_transpose if transposed else torch_conv
    try:
        return oracle(x, w, b, groups, torch_params(params, transposed), n).numpy()
    except (NotImplementedError, RuntimeError):
        return None


def check_both_oracles(got, x, w, b, groups, params, n, transposed, batched, dtype):
    want = four_real_oracle(x, w, b, groups, params, n, transposed)
    assert_matches(got, want if batched else want[0], dtype)
    from_torch = torch_complex_oracle(x, w, b, groups, params, n, transposed)
    if from_torch is not None:
        assert_matches(got, from_torch if batched else from_torch[0], dtype)


@pytest.mark.parametrize(**complex_grid(CONV_GEOMETRIES))
def test_complex_conv_matches_torch_and_four_real_convolutions(index, case):
    n, channels, geometry, dtype_name = case
    dtype = COMPLEX[dtype_name]
    x, w, b, groups, params = complex_operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    batched = index % 3 != 0
    got = getattr(F, f"conv{n}d")(x if batched else x[0], w, b, groups=groups, **params)
    check_both_oracles(got, x, w, b, groups, params, n, False, batched, dtype)


@pytest.mark.parametrize(**complex_grid(GRID_TRANSPOSED))
def test_complex_conv_transpose_matches_torch_and_four_real_convolutions(index, case):
    n, channels, geometry, dtype_name = case
    dtype = COMPLEX[dtype_name]
    x, w, b, groups, params = complex_operands(n, channels, GRID_TRANSPOSED[geometry], dtype, True, index)
    batched = index % 3 != 1
    got = getattr(F, f"conv_transpose{n}d")(x if batched else x[0], w, b, groups=groups, **params)
    check_both_oracles(got, x, w, b, groups, params, n, True, batched, dtype)


# ---- mixed real and complex operands: NumPy's promotion -------------------------------------
MIXED = {  # (x dtype, w dtype, bias dtype or None)
    "f32-x-c64-w": (np.float32, np.complex64, None),
    "c64-x-f32-w-f32-b": (np.complex64, np.float32, np.float32),
    "f64-x-c64-w": (np.float64, np.complex64, np.float64),
    "c64-x-f64-w": (np.complex64, np.float64, None),
    "f32-x-f32-w-c64-b": (np.float32, np.float32, np.complex64),
    "f64-x-f64-w-c128-b": (np.float64, np.float64, np.complex128),
    "f16-x-c64-w": (np.float16, np.complex64, None),
    "c128-x-f16-w-c64-b": (np.complex128, np.float16, np.complex64),
}


def _random(rng, shape, dtype):
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("dtypes", MIXED.values(), ids=MIXED.keys())
def test_mixed_real_and_complex_operands_promote_as_numpy(dtypes, n, transposed):
    rng = np.random.default_rng(n + 2 * transposed)
    x_dtype, w_dtype, b_dtype = dtypes
    x = _random(rng, (2, 4) + (7,) * n, x_dtype)
    w = _random(rng, (4, 3) + (3,) * n if transposed else (6, 2) + (3,) * n, w_dtype)
    b = None if b_dtype is None else _random(rng, (6,), b_dtype)
    params = dict(stride=2, padding=1, output_padding=1) if transposed else dict(stride=2, padding=1, dilation=2)
    face = getattr(F, f"conv_transpose{n}d" if transposed else f"conv{n}d")
    got = face(x, w, b, groups=2, **params)
    expected = np.result_type(*[a for a in (x, w, b) if a is not None])
    assert got.dtype == expected
    want = four_real_oracle(x, w, b, 2, params, n, transposed)
    assert_matches(got, want, expected if expected.kind == "c" else np.complex64)


# ---- unfold, fold, pad ---------------------------------------------------------------------
BLOCK_SETTINGS = [dict(kernel_size=3), dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
                  dict(kernel_size=2, stride=2, padding=(1, 0))]


@pytest.mark.parametrize("dtype", COMPLEX.values(), ids=COMPLEX.keys())
@pytest.mark.parametrize("settings", BLOCK_SETTINGS, ids=["k3", "k23-d21-p1-s12", "k2-s2-p10"])
def test_complex_unfold_and_fold_match_torch_and_their_real_parts(settings, dtype):
    """torch 2.13 unfolds and folds complex; both are linear, so each part is also the real call
    on that part."""
    rng = np.random.default_rng(len(settings))
    x = _random(rng, (2, 3, 7, 8), dtype)
    cols = F.unfold(x, **settings)
    assert_matches(cols, TF.unfold(torch.from_numpy(x), **settings), dtype)
    parts = F.unfold(x.real.copy(), **settings) + 1j * F.unfold(x.imag.copy(), **settings)
    assert_matches(cols, parts, dtype)
    assert_matches(F.unfold(x[0], **settings), TF.unfold(torch.from_numpy(x[0]), **settings), dtype)
    blocks = _random(rng, cols.shape, dtype)
    folded = F.fold(blocks, (7, 8), **settings)
    assert_matches(folded, TF.fold(torch.from_numpy(blocks), (7, 8), **settings), dtype)
    parts = F.fold(blocks.real.copy(), (7, 8), **settings) + 1j * F.fold(blocks.imag.copy(), (7, 8), **settings)
    assert_matches(folded, parts, dtype)


PADS = {1: (2, 1), 2: (1, 2, 2, 0), 3: (1, 1, 0, 2, 2, 1)}


@pytest.mark.parametrize("dtype", COMPLEX.values(), ids=COMPLEX.keys())
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_complex_pad_matches_torch_in_every_mode(n, mode, dtype):
    rng = np.random.default_rng(n)
    x = _random(rng, (2, 3) + (4,) * n, dtype)
    for pads in (PADS[n], tuple(-1 if i == 0 else p for i, p in enumerate(PADS[n]))):  # a crop too
        got = F.pad(x, pads, mode=mode)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, TF.pad(torch.from_numpy(x), pads, mode=mode).numpy())
    if mode == "constant":  # a real value, as torch takes it
        np.testing.assert_array_equal(F.pad(x, PADS[n], value=2.5),
                                      TF.pad(torch.from_numpy(x), PADS[n], value=2.5).numpy())


def test_complex_pad_constant_takes_a_complex_value():
    """torch's pad takes a float value only; npconv fills a complex input with a complex one."""
    x = np.array([[1 + 1j, 2 - 1j]], np.complex64)
    got = F.pad(x, (1, 2), value=3 - 4j)
    np.testing.assert_array_equal(got, np.array([[3 - 4j, 1 + 1j, 2 - 1j, 3 - 4j, 3 - 4j]], np.complex64))
    assert got.dtype == np.complex64
    with pytest.raises(TypeError, match=r"value \(1\+2j\) is complex but the input is real \(float64\)"):
        F.pad(np.ones((1, 2)), (1, 1), value=1 + 2j)


# ---- layout, non-finite values, every algorithm ----------------------------------------------
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((2, 6, 9, 8), (8, 6, 3, 3), dict(padding=1)),
    ((2, 6, 9, 8), (6, 1, 3, 3), dict(padding=1, groups=6, padding_mode="reflect")),
    ((2, 4, 5, 6, 7), (5, 4, 1, 1, 1), {}),
])
def test_complex_channels_last_input_gives_channels_last_output(x_shape, w_shape, kwargs):
    rng = np.random.default_rng(len(x_shape))
    x = as_channels_last(_random(rng, x_shape, np.complex64))
    w = _random(rng, w_shape, np.complex64)
    got = npconv.conv(x, w, **kwargs)
    assert is_channels_last(got)
    n = len(x_shape) - 2
    want = four_real_oracle(x, w, None, kwargs.get("groups", 1), kwargs, n, False)
    assert_matches(got, want, np.complex64)


def _non_finite(a):
    return ~np.isfinite(a.real) | ~np.isfinite(a.imag)


@pytest.mark.parametrize("where", ["input", "weight"])
def test_nan_and_inf_in_a_complex_operand_reach_the_outputs_torch_gives(where):
    rng = np.random.default_rng(7)
    x = _random(rng, (1, 2, 8, 8), np.complex128)
    w = _random(rng, (3, 2, 3, 3), np.complex128)
    if where == "input":
        x[0, 0, 2, 2] = complex(np.nan, 1.0)
        x[0, 1, 6, 5] = complex(0.5, np.inf)
    else:
        w[1, 0, 1, 1] = complex(np.inf, 0.0)
    got = F.conv2d(x, w, padding=1)
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    np.testing.assert_array_equal(_non_finite(got), _non_finite(want))
    finite = ~_non_finite(want)
    assert finite.any() and np.allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12)


FORCED_CASES = {
    "2d-k3": ((2, 4, 9, 8), (6, 4, 3, 3), dict(padding=1)),
    "2d-depthwise-s2": ((2, 4, 9, 8), (4, 1, 3, 3), dict(stride=2, padding=1, groups=4)),
    "2d-pointwise": ((2, 4, 6, 5), (3, 4, 1, 1), {}),
    "1d-k31": ((2, 3, 120), (4, 3, 31), dict(padding=15)),
    "3d-k3": ((1, 2, 5, 6, 5), (3, 2, 3, 3, 3), dict(padding=1)),
    "2d-transposed-s2": ((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1, transposed=True, output_padding=1)),
    "1d-transposed": ((2, 4, 9), (4, 3, 5), dict(padding=1, transposed=True)),
}


@pytest.mark.parametrize("dtype", COMPLEX.values(), ids=COMPLEX.keys())
@pytest.mark.parametrize("case", FORCED_CASES.values(), ids=FORCED_CASES.keys())
def test_every_real_algorithm_serves_complex_through_the_parts(case, dtype):
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(len(x_shape) + w_shape[-1])
    x, w = _random(rng, x_shape, dtype), _random(rng, w_shape, dtype)
    transposed = kwargs.get("transposed", False)
    n = len(x_shape) - 2
    settings = {k: v for k, v in kwargs.items() if k not in ("transposed", "groups")}
    groups = kwargs.get("groups", 1)
    spec = ConvSpec.build(w_shape[2:], groups=groups, transposed=transposed, **settings)
    want = four_real_oracle(x, w, None, groups, settings, n, transposed)
    names = select.candidates(spec, x_shape, w_shape)
    assert names
    for name in names:
        with npconv.config(algorithm=name):
            got = npconv.conv(x, w, **kwargs)
        assert_matches(got, want, dtype, what=name)
