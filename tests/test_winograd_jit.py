"""The compiled Winograd transforms (winograd_jit_kernels): forward against PyTorch (computed in
float64) over 1-3 dims, every padding mode, asymmetric pads, groups, odd sizes, both tile
sizes and dtypes; chunks that start inside a tile row under a tiny cap; the kept transformed
weight, which must never be stale; the index tables that carry the padding modes."""

import numpy as np
import pytest
from helpers import on_ci
import torch

from npconv import workspace
from npconv.algorithms import winograd
from npconv.spec import ConvSpec

from conftest import assert_matches

# Numba is a runtime dependency: without it these tests skip on a developer machine, and fail under CI
pytestmark = pytest.mark.skipif(not winograd.compiled() and not on_ci(), reason="Numba is not installed")

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}


@pytest.fixture(autouse=True)
def restore_cap():
    previous = workspace.limit()
    yield
    workspace.set_workspace_limit(previous)
    workspace.release()


def _torch_float64(x, w, pads, groups, mode):
    """PyTorch's answer in float64, any (lo, hi) pads in any mode."""
    flat = [p for lo_hi in reversed(pads) for p in lo_hi]  # F.pad: last dim first
    tx = torch.nn.functional.pad(torch.from_numpy(x).double(), flat, mode="constant" if mode == "zeros" else mode)
    return TORCH_CONV[w.ndim - 2](tx, torch.from_numpy(w).double(), groups=groups).numpy()


def _run(x, w, padding, mode="zeros", groups=1, m=4):
    spec = ConvSpec.build(w.shape[2:], padding=padding, padding_mode=mode, groups=groups)
    pads = spec.pads(x.shape[2:])
    return winograd.forward(x, w, spec, pads, spec.out_spatial(x.shape[2:]), m=m), pads


