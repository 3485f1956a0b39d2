"""FFT convolution: both layouts (whole map, overlap-save blocks) against PyTorch, forward and
depthwise weight gradient, and the kernel spectra kept between calls (hits, in-place weight
changes, the workspace cap)."""

import threading
import tracemalloc

import numpy as np
import pytest
import torch

from npconv import workspace
from npconv.algorithms import fft, fft_grad
from npconv.spec import ConvSpec

from conftest import assert_matches

MiB = 2**20
TORCH_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}


@pytest.fixture(autouse=True)
def fresh_state():
    previous = workspace.limit()
    workspace.release()
    fft.forget_kept_spectra()
    yield
    workspace.set_workspace_limit(previous)
    workspace.release()
    fft.forget_kept_spectra()


def _torch_forward(x, w, stride, pad, dilation, groups, mode):
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    padded = torch.nn.functional.pad(tx, tuple(p for lo_hi in reversed(pad) for p in lo_hi),
                                     mode=TORCH_MODES[mode])
    return TORCH_CONV[x.ndim - 2](padded, tw, stride=stride, dilation=dilation, groups=groups), tw


def _case(ndim, size, c_in, c_out, k, stride, pad, dilation, groups, mode, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in) + (size,) * ndim).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups) + (k,) * ndim).astype(dtype)
    spec = ConvSpec.build((k,) * ndim, stride, pad, dilation, groups, mode, ndim=ndim)
    return x, w, spec


GEOMETRIES = {  # ndim, size, C_in, C_out, k, stride, pad, dilation, groups, mode
    "dw2d": (2, 23, 4, 4, 7, 1, 3, 1, 4, "zeros"),
    "dw2d-mult2-stride2": (2, 21, 3, 6, 5, 2, 2, 1, 3, "zeros"),
    "dw2d-reflect-dil2": (2, 19, 4, 4, 3, 1, 2, 2, 4, "reflect"),
    "dw2d-replicate-stride3": (2, 25, 2, 2, 5, 3, 4, 1, 2, "replicate"),
    "dw2d-circular": (2, 17, 3, 3, 9, 1, 4, 1, 3, "circular"),
    "dw2d-nopad-k-equals-map": (2, 9, 2, 2, 9, 1, 0, 1, 2, "zeros"),
    "dw2d-pad-larger-than-kernel": (2, 11, 2, 2, 3, 1, 5, 1, 2, "zeros"),
    "dense2d": (2, 18, 3, 5, 5, 1, 2, 1, 1, "zeros"),
    "dense2d-stride2-reflect": (2, 20, 4, 6, 5, 2, 1, 1, 1, "reflect"),
    "grouped2d": (2, 15, 4, 6, 3, 1, 1, 2, 2, "zeros"),
    "dw1d": (1, 97, 3, 3, 11, 1, 5, 1, 3, "zeros"),
    "dw1d-dil3-circular": (1, 64, 2, 4, 7, 1, 9, 3, 2, "circular"),
    "dense1d-stride2": (1, 77, 2, 3, 9, 2, 0, 1, 1, "zeros"),
    "dw3d": (3, 11, 2, 2, 5, 1, 2, 1, 2, "zeros"),
    "dense3d-stride2-replicate": (3, 10, 2, 3, 3, 2, 1, 1, 1, "replicate"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_forward_and_weight_grad_match_torch(name, dtype, fft_layout):
    ndim, size, c_in, c_out, k, stride, pad, dilation, groups, mode = GEOMETRIES[name]
    x, w, spec = _case(ndim, size, c_in, c_out, k, stride, pad, dilation, groups, mode, dtype)
    pads, out_spatial = spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:])
    assert fft._preferred(spec, x.shape).blocked == (fft_layout == "blocked")
    want, tw = _torch_forward(x, w, spec.stride, pads, spec.dilation, groups, mode)
    assert_matches(fft.forward(x, w, spec, pads, out_spatial), want, dtype)
    assert_matches(fft.forward(x, w, spec, pads, out_spatial), want, dtype)  # the kept spectrum
    if fft_grad.weight_grad_applies(spec, x.shape, w.shape):
        gy = np.random.default_rng(1).standard_normal(want.shape).astype(dtype)
        want.backward(torch.from_numpy(gy))
        assert_matches(fft_grad.weight_grad(x, gy, spec, pads), tw.grad, dtype)


