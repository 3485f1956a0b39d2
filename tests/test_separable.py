"""Separable convolutions: npconv.separable.factor (kernels as rank-1 terms), the separable
conv2d path (the planner's separable_passes algorithm) and its plan against PyTorch, the
planner's value-level choice of it, and nn.DepthwiseSeparableConv2d against a torch
nn.Sequential of the same two convs (outputs, gradients, parameter and multiply-add counts)."""

import dataclasses
import itertools
import math
import re

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import npconv
import npconv.nn as nn
from conftest import assert_matches, relative_error
from npconv import compiled, functional, select, separable


def gaussian(k, sigma, ndim=2):
    """exp(-|t|^2 / (2 sigma^2)) built on the full grid (not as an outer product), normalised."""
    t = np.arange(k) - (k - 1) / 2
    grid = np.meshgrid(*[t] * ndim, indexing="ij")
    g = np.exp(-sum(axis ** 2 for axis in grid) / (2 * sigma ** 2))
    return g / g.sum()


SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])


def _outer(*vectors):
    return np.einsum(",".join("abcd"[:len(vectors)]) + "->" + "abcd"[:len(vectors)], *vectors)


def _rank1_kernels():
    rng = np.random.default_rng(7)
    return {
        "sobel_x": SOBEL_X, "sobel_y": SOBEL_X.T, "scharr_x": SCHARR_X, "box_ones": np.ones((3, 3)),
        "box_mean_5x5": np.full((5, 5), 1 / 25), "gaussian_7x7": gaussian(7, 1.5),
        "gaussian_31x31_float32": gaussian(31, 5.0).astype(np.float32), "gaussian_3d": gaussian(5, 1.0, ndim=3),
        "outer_random_4x6": _outer(rng.standard_normal(4), rng.standard_normal(6)),
        "outer_random_3x4x5": _outer(rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal(5)),
    }


RANK1 = _rank1_kernels()


# ---- factor ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RANK1)
def test_separable_kernels_come_out_rank_1(name):
    kernel = RANK1[name]
    f = separable.factor(kernel, name=name)
    assert (f.rank, f.is_separable, len(f.terms)) == (1, True, 1)
    assert [v.shape for v in f.terms[0]] == [(k,) for k in kernel.shape]
    assert f.error <= f.tol and f.error_at(1) <= f.tol
    assert relative_error(f.reconstruct(), kernel) <= 4 * f.tol
    assert str(f).startswith(f"{name}: rank 1, exact")


@pytest.mark.parametrize("kernel,text", [
    (SOBEL_X, "Sobel x: rank 1, exact (error 0.0): [1, 2, 1] x [-1, 0, 1]"),
    (SOBEL_X.T, "Sobel y: rank 1, exact (error 0.0): [-1, 0, 1] x [1, 2, 1]"),
    (SCHARR_X, "Scharr x: rank 1, exact (error 0.0): [3, 10, 3] x [-1, 0, 1]"),
    (np.ones((3, 3)), "box: rank 1, exact (error 0.0): [1, 1, 1] x [1, 1, 1]"),
], ids=["sobel_x", "sobel_y", "scharr_x", "box"])
def test_integer_kernels_read_as_integer_factors_with_no_error(kernel, text):
    f = separable.factor(kernel, name=text.split(":")[0])
    assert str(f) == text
    assert f.error == 0.0 and np.array_equal(f.reconstruct(), kernel)


def test_gaussian_factors_are_the_1d_gaussian():
    g1 = gaussian(9, 2.0, ndim=1)
    f = separable.factor(gaussian(9, 2.0))
    np.testing.assert_allclose(f.terms[0][0], g1, rtol=1e-12)  # the first factor sums to 1
    np.testing.assert_allclose(f.terms[0][1], g1, rtol=1e-12)
    f3 = separable.factor(gaussian(5, 1.0, ndim=3))
    np.testing.assert_allclose(_outer(*f3.terms[0]), gaussian(5, 1.0, ndim=3), rtol=1e-12)


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (6, 4)])
def test_random_kernels_need_full_rank(shape):
    kernel = np.random.default_rng(sum(shape)).standard_normal(shape)
    f = separable.factor(kernel, name="random")
    assert f.rank == min(shape) and not f.is_separable
    np.testing.assert_allclose(f.singular_values, np.linalg.svd(kernel, compute_uv=False), rtol=1e-12)
    assert f.error_at(1) > 0.1 and relative_error(f.reconstruct(), kernel) <= 1e-12
    assert str(f).startswith(f"random: rank {min(shape)} needed for tol 1e-6; rank 1 would leave error ")
    assert "— not separable" in str(f)


