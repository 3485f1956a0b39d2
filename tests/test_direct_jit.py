"""The compiled direct convolution (npconv.algorithms.direct_jit), called directly, against PyTorch:
forward and weight gradient over 1-D/2-D/3-D geometries, strides, dilations, every padding mode,
groups and odd sizes, float32 and float64; its layouts, packing cache and scratch chunking."""

import numpy as np
import pytest
from helpers import on_ci
import torch

from npconv import compiled, workspace
from npconv.algorithms import direct_jit
from npconv.spec import ConvSpec
from npconv.windows import NUMPY_PAD_MODES

from conftest import assert_matches

# Numba is a runtime dependency: without it these tests skip on a developer machine, and fail under CI
pytestmark = pytest.mark.skipif(not direct_jit.available() and not on_ci(), reason="Numba is not installed")

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}

# name: (input shape, C_out, kernel, keyword arguments of ConvSpec.build)
GEOMETRIES = {
    "1d": ((2, 5, 23), 7, (3,), dict(padding=1)),
    "1d-stride3-dil2-circular": ((2, 4, 31), 6, (4,), dict(stride=3, dilation=2, padding=3, padding_mode="circular")),
    "2d-3x3": ((2, 8, 11, 13), 6, (3, 3), dict(padding=1)),
    "2d-odd-channels": ((1, 5, 9, 10), 3, (3, 3), dict(padding=1)),
    "2d-stride2": ((2, 6, 15, 14), 8, (3, 3), dict(stride=2, padding=1)),
    "2d-stem-7x7-s2": ((1, 3, 29, 30), 8, (7, 7), dict(stride=2, padding=3)),
    "2d-patchify-4x4-s4": ((2, 3, 16, 20), 8, (4, 4), dict(stride=4)),
    "2d-dilated-aspp": ((1, 16, 13, 13), 4, (3, 3), dict(padding=4, dilation=4)),
    "2d-grouped-4-per-group": ((2, 16, 9, 9), 16, (3, 3), dict(padding=1, groups=4)),
    "2d-grouped-odd": ((1, 6, 8, 7), 9, (3, 2), dict(padding=(1, 0), groups=3)),
    "2d-reflect": ((2, 4, 10, 9), 6, (3, 3), dict(padding=1, padding_mode="reflect")),
    "2d-replicate-5x5": ((1, 3, 9, 11), 5, (5, 5), dict(padding=2, padding_mode="replicate")),
    "2d-circular-s2": ((1, 4, 9, 12), 4, (3, 3), dict(stride=2, padding=2, padding_mode="circular")),
    "2d-asymmetric-pads": ((1, 4, 9, 12), 4, (3, 4), dict(padding=((0, 2), (3, 1)))),
    "2d-kernel-wider-than-pads": ((1, 2, 3, 4), 3, (3, 4), dict(padding=1)),
    "2d-1x1-s2": ((2, 8, 9, 9), 5, (1, 1), dict(stride=2)),
    "3d": ((1, 4, 5, 6, 7), 6, (3, 3, 3), dict(padding=1)),
    "3d-stride-reflect-groups": ((2, 4, 6, 7, 8), 6, (2, 3, 3), dict(stride=(1, 2, 2), padding=1, groups=2,
                                                                     padding_mode="reflect")),
}
DTYPES = {"float32": np.float32, "float64": np.float64}


def _operands(geometry, dtype, seed=0):
    x_shape, c_out, kernel, kwargs = GEOMETRIES[geometry]
    rng = np.random.default_rng(seed)
    spec = ConvSpec.build(kernel, ndim=len(kernel), **kwargs)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c_out, x_shape[1] // spec.groups) + kernel).astype(dtype)
    return x, w, spec