def test_blocked_cases_have_several_tiles(fft_layout):
    if fft_layout == "blocked":
        several = [name for name, g in GEOMETRIES.items() if max(fft.blocked_plan(
            ConvSpec.build((g[4],) * g[0], g[5], g[6], g[7], g[8], g[9], ndim=g[0]),
            (2, g[2]) + (g[1],) * g[0]).tiles) > 1]
        assert len(several) >= 10


def _counting_spectra(monkeypatch):
    made = []
    original = fft._kernel_spectrum

    def counted(w, spec, lengths):
        made.append(lengths)
        return original(w, spec, lengths)
    monkeypatch.setattr(fft, "_kernel_spectrum", counted)
    return made


def _run(x, w, spec):
    return fft.forward(x, w, spec, spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:]))


def test_kept_spectrum_is_reused_and_never_stale(monkeypatch, fft_layout):
    made = _counting_spectra(monkeypatch)
    x, w, spec = _case(2, 30, 4, 4, 9, 1, 4, 1, 4, "zeros", np.float32)
    first = _run(x, w, spec)
    np.testing.assert_array_equal(_run(x, w, spec), first)
    assert len(made) == 1
    w[1, 0, 2, 3] += 1.0  # in place: same array, same shape and strides
    changed = _run(x, w, spec)
    want, _ = _torch_forward(x, w, (1, 1), spec.pads(x.shape[2:]), (1, 1), 4, "zeros")
    assert_matches(changed, want, np.float32)
    assert len(made) == 2 and not np.array_equal(changed, first)
    _run(x, w.copy(), spec)  # equal weights in another array still hit
    assert len(made) == 2


def test_kept_spectra_are_few_and_least_recently_used_go_first(monkeypatch):
    made = _counting_spectra(monkeypatch)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 20, 20)).astype(np.float32)
    spec = ConvSpec.build((5, 5), 1, 2, 1, 2, "zeros", ndim=2)
    weights = [rng.standard_normal((2, 1, 5, 5)).astype(np.float32) for _ in range(fft.KEPT_SPECTRA + 1)]
    for w in weights:
        _run(x, w, spec)
    assert len(made) == fft.KEPT_SPECTRA + 1
    _run(x, weights[-1], spec)
    assert len(made) == fft.KEPT_SPECTRA + 1  # still kept
    _run(x, weights[0], spec)
    assert len(made) == fft.KEPT_SPECTRA + 2  # the first was dropped for the last


def test_kept_spectra_count_against_the_cap(monkeypatch):
    made = _counting_spectra(monkeypatch)
    x, w, spec = _case(2, 300, 3, 3, 31, 1, 15, 1, 3, "zeros", np.float32)
    _run(x, w, spec)
    assert workspace.kept_bytes() >= fft._kept_bytes(w.shape, fft.whole_plan(spec, x.shape), 4) > MiB
    workspace.set_workspace_limit(3 * MiB)  # lowering the cap drops what no longer fits
    assert workspace.kept_bytes() <= 3 * MiB
    want, _ = _torch_forward(x, w, (1, 1), spec.pads(x.shape[2:]), (1, 1), 3, "zeros")
    assert_matches(_run(x, w, spec), want, np.float32)  # blocks under 3 MiB, nothing stale
    assert workspace.kept_bytes() <= 3 * MiB and len(made) == 2


