"""Winograd F(2, 3) and F(4, 3): the transforms' identity, accuracy at layer sizes in float32
and float64 against PyTorch (computed in float64), every padding mode, 1-3 dims, groups, and
chunking over tile rows under a small workspace cap."""

import numpy as np
import pytest
import torch

import npconv
from npconv import select, workspace
from npconv.algorithms import winograd
from npconv.spec import ConvSpec

from conftest import assert_matches, relative_error

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}


def _torch_float64(x, w, padding, groups, mode):
    n = w.ndim - 2
    tx, tw = torch.from_numpy(x).double(), torch.from_numpy(w).double()
    if mode != "zeros":
        tx = torch.nn.functional.pad(tx, (padding,) * (2 * n), mode=mode)
        padding = 0
    return TORCH_CONV[n](tx, tw, padding=padding, groups=groups).numpy()


@pytest.mark.parametrize("m", [2, 4])
def test_transforms_compute_a_correlation_exactly(m, rng):
    a_t, g, b_t = winograd.transforms(m)
    assert a_t.shape == (m, m + 2) and g.shape == (m + 2, 3) and b_t.shape == (m + 2, m + 2)
    assert np.array_equal(b_t, np.round(b_t)), "B^T holds small integers"
    for _ in range(5):
        d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
        np.testing.assert_allclose(a_t @ ((g @ k) * (b_t @ d)), np.correlate(d, k, "valid"), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ["winograd_f2", "winograd_f4"])
@pytest.mark.parametrize("shape,c_out,groups", [((2, 64, 23, 30), 48, 1), ((1, 256, 14, 14), 256, 1),
                                                ((2, 64, 9, 10, 11), 32, 1), ((2, 64, 57), 64, 1),
                                                ((2, 64, 17, 19), 64, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_sized_accuracy(name, shape, c_out, groups, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((c_out, shape[1] // groups) + (3,) * (len(shape) - 2)) / 24).astype(dtype)
    if name == "winograd_f4" and len(shape) == 5:
        assert not select.ALGORITHMS[name].applies(ConvSpec.build((3, 3, 3), padding=1), shape, w.shape)
        name = "winograd_f2"
    select.set_algorithm(name)
    try:
        got = npconv.conv(x, w, padding=1, groups=groups)
    finally:
        select.set_algorithm(None)
    assert_matches(got, _torch_float64(x, w, 1, groups, "zeros"), dtype)
    if dtype == np.float32:  # well inside the 1e-5 budget, as the module promises
        assert relative_error(got, _torch_float64(x, w, 1, groups, "zeros")) < 5e-6


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("spatial", [(7,), (5, 9), (2, 5), (3, 4, 6)])  # F(4, 3) in 3-D: accurate, not planned
def test_every_padding_mode_with_overhanging_tiles(m, mode, spatial, rng):
    x = rng.standard_normal((2, 4) + spatial)
    w = rng.standard_normal((3, 4) + (3,) * len(spatial))
    spec = ConvSpec.build((3,) * len(spatial), padding=1, padding_mode=mode)
    got = winograd.forward(x, w, spec, spec.pads(spatial), spec.out_spatial(spatial), m=m)
    assert_matches(got, _torch_float64(x, w, 1, 1, mode), np.float64)


def test_tile_rows_are_chunked_under_a_small_cap(rng):
    x = rng.standard_normal((1, 64, 70, 66)).astype(np.float32)
    w = (rng.standard_normal((8, 64, 3, 3)) / 24).astype(np.float32)
    spec = ConvSpec.build((3, 3), padding=1)
    previous = workspace.set_workspace_limit(2**20)
    try:
        chunks = winograd._tile_chunks(1, (18, 17), 64 * 36 * 17 * 4)
        assert len(chunks) > 1 and chunks[-1][1].stop == 18
        got = winograd.forward(x, w, spec, spec.pads((70, 66)), (70, 66), m=4)
    finally:
        workspace.set_workspace_limit(previous)
    assert_matches(got, _torch_float64(x, w, 1, 1, "zeros"), np.float32)


def test_applies_only_to_3x3_stride_1_undilated():
    ok = ConvSpec.build((3, 3), padding=1)
    assert winograd.applies(ok, (1, 4, 8, 8), (4, 4, 3, 3))
    for spec in (ConvSpec.build((3, 3), stride=2), ConvSpec.build((3, 3), dilation=2), ConvSpec.build((3, 5)),
                 ConvSpec.build((3, 3), transposed=True)):
        assert not winograd.applies(spec, (1, 4, 8, 8), (4, 4) + spec.kernel_size)