def test_sum_of_two_outer_products_is_rank_2():
    rng = np.random.default_rng(3)
    kernel = _outer(rng.standard_normal(5), rng.standard_normal(5)) + _outer(rng.standard_normal(5),
                                                                             rng.standard_normal(5))
    f = separable.factor(kernel, name="two terms")
    assert (f.rank, f.is_separable, len(f.terms)) == (2, False, 2)
    assert f.error <= 1e-12 and relative_error(f.reconstruct(), kernel) <= 1e-12
    assert f.multiply_adds == (20, 25)
    assert "rank 2 needed" in str(f) and "20 multiply-adds per output vs 25" in str(f)


def test_rank_is_the_fewest_terms_within_tol():
    rng = np.random.default_rng(5)
    kernel = gaussian(7, 1.5) + 1e-3 * rng.standard_normal((7, 7)) / 7
    loose, tight = separable.factor(kernel, tol=1e-2), separable.factor(kernel, tol=1e-9)
    assert loose.rank == 1 and loose.error <= 1e-2
    assert tight.rank == 7
    for f in (loose, tight):
        assert f.error_at(f.rank) <= f.tol and (f.rank == 0 or f.error_at(f.rank - 1) > f.tol)
        assert f.error == pytest.approx(f.error_at(f.rank), abs=1e-12)


def test_3d_random_kernel_terms_reconstruct_it():
    kernel = np.random.default_rng(2).standard_normal((3, 4, 5))
    f = separable.factor(kernel, tol=0.0)
    assert not f.is_separable and relative_error(f.reconstruct(), kernel) <= 1e-12
    assert math.isclose(np.sum(f.singular_values ** 2), np.sum(kernel ** 2), rel_tol=1e-12)


def test_zero_kernel_is_rank_0_and_results_are_frozen():
    f = separable.factor(np.zeros((3, 3)))
    assert (f.rank, f.terms, f.error, str(f)) == (0, (), 0.0, "3x3 kernel: all zeros (rank 0)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.rank = 2
    with pytest.raises(ValueError):
        separable.factor(SOBEL_X).terms[0][0][0] = 5.0  # read-only factors


@pytest.mark.parametrize("call,words", [
    (lambda: separable.factor(SOBEL_X, tol=-1e-3), "tol must be a finite number >= 0"),
    (lambda: separable.factor(SOBEL_X, tol=float("nan")), "tol="),
    (lambda: separable.factor(np.ones(3)), "kernel.ndim=1"),
    (lambda: separable.factor(np.ones((3, 0))), "every kernel dim must be >= 1"),
    (lambda: separable.factor(np.array([[1.0, np.inf]])), "finite"),
    (lambda: separable.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), tol=-1.0), "tol must be"),
    (lambda: separable.conv2d(np.ones((5, 5)), np.ones((1, 1, 3, 3))), "Expected 3D (unbatched) or 4D"),
    (lambda: separable.plan(np.ones((1, 3, 3)), (1, 1, 5, 5)), "weight must be 4-D"),
    (lambda: separable.plan(np.ones((2, 1, 3, 3)), (1, 3, 5, 5), groups=2), "groups=2"),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3, depth_multiplier=0), "depth_multiplier must be a positive"),
    (lambda: nn.DepthwiseSeparableConv2d(0, 4, 3), "in_channels must be a positive"),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3).savings((1, 5, 8, 8)), "in_channels=3"),
], ids=["tol_negative", "tol_nan", "kernel_1d", "kernel_empty", "kernel_inf", "conv_tol", "input_2d",
        "weight_3d", "groups", "depth_multiplier", "in_channels", "savings_channels"])
def test_errors_name_the_parameter(call, words):
    with pytest.raises((ValueError, TypeError), match=re.escape(words)):
        call()


# ---- the separable conv2d path -------------------------------------------------------------

def _filters(rng, c_out, per_group, shape, rank, dtype):
    """c_out x per_group filters of exactly the given rank: sums of ``rank`` random outer products."""
    vertical = rng.standard_normal((c_out, per_group, shape[0], rank))
    horizontal = rng.standard_normal((c_out, per_group, rank, shape[1]))
    return np.einsum("oikr,oirl->oikl", vertical, horizontal).astype(dtype)


