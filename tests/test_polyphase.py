"""polyphase: strided transposed convolution as one stride-1 convolution per output phase.

Against torch.nn.functional.conv_transpose{1,2,3}d over a grid (stride 2, 3, mixed; kernel
1..5; dilation 1..3, so gcd(d, s) > 1 empties phases; pads 0..k+1; every output_padding;
groups 1 and 2; float32 and float64), against gemm_col2im, NaN/inf placement (an infinite
weight must not meet the zero padding), the phase arithmetic on the benchmark's layers, the
workspace cap, and the input gradient of strided convolutions with the algorithm registered.
"""

import dataclasses
import itertools
import tracemalloc

import numpy as np
import pytest
import torch

import npconv.grad as G
from npconv import select, workspace
from npconv.algorithms import im2col_gemm, polyphase
from npconv.spec import ConvSpec

from conftest import assert_matches

TORCH_TRANSPOSED = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
                    3: torch.nn.functional.conv_transpose3d}


def _spec(n, k, s, p, d, g, op):
    return ConvSpec.build((k,) * n, s, p, d, g, transposed=True, output_padding=op, ndim=n)


def _operands(rng, n, size, c_in, c_out_g, k, dtype, batch=2):
    x = rng.standard_normal((batch, c_in) + (size,) * n).astype(dtype)
    w = rng.standard_normal((c_in, c_out_g) + (k,) * n).astype(dtype)
    return x, w


def _run(x, w, spec):
    return polyphase.forward(x, w, spec, spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:]))


def _torch(x, w, spec):
    return TORCH_TRANSPOSED[spec.ndim](torch.from_numpy(x), torch.from_numpy(w), stride=spec.stride,
                                       padding=tuple(lo for lo, _ in spec.padding), dilation=spec.dilation,
                                       groups=spec.groups, output_padding=spec.output_padding)


def _geometries(n, k, s, d):
    """(pads, output_padding, groups, dtype) for one kernel, stride and dilation: every pad from
    0 to k + 1 and every output_padding below max(stride, dilation), both groupings, the dtype
    alternating; combinations whose output would be empty are left out (a spec refusal)."""
    largest = max(s) if isinstance(s, tuple) else s
    cases = itertools.product(range(k + 2), range(max(largest, d)), (1, 2))
    for number, (p, op, g) in enumerate(cases):
        op_per_dim = tuple(min(op, max(si, d) - 1) for si in (s if isinstance(s, tuple) else (s,) * n))
        yield p, op_per_dim, g, (np.float32, np.float64)[number % 2]


GRID = [(n, s, k, d) for n in (1, 2) for s in (2, 3, (2, 3)) for k in range(1, 6) for d in (1, 2, 3)
        if not (isinstance(s, tuple) and n == 1)]
GRID_3D = [(3, s, k, d) for s in (2, (2, 3, 2)) for k in (1, 2, 3, 4) for d in (1, 2)]


@pytest.mark.parametrize("n,s,k,d", GRID + GRID_3D,
                         ids=[f"{n}d-s{s}-k{k}-d{d}".replace(" ", "") for n, s, k, d in GRID + GRID_3D])
def test_matches_torch_on_the_grid(n, s, k, d):
    rng = np.random.default_rng(n * 100 + k * 10 + d)
    size = {1: 7, 2: 5, 3: 3}[n]
    checked = 0
    for p, op, g, dtype in _geometries(n, k, s, d):
        spec = _spec(n, k, s, p, d, g, op)
        try:
            spec.out_spatial((size,) * n)
        except ValueError:  # pads larger than the output can give: PyTorch refuses too
            continue
        x, w = _operands(rng, n, size, 2 * g, 3, k, dtype)
        assert_matches(_run(x, w, spec), _torch(x, w, spec), dtype)
        checked += 1
    assert checked > 0