def test_another_call_needing_the_room_drops_the_kept_spectrum(monkeypatch):
    made = _counting_spectra(monkeypatch)
    x, w, spec = _case(2, 60, 8, 8, 15, 1, 7, 1, 8, "zeros", np.float32)
    _run(x, w, spec)
    workspace.make_room(workspace.limit())  # another algorithm needs the whole cap
    assert workspace.kept_bytes() == 0
    want, _ = _torch_forward(x, w, (1, 1), spec.pads(x.shape[2:]), (1, 1), 8, "zeros")
    assert_matches(_run(x, w, spec), want, np.float32)
    assert len(made) == 2


def test_threads_keep_their_own_spectra():
    x, w, spec = _case(2, 30, 4, 4, 9, 1, 4, 1, 4, "reflect", np.float64)
    want = _run(x, w, spec)
    results = []

    def worker(seed):
        local_w = w + seed  # different weights per thread, same key
        for _ in range(3):
            results.append((seed, _run(x, local_w, spec)))
    threads = [threading.Thread(target=worker, args=(s,)) for s in (0.0, 1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, got in results:
        np.testing.assert_allclose(got, _run(x, w + seed, spec), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(_run(x, w, spec), want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("cap", [4 * MiB, 6 * MiB])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_large_maps_run_in_blocks_under_the_cap(cap, mode):
    """A map whose whole spectra exceed the cap runs in boxes of tile rows; the scratch
    traced stays under the cap (pocketfft's line buffers aside) and the values are exact."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 300, 280)).astype(np.float32)
    w = rng.standard_normal((3, 1, 31, 31)).astype(np.float32)
    spec = ConvSpec.build((31, 31), 1, 15, 1, 3, mode, ndim=2)
    pads = spec.pads(x.shape[2:])
    assert fft._whole_bytes(spec, x.shape, w.shape, 4, fft.whole_plan(spec, x.shape)) > cap
    assert fft.min_workspace(spec, x.shape, w.shape, 4) <= cap
    fft_grad.weight_grad(x[:1, :, :40, :40], x[:1, :, :40, :40], spec, pads)  # SciPy's first-call imports
    workspace.set_workspace_limit(cap)
    assert fft_grad.weight_grad_min_workspace(spec, x.shape, w.shape, 4) <= cap
    tracemalloc.start()
    got = _run(x, w, spec)
    peak = tracemalloc.get_traced_memory()[1] - got.nbytes
    tracemalloc.stop()
    assert peak <= cap + MiB // 4
    want, tw = _torch_forward(x, w, (1, 1), pads, (1, 1), 3, mode)
    assert_matches(got, want, np.float32)
    gy = rng.standard_normal(got.shape).astype(np.float32)
    want.backward(torch.from_numpy(gy))
    tracemalloc.start()
    gw = fft_grad.weight_grad(x, gy, spec, pads)
    peak = tracemalloc.get_traced_memory()[1] - gw.nbytes
    tracemalloc.stop()
    assert peak <= cap + MiB // 4
    assert_matches(gw, tw.grad, np.float32)


def test_whole_map_lengths_cover_only_what_outputs_read():
    """P >= max(E, U, I + max(lo, hi)): RepLKNet's 27x27 on 14x14 (pad 13) takes 27 points a
    side, not the 40 of I + lo + hi."""
    spec = ConvSpec.build((27, 27), 1, 13, 1, 512, "zeros", ndim=2)
    assert fft.whole_plan(spec, (1, 512, 14, 14)).lengths == (27, 27)
    spec = ConvSpec.build((31, 31), 1, 15, 1, 128, "zeros", ndim=2)
    assert fft.whole_plan(spec, (1, 128, 56, 56)).lengths == (72, 72)


def test_blocks_are_chosen_for_maps_many_kernels_wide():
    spec = ConvSpec.build((31, 31), 1, 15, 1, 8, "zeros", ndim=2)
    assert fft._preferred(spec, (1, 8, 2048, 2048)).blocked
    assert not fft._preferred(spec, (1, 8, 512, 512)).blocked