GEOMETRIES = {  # id: (input shape, C_out, padding, groups)
    "1d": ((2, 5, 13), 3, 1, 1),
    "1d-valid": ((1, 4, 9), 6, 0, 1),
    "2d-odd": ((2, 5, 9, 11), 6, 1, 1),
    "2d-asymmetric": ((1, 3, 7, 10), 4, ((2, 0), (0, 1)), 1),
    "2d-groups": ((2, 8, 10, 7), 12, 1, 4),
    "2d-tiny": ((1, 2, 2, 3), 2, 1, 1),
    "2d-wide": ((1, 4, 5, 41), 3, 1, 1),
    "3d": ((1, 4, 5, 6, 7), 5, 1, 1),
    "3d-groups": ((2, 6, 4, 5, 3), 4, ((1, 1), (0, 2), (1, 0)), 2),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("m", [2, 4], ids=["F2", "F4"])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_forward_matches_pytorch(geometry, mode, m, dtype, rng):
    shape, c_out, padding, groups = GEOMETRIES[geometry]
    n = len(shape) - 2
    if mode == "reflect" and min(shape[2:]) < 3:
        pytest.skip("reflect needs pads smaller than the input")
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((c_out, shape[1] // groups) + (3,) * n).astype(dtype)
    got, pads = _run(x, w, padding, mode, groups, m)
    assert_matches(got, _torch_float64(x, w, pads, groups, mode), dtype)


@pytest.mark.parametrize("m", [2, 4])
def test_layer_sized_float32_error_stays_near_1e6(m, rng):
    x = rng.standard_normal((2, 64, 30, 29)).astype(np.float32)
    w = (rng.standard_normal((48, 64, 3, 3)) / 24).astype(np.float32)
    got, pads = _run(x, w, 1, m=m)
    want = _torch_float64(x, w, pads, 1, "zeros")
    assert np.abs(got - want).max() / np.abs(want).max() < 5e-6


def test_non_contiguous_input(rng):
    x = rng.standard_normal((2, 6, 11, 9)).swapaxes(2, 3)  # (2, 6, 9, 11), strided
    w = rng.standard_normal((4, 6, 3, 3))
    got, pads = _run(x, w, 1, "reflect")
    assert_matches(got, _torch_float64(np.ascontiguousarray(x), w, pads, 1, "reflect"), np.float64)


@pytest.mark.parametrize("m", [2, 4])
def test_chunks_inside_a_tile_row_under_a_tiny_cap(m, rng):
    """At 1 MiB, 600 tiles of one row do not fit: boxes are runs of tile columns."""
    x = rng.standard_normal((2, 64, 6, 2400)).astype(np.float32)
    w = (rng.standard_normal((8, 64, 3, 3)) / 24).astype(np.float32)
    workspace.set_workspace_limit(2**20)
    spec = ConvSpec.build((3, 3), padding=1)
    per_tile = winograd._tile_bytes(spec, x.shape, w.shape, m, 4)
    tiles = (-(-6 // m), -(-2400 // m))
    boxes = winograd._tile_chunks(2, tiles, per_tile * tiles[1], 0.5, winograd._fixed_bytes(spec, w.shape, m, 4))
    assert boxes.dim == 2 and len(boxes) > 2 * tiles[0]
    got, pads = _run(x, w, 1, "circular", m=m)
    assert_matches(got, _torch_float64(x, w, pads, 1, "circular"), np.float32)


def test_numbas_job_buffers_are_counted_per_tile():
    spec = ConvSpec.build((3, 3), padding=1)
    per_tile = winograd._tile_bytes(spec, (1, 64, 56, 56), (32, 64, 3, 3), 4, 4)
    assert per_tile == 4 * 36 * (64 + 32 + 2 * winograd.numba.get_num_threads())


def test_source_tables_follow_the_padding_modes():
    spec = ConvSpec.build((3,), padding=2, padding_mode="reflect")
    (_, _, table) = winograd.source_tables(spec, (5,), ((2, 2),), (2,), 4)
    # padded positions 0..5 and 4..9 of a 5-long input reflected by 2; 9 is past the padded input
    assert table.tolist() == [[2, 1, 0, 1, 2, 3], [2, 3, 4, 3, 2, -1]]
    zeros = winograd.source_tables(ConvSpec.build((3,), padding=1), (4,), ((1, 1),), (2,), 2)[2]
    assert zeros.tolist() == [[-1, 0, 1, 2], [1, 2, 3, -1]]


def test_kept_weight_is_reused_and_never_stale(rng, monkeypatch):
    x = rng.standard_normal((1, 8, 12, 12))
    w = rng.standard_normal((8, 8, 3, 3))
    calls = []
    original = winograd.transformed_weight
    monkeypatch.setattr(winograd, "transformed_weight", lambda *a, **k: calls.append(1) or original(*a, **k))
    first, pads = _run(x, w, 1)
    again, _ = _run(x, w, 1)
    assert len(calls) == 1 and np.array_equal(first, again)
    w[3, 2, 1, 1] += 1.0  # the caller changes its weight in place: recomputed
    changed, _ = _run(x, w, 1)
    assert len(calls) == 2
    assert_matches(changed, _torch_float64(x, w, pads, 1, "zeros"), np.float64)
    _run(x, w, 1, m=2)  # another tile size: computed and kept beside the F(4, 3) one
    assert_matches(_run(x, w, 1)[0], _torch_float64(x, w, pads, 1, "zeros"), np.float64)
    assert len(calls) == 3
    workspace.release()  # the workspace dropped the buffers: recomputed
    _run(x, w, 1)
    assert len(calls) == 4


def test_a_networks_weights_are_kept_side_by_side_and_frozen_ones_are_not_compared(rng, monkeypatch):
    """Same-shaped layers keep one entry each (a network's layers run in turn); a weight whose
    memory is read-only is served without the comparison, and one made writable and changed
    is recomputed."""
    x = rng.standard_normal((1, 8, 12, 12))
    weights = [rng.standard_normal((8, 8, 3, 3)) for _ in range(5)]
    calls = []
    original = winograd.transformed_weight
    monkeypatch.setattr(winograd, "transformed_weight", lambda *a, **k: calls.append(1) or original(*a, **k))
    for _ in range(2):
        outputs = [_run(x, w, 1)[0] for w in weights]
    assert len(calls) == 5
    pads = _run(x, weights[0], 1)[1]
    for got, w in zip(outputs, weights):
        assert_matches(got, _torch_float64(x, w, pads, 1, "zeros"), np.float64)
    frozen = weights[0]
    frozen.flags.writeable = False
    _run(x, frozen, 1)  # compared once more, found equal: marked frozen
    compared = []
    real_equal = np.array_equal
    monkeypatch.setattr(np, "array_equal", lambda *a, **k: compared.append(1) or real_equal(*a, **k))
    _run(x, frozen, 1)
    assert compared == [] and len(calls) == 5  # served without a comparison
    frozen.flags.writeable = True
    frozen[0, 0, 1, 1] += 1.0
    changed, _ = _run(x, frozen, 1)
    assert len(calls) == 6 and compared
    assert_matches(changed, _torch_float64(x, frozen, pads, 1, "zeros"), np.float64)


def test_nan_stays_in_the_tiles_that_read_it(rng):
    """A NaN spreads within the tiles whose inputs hold it (the transforms mix a tile), no further."""
    x = rng.standard_normal((1, 4, 16, 16))
    x[0, 1, 9, 9] = np.nan
    w = rng.standard_normal((3, 4, 3, 3))
    got, pads = _run(x, w, 1, m=4)
    rows = np.isnan(got[0, 0]).any(axis=1).nonzero()[0]
    cols = np.isnan(got[0, 0]).any(axis=0).nonzero()[0]
    # input 9 is read by padded position 10: tile 2 (positions 8..13) only, outputs 8..11
    assert rows.tolist() == cols.tolist() == [8, 9, 10, 11]
    finite = ~np.isnan(got)
    want = _torch_float64(np.nan_to_num(x, nan=0.0), w, pads, 1, "zeros")
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)