def _random_geometry(rng):
    """(spec, input shape) of a random transposed convolution with a non-empty output."""
    while True:
        n = int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 6, n))
        s = (int(rng.integers(2, 4)),) + tuple(int(v) for v in rng.integers(1, 4, n - 1))
        d = tuple(int(v) for v in rng.integers(1, 4, n))
        g = int(rng.choice([1, 2, 4]))
        pads = tuple(int(rng.integers(0, kk * dd)) for kk, dd in zip(k, d))
        op = tuple(int(rng.integers(0, max(si, di))) for si, di in zip(s, d))
        spec = ConvSpec.build(k, s, pads, d, g, transposed=True, output_padding=op, ndim=n)
        x_shape = (2, 4 * g) + ({1: 23, 2: 9, 3: 5}[n],) * n
        try:
            spec.out_spatial(x_shape[2:])
        except ValueError:  # pads wider than the output: draw again
            continue
        return spec, x_shape


@pytest.mark.parametrize("seed", range(40))
def test_matches_gemm_col2im(seed):
    """Random geometries, larger channels and maps: the same numbers as GEMM + col2im."""
    rng = np.random.default_rng(seed)
    spec, x_shape = _random_geometry(rng)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((x_shape[1], 3) + spec.kernel_size).astype(np.float32)
    want = im2col_gemm.forward_transposed(x, w, spec, spec.pads(x.shape[2:]), spec.out_spatial(x.shape[2:]))
    got = _run(x, w, spec)
    assert_matches(got, want, np.float32)
    assert_matches(got, _torch(x, w, spec), np.float32)


# ---- NaN and inf land where PyTorch puts them -------------------------------------------