def _torch_conv2d(x, w, b, stride, pads, dilation, groups, mode):
    """torch's conv2d, the pads ((top, bottom), (left, right)) applied by F.pad as nn.Conv2d does."""
    (top, bottom), (left, right) = pads
    tx = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom),
                                 mode="constant" if mode == "zeros" else mode)
    return torch.nn.functional.conv2d(tx, torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                                      stride, 0, dilation, groups)


GEOMETRIES = {  # (kernel, rank, stride, dilation, pads): every one cheaper as 1-D passes
    "7x6_rank2": ((7, 6), 2, 1, 1, ((3, 3), (2, 3))),
    "stride2_rank1": ((5, 7), 1, 2, 1, ((2, 1), (3, 3))),
    "stride_2x3_dilation_2x1": ((5, 5), 1, (2, 3), (2, 1), ((4, 4), (1, 2))),
    "dilation_1x2_uneven_pads": ((6, 5), 1, 1, (1, 2), ((0, 5), (4, 1))),
}
GRID = list(itertools.product(("zeros", "reflect", "replicate", "circular"), GEOMETRIES, (1, 2, 4),
                              (np.float32, np.float64)))


@pytest.mark.parametrize("mode,geometry,groups,dtype", GRID,
                         ids=[f"{m}-{g}-groups{n}-{np.dtype(d).name}" for m, g, n, d in GRID])