def _torch_padded(x, spec):
    """The input padded by the spec's mode and the pads left for torch's conv."""
    pads = spec.pads(x.shape[2:])
    if spec.padding_mode == "zeros":
        return torch.from_numpy(x), pads
    padded = np.pad(x, [(0, 0), (0, 0), *pads], mode=NUMPY_PAD_MODES[spec.padding_mode])
    return torch.from_numpy(padded), ((0, 0),) * spec.ndim


def _torch_conv(x, w, spec):
    """PyTorch's output, and a function of grad_output giving its weight gradient."""
    xt, pads = _torch_padded(x, spec)
    xt = torch.nn.functional.pad(xt, [p for pair in reversed(pads) for p in pair])  # asymmetric zeros
    wt = torch.from_numpy(w).requires_grad_()
    y = TORCH_CONV[spec.ndim](xt, wt, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)

    def weight_grad(gy):
        wt.grad = None
        y.backward(torch.from_numpy(gy), retain_graph=True)
        return wt.grad
    return y, weight_grad


def _run(x, w, spec, **kwargs):
    pads = spec.pads(x.shape[2:])
    return direct_jit.forward(x, w, spec, pads, spec.out_spatial(x.shape[2:]), **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_forward_and_weight_grad_match_torch(geometry, dtype):
    x, w, spec = _operands(geometry, DTYPES[dtype])
    assert direct_jit.applies(spec, x.shape, w.shape)
    want, weight_grad = _torch_conv(x, w, spec)
    assert_matches(_run(x, w, spec), want, DTYPES[dtype])
    gy = np.random.default_rng(1).standard_normal(tuple(want.shape)).astype(DTYPES[dtype])
    got = direct_jit.weight_grad(x, gy, spec, spec.pads(x.shape[2:]))
    assert_matches(got, weight_grad(gy), DTYPES[dtype])


@pytest.mark.parametrize("geometry", ["2d-3x3", "2d-stride2", "3d", "2d-grouped-4-per-group"])
def test_a_channels_last_input_is_read_in_place(geometry):
    x, w, spec = _operands(geometry, np.float32)
    channels_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    view = np.moveaxis(channels_last, -1, 1)  # the same values, (N, C, *in), channels innermost in memory
    assert direct_jit.reads_in_place(view, spec.groups) == (spec.groups == 1)
    if spec.groups == 1:
        assert np.shares_memory(direct_jit.to_kernel_layout(view, 1), channels_last)
    want, weight_grad = _torch_conv(x, w, spec)
    assert_matches(_run(view, w, spec), want, np.float32)
    gy = np.ones(tuple(want.shape), np.float32)
    assert_matches(direct_jit.weight_grad(view, gy, spec, spec.pads(x.shape[2:])), weight_grad(gy), np.float32)


def test_the_layout_conversion_is_group_major_channels_last():
    x = np.arange(2 * 6 * 3 * 4, dtype=np.float64).reshape(2, 6, 3, 4)
    xg = direct_jit.to_kernel_layout(x, 2)  # (N, G, D, H, W * cig)
    want = x.reshape(2, 2, 3, 3, 4).transpose(0, 1, 3, 4, 2).reshape(2, 2, 1, 3, 12)
    np.testing.assert_array_equal(xg, want)


def test_packed_weights_are_taken_and_reused_for_equal_arrays():
    x, w, spec = _operands("2d-3x3", np.float32)
    direct_jit.forget_packings()
    packed = direct_jit.pack(w)
    assert packed.shape == (w.shape[0], 1, 3, 3 * w.shape[1])
    np.testing.assert_array_equal(packed[2, 0, 1, 2 * w.shape[1] + 5], w[2, 5, 1, 2])
    np.testing.assert_array_equal(_run(x, w, spec, packed=packed), _run(x, w, spec))
    first = direct_jit.cached_pack(w, 1)
    assert direct_jit.cached_pack(w.copy(), 1) is first  # an equal array hits
    changed = w.copy()
    changed[0, 0, 0, 0] += 1
    assert direct_jit.cached_pack(changed, 1) is not first  # never stale
    assert direct_jit.cached_pack(w, 2) is not first  # groups are part of the key
    poisoned = w.copy()
    poisoned[0, 0, 0, 0] = np.nan
    assert direct_jit.cached_pack(poisoned, 1) is not direct_jit.cached_pack(poisoned, 1)  # NaN repacks
    w[0, 0, 0, 0] += 1  # the cache holds its own copy: a weight changed in place is packed again
    assert direct_jit.cached_pack(w, 1) is not first
    assert len(direct_jit._packings) <= direct_jit.CACHED_PACKINGS


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_source_tables_follow_numpys_padding(mode):
    size, lo, hi = 5, 3, 4
    table = direct_jit.source_table(size, lo, size + lo + hi, mode)
    options = dict(constant_values=-1) if mode == "zeros" else {}
    padded = np.pad(np.arange(size), (lo, hi), mode=NUMPY_PAD_MODES[mode], **options)
    np.testing.assert_array_equal(table, padded)


def test_nonfinite_inputs_land_where_torch_puts_them():
    x, w, spec = _operands("2d-stride2", np.float64)
    x[0, 1, 3, 4], x[1, 2, 0, 0], x[1, 0, 7, 13] = np.nan, np.inf, -np.inf
    want, weight_grad = _torch_conv(x, w, spec)
    got, want = _run(x, w, spec), want.detach().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    finite = np.isfinite(want)
    assert np.abs(got[finite] - want[finite]).max() <= 1e-12 * np.abs(want[finite]).max()
    gy = np.ones(want.shape)
    got_w, want_w = direct_jit.weight_grad(x, gy, spec, spec.pads(x.shape[2:])), weight_grad(gy).numpy()
    np.testing.assert_array_equal(np.isnan(got_w), np.isnan(want_w))


@pytest.mark.parametrize("grad", [False, True])
def test_a_small_cap_chunks_images_and_keeps_the_results(grad):
    rng = np.random.default_rng(2)
    spec = ConvSpec.build((3, 3), padding=1)
    x = rng.standard_normal((6, 32, 48, 48)).astype(np.float32)  # 288 KiB per image
    w = rng.standard_normal((8, 32, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((6, 8, 48, 48)).astype(np.float32)
    pads = spec.pads(x.shape[2:])

    def run():
        return direct_jit.weight_grad(x, gy, spec, pads) if grad else _run(x, w, spec)
    whole = run()
    least = (direct_jit.weight_grad_min_workspace if grad else direct_jit.min_workspace)(spec, x.shape, w.shape, 4)
    assert least < workspace.MIN_LIMIT
    previous = workspace.set_workspace_limit(workspace.MIN_LIMIT)
    try:
        assert 1 <= direct_jit._images_per_step(x, 1, workspace.limit()) < 6
        chunked = run()
    finally:
        workspace.set_workspace_limit(previous)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-4)


def test_min_workspace_counts_one_converted_image():
    spec = ConvSpec.build((3, 3), padding=1)
    x_shape, w_shape = (8, 64, 56, 56), (64, 64, 3, 3)
    least = direct_jit.min_workspace(spec, x_shape, w_shape, 4)
    assert 64 * 56 * 56 * 4 < least < 2 * 64 * 56 * 56 * 4


def test_applies_to_every_forward_convolution_but_not_transposed():
    assert direct_jit.applies(ConvSpec.build((3,), groups=2), (1, 4, 9), (4, 2, 3))
    assert not direct_jit.applies(ConvSpec.build((3, 3), transposed=True), (1, 4, 9, 9), (4, 4, 3, 3))


def test_without_numba_it_does_not_apply(monkeypatch):
    monkeypatch.setattr(compiled, "numba", None)
    assert not direct_jit.applies(ConvSpec.build((3, 3)), (1, 4, 9, 9), (4, 4, 3, 3))
    assert direct_jit.min_workspace(ConvSpec.build((3, 3)), (1, 4, 9, 9), (4, 4, 3, 3), 4) == 0