@pytest.mark.parametrize("poisoned", ["input", "weight", "both"])
@pytest.mark.parametrize("geometry", [dict(k=4, s=2, p=1, d=1), dict(k=3, s=2, p=0, d=2), dict(k=5, s=3, p=4, d=1)])
def test_nonfinite_values_land_where_pytorch_puts_them(poisoned, geometry):
    """A padded zero times an infinite weight is NaN; PyTorch never multiplies outside the input,
    so a weight holding NaN or inf runs without padding (unpadded_pieces)."""
    rng = np.random.default_rng(len(poisoned) + geometry["k"])
    k, s, p, d = geometry["k"], geometry["s"], geometry["p"], geometry["d"]
    spec = _spec(2, k, s, p, d, 1, 0)
    x, w = _operands(rng, 2, 9, 6, 4, k, np.float64)
    for array in {"input": [x], "weight": [w], "both": [x, w]}[poisoned]:
        array.reshape(-1)[rng.choice(array.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    with np.errstate(all="ignore"):
        got = _run(x, w, spec)
    want = _torch(x, w, spec).numpy()
    for same in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(same(got), same(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12 * np.abs(want[finite]).max())


def test_unpadded_pieces_cover_each_output_once():
    spec = _spec(2, 5, 3, 4, 1, 1, 2)
    in_spatial = (6, 6)
    out_spatial = spec.out_spatial(in_spatial)
    seen = np.zeros(out_spatial, int)
    for phase in polyphase.phases(spec, in_spatial, spec.pads(in_spatial), out_spatial):
        grid = np.zeros(phase.out_spatial, int)
        for piece in polyphase.unpadded_pieces(phase, polyphase.phase_dilation(spec)):
            grid[piece.outputs] += 1
            assert all(c.start >= 0 and c.stop <= i for c, i in zip(piece.crop, in_spatial)) or piece.taps is None
        seen[phase.destination] += grid
    assert (seen == 1).all()


# ---- the phases of the benchmark's layers -----------------------------------------------

def _phase_summary(spec, in_spatial):
    out_spatial = spec.out_spatial(in_spatial)
    return [(phase.kernel_size, phase.pads, phase.is_zero)
            for phase in polyphase.phases(spec, in_spatial, spec.pads(in_spatial), out_spatial)]


def test_unet_up_conv_is_four_pointwise_products():
    spec = ConvSpec.build((2, 2), 2, 0, transposed=True)
    assert _phase_summary(spec, (28, 28)) == [((1, 1), ((0, 0), (0, 0)), False)] * 4
    phase = polyphase.phases(spec, (28, 28), spec.pads((28, 28)), (56, 56))[0]
    sub = polyphase.phase_spec(spec, phase.kernel_size, phase.pads)
    assert select.choose_algorithm(sub, (4, 1024, 28, 28), (512, 1024, 1, 1)) == "pointwise"


def test_dcgan_up_conv_is_four_2x2_convolutions():
    spec = ConvSpec.build((4, 4), 2, 1, transposed=True)
    kernels = [kernel for kernel, _, _ in _phase_summary(spec, (8, 8))]
    assert kernels == [(2, 2)] * 4


def test_dilation_sharing_a_factor_with_the_stride_empties_phases():
    """Dilation 2, stride 2: every tap lands on outputs of one parity; the others are 0."""
    spec = _spec(1, 3, 2, 1, 2, 1, 1)
    summary = _phase_summary(spec, (7,))
    assert [zero for _, _, zero in summary] == [True, False]
    assert summary[1][0] == (3,)  # all three taps, dilation 2 / gcd(2, 2) = 1 apart in the input


def test_phase_weight_flips_taps_and_swaps_channels_per_group():
    spec = ConvSpec.build((4,), 2, 1, groups=2, transposed=True)
    w = np.arange(4 * 3 * 4, dtype=np.float64).reshape(4, 3, 4)  # (C_in, C_out/G, k)
    phase = polyphase.phases(spec, (5,), spec.pads((5,)), spec.out_spatial((5,)))[0]
    assert phase.dims[0].taps == (3, 1)
    got = polyphase.phase_weight(w, 2, phase)  # (C_out, C_in/G, taps)
    assert got.shape == (6, 2, 2)
    assert got[4, 1].tolist() == [w[3, 1, 3], w[3, 1, 1]]  # output 4 = group 1, channel 1; input 3


def test_pads_beyond_the_kernel_crop_the_input():
    """Pads larger than the kernel reaches: outputs start inside the input (a cropped view)."""
    spec = _spec(1, 2, 2, 5, 1, 1, 0)
    (first, second) = polyphase.phases(spec, (9,), spec.pads((9,)), spec.out_spatial((9,)))
    assert first.crop[0].start > 0 and first.pads == ((0, 0),)
    rng = np.random.default_rng(0)
    x, w = _operands(rng, 1, 9, 3, 2, 2, np.float64)
    assert_matches(_run(x, w, spec), _torch(x, w, spec), np.float64)


def test_applies_to_strided_zero_padded_transposed_convolutions_only():
    x_shape, w_shape = (1, 4, 9, 9), (4, 4, 3, 3)
    assert polyphase.applies(ConvSpec.build((3, 3), (1, 2), 1, transposed=True), x_shape, w_shape)
    assert not polyphase.applies(ConvSpec.build((3, 3), 1, 1, transposed=True), x_shape, w_shape)
    assert not polyphase.applies(ConvSpec.build((3, 3), 2, 1), x_shape, w_shape)
    # the input gradient of a replicate-padded conv: a transposed spec keeping the mode
    folded = dataclasses.replace(ConvSpec.build((3, 3), 2, 1, padding_mode="replicate"), transposed=True)
    assert not polyphase.applies(folded, x_shape, w_shape)


def test_a_non_contiguous_input():
    rng = np.random.default_rng(1)
    spec = _spec(2, 3, 2, 1, 1, 1, 1)
    x, w = _operands(rng, 2, 12, 4, 3, 3, np.float32)
    view = x[:, :, ::2, 1::2]
    assert_matches(_run(view, w, spec), _torch(np.ascontiguousarray(view), w, spec), np.float32)


# ---- the workspace cap ------------------------------------------------------------------

MiB = 2**20


@pytest.fixture
def restore_cap():
    previous = workspace.limit()
    yield
    workspace.set_workspace_limit(previous)
    workspace.release()


def _scratch(run):
    workspace.release()
    tracemalloc.start()
    try:
        result = run()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak - result.nbytes


def test_images_are_chunked_under_a_small_cap(restore_cap):
    """16 images of (64, 32x32) phase outputs: 4 MiB a phase; under 1 MiB a few images at a time."""
    rng = np.random.default_rng(2)
    spec = ConvSpec.build((2, 2), 2, 0, transposed=True)
    x, w = _operands(rng, 2, 32, 16, 64, 2, np.float32, batch=16)
    want = _torch(x, w, spec)
    workspace.set_workspace_limit(MiB)
    phase = polyphase.phases(spec, (32, 32), ((0, 0), (0, 0)), (64, 64))[0]
    assert polyphase._images_per_chunk(spec, phase, 0, x.shape, w.shape, 4) < 16
    got, scratch = _scratch(lambda: _run(x, w, spec))
    assert_matches(got, want, np.float32)
    assert scratch <= 2 * MiB  # the cap and tracemalloc's slack (index tables, ufunc buffers)


def test_min_workspace_is_refused_below_it(restore_cap):
    rng = np.random.default_rng(3)
    spec = ConvSpec.build((4, 4), 2, 1, transposed=True)
    x, w = _operands(rng, 2, 8, 512, 256, 4, np.float32, batch=1)  # a 2x2 phase weight: 2 MiB
    least = polyphase.min_workspace(spec, x.shape, w.shape, 4)
    assert least > 2 * MiB
    workspace.set_workspace_limit(MiB)
    with pytest.raises(ValueError, match=r"polyphase needs at least"):
        _run(x, w, spec)
    workspace.set_workspace_limit(least)
    assert_matches(_run(x, w, spec), _torch(x, w, spec), np.float32)


# ---- registered: the input gradient of strided convolutions -----------------------------

@pytest.fixture
def registered(monkeypatch):
    entry = select.Algorithm("polyphase", polyphase.applies, polyphase.forward,
                             min_workspace=polyphase.min_workspace)
    monkeypatch.setitem(select.ALGORITHMS, "polyphase", entry)
    select.set_algorithm("polyphase")
    yield
    select.set_algorithm(None)


@pytest.mark.parametrize("layer", [
    dict(x=(2, 3, 30, 30), w=(8, 3, 7, 7), stride=2, padding=3),  # a stem
    dict(x=(2, 8, 15, 15), w=(8, 8, 3, 3), stride=2, padding=1),  # 3x3 stride 2
    dict(x=(2, 8, 15, 15), w=(8, 1, 3, 3), stride=2, padding=1, groups=8),  # depthwise stride 2
    dict(x=(2, 16, 14, 14), w=(8, 16, 1, 1), stride=2),  # 1x1 downsample
    dict(x=(2, 3, 16, 16), w=(6, 3, 4, 4), stride=4),  # patchify
    dict(x=(2, 1, 21, 40), w=(4, 1, 5, 20), stride=2),  # DeepSpeech2
    dict(x=(2, 1, 200), w=(8, 1, 10), stride=5),  # wav2vec2 conv0
    dict(x=(2, 8, 31), w=(8, 8, 3), stride=2),  # wav2vec2 conv1
    dict(x=(1, 4, 7, 9, 9), w=(4, 4, 3, 3, 3), stride=(1, 2, 2), padding=1, dilation=(1, 2, 1)),
], ids=["stem", "3x3s2", "depthwise_s2", "1x1s2", "patchify", "deepspeech2", "wav2vec2_0", "wav2vec2_1", "3d"])
def test_input_gradient_of_strided_convolutions(layer, registered):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(layer["x"])
    w = rng.standard_normal(layer["w"])
    kwargs = {key: value for key, value in layer.items() if key not in ("x", "w")}
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[w.ndim - 2]
    xt = torch.tensor(x, requires_grad=True)
    y = conv(xt, torch.from_numpy(w), **kwargs)
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    spec = ConvSpec.build(w.shape[2:], kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
                          kwargs.get("groups", 1), ndim=w.ndim - 2)
    transposed_spec = ConvSpec.build(w.shape[2:], spec.stride, spec.pads(x.shape[2:]), spec.dilation, spec.groups,
                                     transposed=True, ndim=w.ndim - 2)
    assert select.choose_algorithm(transposed_spec, gy.shape, w.shape) == "polyphase"
    assert_matches(G.conv_input(x.shape, w, gy, **kwargs), xt.grad, np.float64)