def test_separable_conv2d_matches_torch(mode, geometry, groups, dtype):
    kernel, rank, stride, dilation, pads = GEOMETRIES[geometry]
    rng = np.random.default_rng(groups)
    c_in, c_out = 4, 8
    w = _filters(rng, c_out, c_in // groups, kernel, rank, dtype)
    x = rng.standard_normal((2, c_in, 13, 12)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    args = (stride, pads, dilation, groups)
    decision = separable.plan(w, x.shape, *args, padding_mode=mode)
    assert decision.path == "separable" and decision.rank == rank, decision
    y = separable.conv2d(x, w, b, *args, padding_mode=mode)
    assert_matches(y, _torch_conv2d(x, w, b, stride, pads, dilation, groups, mode), dtype)
    assert_matches(y, functional.conv2d(x, w, b, *args, padding_mode=mode), dtype)


@pytest.mark.parametrize("compiled_kernels", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_wide_depthwise_gaussian_blur_matches_torch(monkeypatch, compiled_kernels, mode):
    """Wide inputs run as column strips and rows folded into channels where Numba is installed."""
    if not compiled_kernels:
        monkeypatch.setattr(compiled, "available", lambda: False)
    w = np.broadcast_to(gaussian(9, 2.0), (3, 1, 9, 9)).astype(np.float32)
    x = np.random.default_rng(0).standard_normal((2, 3, 20, 301)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    assert separable.plan(w, x.shape, padding=4, groups=3).path == "separable"
    y = separable.conv2d(x, w, b, 1, 4, 1, 3, padding_mode=mode)
    assert_matches(y, _torch_conv2d(x, w, b, 1, ((4, 4), (4, 4)), 1, 3, mode), np.float32)


@pytest.mark.parametrize("channels", [4, 16])
def test_blocks_keep_the_intermediate_under_the_workspace_limit(channels):
    """Over the limit, images (4 channels) or groups (16 channels) run in blocks."""
    w = np.broadcast_to(gaussian(7, 1.5), (channels, 1, 7, 7)).copy()
    x = np.random.default_rng(1).standard_normal((3, channels, 64, 300))
    previous = npconv.set_workspace_limit(2**20)
    try:
        decision = separable.plan(w, x.shape, padding=3, groups=channels)
        y = separable.conv2d(x, w, None, 1, 3, 1, channels)
    finally:
        npconv.set_workspace_limit(previous)
    assert decision.path == "separable" and decision.intermediate_bytes == 64 * 300 * 8
    assert_matches(y, _torch_conv2d(x, w, None, 1, ((3, 3), (3, 3)), 1, channels, "zeros"), np.float64)


def test_intermediate_over_the_limit_falls_back_to_the_full_kernel():
    w = np.broadcast_to(gaussian(7, 1.5), (2, 1, 7, 7)).copy()
    previous = npconv.set_workspace_limit(2**20)
    try:
        decision = separable.plan(w, (1, 2, 400, 400), padding=3, groups=2)
    finally:
        npconv.set_workspace_limit(previous)
    assert decision.path == "full" and "exceeds the workspace limit (1 MiB)" in decision.reason


def test_plan_picks_separable_for_a_gaussian_and_full_for_a_random_kernel():
    gauss = np.broadcast_to(gaussian(31, 5.0), (8, 1, 31, 31)).astype(np.float32)
    decision = separable.plan(gauss, (1, 8, 64, 64), padding=15, groups=8)
    assert (decision.path, decision.rank) == ("separable", 1)
    assert "62 multiply-adds per output vs 961" in str(decision)
    assert decision.predicted_speedup == pytest.approx(961 / 62)
    random = np.random.default_rng(0).standard_normal((8, 1, 31, 31)).astype(np.float32)
    decision = separable.plan(random, (1, 8, 64, 64), padding=15, groups=8)
    assert (decision.path, decision.rank) == ("full", 31) and "the full kernel is cheaper" in decision.reason
    x = np.random.default_rng(1).standard_normal((1, 8, 40, 40)).astype(np.float32)
    np.testing.assert_array_equal(separable.conv2d(x, random, None, 1, 15, 1, 8),
                                  functional.conv2d(x, random, None, 1, 15, 1, 8))


def test_tol_trades_accuracy_for_the_separable_path():
    noisy = gaussian(9, 2.0) + 1e-4 * np.random.default_rng(4).standard_normal((9, 9)) / 9
    w = noisy[None, None].repeat(2, axis=0)
    x = np.random.default_rng(5).standard_normal((1, 2, 30, 30))
    assert separable.plan(w, x.shape, groups=2).path == "full"
    approximate = separable.plan(w, x.shape, groups=2, tol=1e-2)
    assert approximate.path == "separable" and approximate.tol == 1e-2
    y = separable.conv2d(x, w, None, groups=2, tol=1e-2)
    assert 0 < relative_error(y, functional.conv2d(x, w, groups=2)) <= 1e-2


def test_zero_and_non_finite_weights():
    """An all-zero weight is rank 0 (the output is the bias); NaN has no SVD and runs in full."""
    x = np.random.default_rng(8).standard_normal((1, 2, 8, 8))
    zero = np.zeros((2, 1, 3, 3))
    assert separable.plan(zero, x.shape, groups=2).rank == 0
    np.testing.assert_array_equal(separable.conv2d(x, zero, np.array([1.0, 2.0]), groups=2),
                                  np.array([1.0, 2.0]).reshape(1, 2, 1, 1) * np.ones((1, 2, 6, 6)))
    nan = np.ones((2, 1, 3, 3))
    nan[0, 0, 1, 1] = np.nan
    assert separable.plan(nan, x.shape, groups=2).path == "full"
    np.testing.assert_array_equal(separable.conv2d(x, nan, groups=2), functional.conv2d(x, nan, groups=2))


def _torch_macs(*calls) -> int:
    with FlopCounterMode(display=False) as counter:
        for call in calls:
            call()
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("groups,stride", [(8, 1), (2, (2, 3)), (1, 1)])
def test_plan_multiply_adds_match_torchs_flop_counter(groups, stride):
    """full_macs: torch's count for the conv; separable_macs: for the two 1-D passes conv2d runs."""
    kh, kw, c_in, c_out = 5, 7, 8, 8
    s_h, s_w = (stride, stride) if isinstance(stride, int) else stride
    x = torch.zeros(2, c_in, 20, 23)
    w = torch.zeros(c_out, c_in // groups, kh, kw)
    decision = separable.plan(w.numpy(), tuple(x.shape), stride, 2, 1, groups)
    conv, rank = torch.nn.functional.conv2d, max(decision.rank, 1)
    assert decision.full_macs == _torch_macs(lambda: conv(x, w, None, stride, 2, 1, groups))
    vertical = torch.zeros(c_in * (c_out // groups) * rank, 1, kh, 1)
    horizontal = torch.zeros(c_out, (c_in // groups) * rank, 1, kw)
    middle = conv(x, vertical, None, (s_h, 1), (2, 0), 1, c_in)
    passes = (lambda: conv(x, vertical, None, (s_h, 1), (2, 0), 1, c_in),
              lambda: conv(middle, horizontal, None, (1, s_w), (0, 2), 1, c_out))
    assert decision.separable_macs == _torch_macs(*passes)


def test_unbatched_same_padding_at_stride_2_and_float16():
    w = np.broadcast_to(gaussian(5, 1.0), (3, 1, 5, 5)).copy()
    x = np.random.default_rng(6).standard_normal((3, 11, 12))
    for stride in (1, 2, 3):
        args = (None, stride, "same", 1, 3)
        y = separable.conv2d(x, w, *args, padding_mode="replicate")
        assert_matches(y, functional.conv2d(x, w, *args, padding_mode="replicate"), np.float64)
    half = separable.conv2d(x.astype(np.float16), w.astype(np.float16), None, 1, 2, 1, 3)
    assert_matches(half, functional.conv2d(x.astype(np.float16), w.astype(np.float16), None, 1, 2, 1, 3),
                   np.float16)


# ---- the planner's value-level choice of separable_passes ------------------------------------

def _planned(x, w, **kwargs):
    spec = npconv.ConvSpec.build(w.shape[2:], **kwargs)
    return select.algorithm_for(spec, x, w).name


def test_planner_takes_the_passes_for_rank_1_depthwise_blurs_only():
    """9x9 to 15x15 depthwise filters all rank 1: the passes; a learned (full-rank) filter, a
    3x3 box, a forced algorithm, or an input holding NaN: not."""
    x = np.random.default_rng(9).standard_normal((1, 3, 40, 40)).astype(np.float32)
    blur = np.broadcast_to(gaussian(9, 2.0), (3, 1, 9, 9)).astype(np.float32)
    assert select.candidates(npconv.ConvSpec.build((9, 9), padding=4, groups=3), x.shape, blur.shape)[-1:] == [
        "separable_passes"]
    assert _planned(x, blur, padding=4, groups=3) == "separable_passes"
    assert_matches(npconv.conv(x, blur, padding=4, groups=3),
                   _torch_conv2d(x, blur, None, 1, ((4, 4), (4, 4)), 1, 3, "zeros"), np.float32)
    learned = np.random.default_rng(10).standard_normal((3, 1, 9, 9)).astype(np.float32)
    assert _planned(x, learned, padding=4, groups=3) != "separable_passes"
    box = np.ones((3, 1, 3, 3))
    assert _planned(x.astype(np.float64), box, padding=1, groups=3) != "separable_passes"
    assert _planned(x, np.broadcast_to(gaussian(31, 5.0), (3, 1, 31, 31)).astype(np.float32),
                    padding=15, groups=3) != "separable_passes"
    with npconv.config(algorithm="depthwise_direct"):
        assert _planned(x, blur, padding=4, groups=3) == "depthwise_direct"
    poisoned = x.copy()
    poisoned[0, 0, 0, 0] = np.nan
    assert _planned(poisoned, blur, padding=4, groups=3) != "separable_passes"


def test_an_autotuned_choice_is_not_overridden_by_the_value_check(tmp_path, monkeypatch):
    """With autotune on, the measured winner runs, even where the passes' value check accepts."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    select.forget_tuned()
    x = np.random.default_rng(9).standard_normal((1, 3, 40, 40)).astype(np.float32)
    blur = np.broadcast_to(gaussian(9, 2.0), (3, 1, 9, 9)).astype(np.float32)
    spec = npconv.ConvSpec.build((9, 9), padding=4, groups=3)
    monkeypatch.setattr(select, "measure_candidates", lambda *a, **k: {"depthwise_direct": 1.0, "separable_passes": 2.0})
    with npconv.config(autotune=True):
        assert select.algorithm_for(spec, x, blur).name == "depthwise_direct"
    select.forget_tuned()


def test_forced_passes_run_any_2d_kernel_at_its_full_rank():
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 4, 11, 12)), rng.standard_normal((6, 2, 3, 4))
    with npconv.config(algorithm="separable_passes"):
        assert _planned(x, w, padding=1, groups=2) == "separable_passes"
        y = npconv.conv(x, w, stride=(2, 1), padding=1, groups=2, padding_mode="circular")
    assert_matches(y, _torch_conv2d(x, w, None, (2, 1), ((1, 1), (1, 1)), 1, 2, "circular"), np.float64)


# ---- nn.DepthwiseSeparableConv2d -------------------------------------------------------------

MODULE_CONFIGS = [
    ((3, 8, 3), dict(padding=1)),
    ((4, 6, (3, 5)), dict(stride=2, padding=2, dilation=(1, 2), padding_mode="reflect", depth_multiplier=2)),
    ((2, 5, 3), dict(bias=False, padding="same", padding_mode="circular")),
]


def _torch_pair(args, kwargs, dtype):
    in_channels, out_channels, kernel_size = args
    m = kwargs.get("depth_multiplier", 1)
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "depth_multiplier"}
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, in_channels * m, kernel_size, groups=in_channels, dtype=torch_dtype,
                        **conv_kwargs),
        torch.nn.Conv2d(in_channels * m, out_channels, 1, bias=kwargs.get("bias", True), dtype=torch_dtype))
    ours = nn.DepthwiseSeparableConv2d(*args, **kwargs, dtype=dtype)
    for name, torch_module in (("depthwise", reference[0]), ("pointwise", reference[1])):
        getattr(ours, name).load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return reference, ours


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("index", range(len(MODULE_CONFIGS)))
def test_depthwise_separable_module_matches_torch_sequential(index, batched, dtype):
    """Outputs in both dtypes; gradients in float64 (float32's would only add Numba compile
    time for the depthwise weight gradient, ~2.5 s, to what nn.Conv2d's own tests cover)."""
    args, kwargs = MODULE_CONFIGS[index]
    reference, ours = _torch_pair(args, kwargs, dtype)
    rng = np.random.default_rng(index)
    x = rng.standard_normal(((2,) if batched else ()) + (args[0], 9, 10)).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    y_torch = reference(tx)
    y = ours(x)
    assert_matches(y, y_torch, dtype)
    if dtype == np.float32:
        return
    gy = rng.standard_normal(y.shape).astype(dtype)
    y_torch.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, dtype)
    for name, torch_module in (("depthwise", reference[0]), ("pointwise", reference[1])):
        for param in ("weight", "bias"):
            if getattr(torch_module, param) is not None:
                assert_matches(getattr(getattr(ours, name), param).grad, getattr(torch_module, param).grad, dtype)


@pytest.mark.parametrize("index", range(len(MODULE_CONFIGS)))
def test_savings_match_torch_parameter_and_flop_counts(index):
    args, kwargs = MODULE_CONFIGS[index]
    reference, ours = _torch_pair(args, kwargs, np.float32)
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "depth_multiplier"}
    standard = torch.nn.Conv2d(*args, **conv_kwargs)
    x = torch.zeros(2, args[0], 9, 10)
    cost = ours.savings(tuple(x.shape))
    assert cost.separable_parameters == sum(p.numel() for p in reference.parameters())
    assert cost.standard_parameters == sum(p.numel() for p in standard.parameters())
    assert cost.separable_macs == _torch_macs(lambda: reference(x))
    assert cost.standard_macs == _torch_macs(lambda: standard(x))
    assert cost.output_shape == tuple(reference(x).shape)
    assert cost.mac_ratio == pytest.approx(cost.textbook_mac_ratio, rel=1e-12)
    assert "standard Conv2d" in str(cost) and f"{cost.standard_macs:,}" in str(cost)


def test_textbook_ratio_mobilenet_layer():
    cost = nn.DepthwiseSeparableConv2d(32, 64, 3, padding=1).savings((32, 112, 112))
    assert cost.mac_ratio == pytest.approx(1 / 64 + 1 / 9)
    assert (cost.separable_parameters, cost.standard_parameters) == (32 * 9 + 32 + 32 * 64 + 64, 32 * 64 * 9 + 64)


def test_module_repr_state_dict_and_attributes():
    layer = nn.DepthwiseSeparableConv2d(3, 8, 3, stride=2, padding=1, depth_multiplier=2, bias=False)
    assert repr(layer) == (
        "DepthwiseSeparableConv2d(\n"
        "  (depthwise): Conv2d(3, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=3, bias=False)\n"
        "  (pointwise): Conv2d(6, 8, kernel_size=(1, 1), stride=(1, 1), bias=False)\n)")
    assert [(k, v.shape) for k, v in layer.state_dict().items()] == [
        ("depthwise.weight", (6, 1, 3, 3)), ("pointwise.weight", (8, 6, 1, 1))]
    assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride) == (3, 8, (3, 3), (2, 2))
