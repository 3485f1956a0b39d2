"""Deformable convolution (issue 16): ``npconv.ops.deform_conv2d`` against the independent float64
reference (tests/deform_reference.py, itself checked against a grid_sample oracle and conv2d),
against ``npconv.functional.conv2d`` for zero and integer offsets, the offset/mask layouts, the
dtype policy, and every refusal."""

import re

import numpy as np
import pytest
import npconv
import npconv.functional as F
from conftest import TOLERANCE, relative_error
from deform_reference import deform_out_size, random_deform_case, reference_deform_conv2d, torch_deform_conv2d
from npconv import ops

SEEDS = range(30)
CASES = {seed: random_deform_case(np.random.default_rng(1600 + seed)) for seed in SEEDS}
IDS = [f"{seed}-{CASES[seed].label}" for seed in SEEDS]
# zero offsets / integer shifts against conv2d: both sum the same products in other orders
CONV_TOLERANCE = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-6}


def deform(case, **changes):
    """npconv.ops.deform_conv2d of a case, with keyword arguments replaced by ``changes``."""
    kwargs = {**case.kwargs(), **changes}
    offset = kwargs.pop("offset", case.offset)
    return ops.deform_conv2d(case.input, offset, case.weight, **kwargs)


def conv(case, x=None, padding=None):
    """npconv.functional.conv2d of the case's plain conv (same geometry and groups; ``padding``
    replaces the case's)."""
    return F.conv2d(case.input if x is None else x, case.weight, case.bias, case.stride,
                    case.padding if padding is None else padding, case.dilation, case.groups)


def shifted(x, dy, dx, padding=0):
    """x zero-padded by ``padding`` (int or pair) and moved so that out[..., y, x] =
    padded[..., y + dy, x + dx], zero where that is outside; conv2d of it with padding 0 is the
    conv whose every sample is moved by (dy, dx) (moving first and padding after would not be:
    a sample moved from the pad into the image sees a pixel)."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros_like(x)
    height, width = x.shape[-2:]
    ys, xs = slice(max(-dy, 0), min(height - dy, height)), slice(max(-dx, 0), min(width - dx, width))
    out[..., ys, xs] = x[..., ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]
    return out


# ---- the reference itself ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
def test_reference_matches_grid_sample_oracle(seed):
    case = CASES[seed]
    want = torch_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs()).numpy()
    assert relative_error(reference_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs()),
                          want) <= 1e-13


@pytest.mark.parametrize("seed", SEEDS[::3])
def test_reference_zero_offsets_is_conv2d(seed):
    case = CASES[seed]
    mask = None if case.mask is None else np.ones_like(case.mask)
    got = reference_deform_conv2d(case.input, 0 * case.offset, case.weight, case.bias, case.stride,
                                  case.padding, case.dilation, mask)
    assert relative_error(got, conv(case)) <= 1e-14


def test_random_cases_cover_the_grid():
    """The random cases reach what they are meant to: both group kinds, masks, biases, pairs,
    non-square kernels, and samples outside the image."""
    cases = CASES.values()
    assert any(c.groups > 1 for c in cases) and any(c.offset_groups > 1 for c in cases)
    assert any(c.groups != c.offset_groups > 1 for c in cases)
    assert any(c.mask is None for c in cases) and any(c.mask is not None for c in cases)
    assert any(c.bias is None for c in cases) and any(c.bias is not None for c in cases)
    assert any(c.weight.shape[2] != c.weight.shape[3] for c in cases)
    assert any(isinstance(c.stride, tuple) for c in cases) and any(c.dilation != 1 for c in cases)
    outside = sum(np.abs(c.offset).max() > max(c.input.shape[2:]) for c in cases)
    assert outside >= 5


# ---- parity with the reference ----------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_parity_with_reference(seed, dtype):
    case = CASES[seed].astype(dtype)
    got = ops.deform_conv2d(case.input, case.offset, case.weight, **case.kwargs())
    want = reference_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs())  # float64 of the same values
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("dtype, result", [(np.float16, np.float16), (np.int64, np.float64), (bool, np.float64)])
def test_dtype_policy(dtype, result):
    case = CASES[1].astype(np.float64)
    x = (case.input > 0).astype(dtype) if dtype is bool else np.round(case.input * 3).astype(dtype)
    offset, weight = case.offset.astype(result), case.weight.astype(result)
    bias = None if case.bias is None else case.bias.astype(result)
    got = ops.deform_conv2d(x, offset, weight, bias, case.stride, case.padding, case.dilation)
    assert got.dtype == np.dtype(result)
    want = reference_deform_conv2d(x, offset, weight, bias, case.stride, case.padding, case.dilation)
    assert relative_error(got, want) <= (2e-3 if result is np.float16 else 1e-12)


# ---- zero and integer offsets are plain convolutions -------------------------------------------
@pytest.mark.parametrize("seed", SEEDS[::2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_zero_offsets_are_conv2d(seed, dtype):
    case = CASES[seed].astype(dtype)
    zero = np.zeros_like(case.offset)
    want = conv(case)
    unit = np.ones((case.offset.shape[0], case.offset.shape[1] // 2) + case.offset.shape[2:], dtype)
    for mask in (None, unit):
        got = deform(case, offset=zero, mask=mask)
        assert got.dtype == want.dtype
        label = "no mask" if mask is None else "unit mask"
        assert relative_error(got, want) <= CONV_TOLERANCE[np.dtype(dtype)], label


@pytest.mark.parametrize("shift", [(1, 0), (0, -1), (2, -3), (-1, 1)], ids=str)
@pytest.mark.parametrize("seed", [2, 7, 11])
def test_integer_offsets_are_conv2d_of_shifted_input(seed, shift):
    case = CASES[seed]
    dy, dx = shift
    offset = np.empty_like(case.offset)
    offset[:, 0::2], offset[:, 1::2] = dy, dx
    got = deform(case, offset=offset, mask=None)
    assert relative_error(got, conv(case, x=shifted(case.input, dy, dx, case.padding), padding=0)) <= 1e-13


# ---- layouts: which channel moves which tap of which group ---------------------------------------
# C_in = 6 in 3 offset groups of 2 channels and 2 weight groups of 3: the boundaries differ
rng = np.random.default_rng(16)
X = rng.standard_normal((2, 6, 7, 8))
W = rng.standard_normal((4, 3, 2, 3))  # groups 2; kh=2, kw=3: 6 taps
LAYOUT = dict(stride=1, padding=(1, 2), dilation=(2, 1))
OUT = (2, 3 * 2 * 6) + deform_out_size((7, 8), (2, 3), (1, 1), (1, 2), (2, 1))  # the offset's shape
del rng


def only_tap(weight, t):
    """weight with every tap but t (= i * kw + j) set to zero."""
    out = np.zeros_like(weight)
    i, j = divmod(t, weight.shape[3])
    out[:, :, i, j] = weight[:, :, i, j]
    return out


def group_channels(x, g, offset_groups=3):
    """x with only offset group g's input channels kept."""
    out = np.zeros_like(x)
    size = x.shape[1] // offset_groups
    out[:, g * size:(g + 1) * size] = x[:, g * size:(g + 1) * size]
    return out


@pytest.mark.parametrize("g, t", [(0, 0), (1, 4), (2, 5), (1, 2)])
@pytest.mark.parametrize("axis", ["dy", "dx"])
def test_offset_channel_moves_one_tap_of_one_group(g, t, axis):
    """A unit offset only in channel g*2*kh*kw + 2*t (+1 for dx) moves tap t of offset group g's
    channels by one pixel: the change is conv2d of (shifted - original) through tap t alone."""
    offset = np.zeros(OUT)
    offset[:, g * 12 + 2 * t + (axis == "dx")] = 1.0
    got = ops.deform_conv2d(X, offset, W, **LAYOUT)
    base = F.conv2d(X, W, None, groups=2, **LAYOUT)
    unpadded = {**LAYOUT, "padding": 0}
    moved = shifted(X, 1, 0, LAYOUT["padding"]) if axis == "dy" else shifted(X, 0, 1, LAYOUT["padding"])
    change = F.conv2d(group_channels(moved - shifted(X, 0, 0, LAYOUT["padding"]), g), only_tap(W, t), None,
                      groups=2, **unpadded)
    assert np.abs(change).max() > 1.0  # the case makes the move visible
    assert relative_error(got - base, change) <= 1e-12


@pytest.mark.parametrize("g, t", [(0, 3), (2, 1)])
def test_mask_channel_scales_one_tap_of_one_group(g, t):
    """A zero only in mask channel g*kh*kw + t removes tap t of offset group g's channels."""
    mask = np.ones((2, 3 * 6) + OUT[2:])
    mask[:, g * 6 + t] = 0.0
    got = ops.deform_conv2d(X, np.zeros(OUT), W, mask=mask, **LAYOUT)
    want = F.conv2d(X, W, None, groups=2, **LAYOUT) - F.conv2d(group_channels(X, g), only_tap(W, t), None,
                                                               groups=2, **LAYOUT)
    assert relative_error(got, want) <= 1e-12


def test_offset_groups_split_channels_in_blocks():
    """Input channel c belongs to offset group c // (C_in // G) (blocks, not interleaved)."""
    offset = np.zeros(OUT)
    offset[:, 12:24] = rng_offsets = np.random.default_rng(3).standard_normal((2, 12) + OUT[2:])
    got = ops.deform_conv2d(X, offset, W, **LAYOUT)
    assert relative_error(got, reference_deform_conv2d(X, offset, W, **LAYOUT)) <= 1e-12
    # channels 2 and 3 are deformed, so zeroing every other channel keeps only that part
    part = ops.deform_conv2d(group_channels(X, 1), offset, W, **LAYOUT)
    plain = F.conv2d(group_channels(X, 1), W, None, groups=2, **LAYOUT)
    assert np.abs(part - plain).max() > 0.1 and rng_offsets.std() > 0.5
    assert relative_error(got - part, F.conv2d(X - group_channels(X, 1), W, None, groups=2, **LAYOUT)) <= 1e-12


# ---- edge cases of the rules ----------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_offsets_sample_zero(value):
    """y = +-inf is outside -1 < y < H, so the sample is 0 and so are its gradients (torchvision's
    test comes before any floor)."""
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1))
    offset = np.zeros((1, 2, 3, 3))
    offset[0, 0, 1, 1] = value
    want = np.ones((1, 1, 3, 3))
    want[0, 0, 1, 1] = 0.0
    assert np.array_equal(ops.deform_conv2d(x, offset, w), want)
    grads = ops.deform_conv2d_backward(np.ones((1, 1, 3, 3)), x, offset, w)
    assert np.array_equal(grads.offset[0, :, 1, 1], [0.0, 0.0])
    assert grads.input[0, 0, 1, 1] == 0.0  # the pixel only that sample would have read


def test_empty_batch():
    """An empty batch gives empty outputs and zero weight gradients, as conv2d does."""
    x, offset = np.zeros((0, 4, 5, 6)), np.zeros((0, 36, 3, 4))
    w = np.zeros((4, 2, 3, 3))
    assert ops.deform_conv2d(x, offset, w).shape == (0, 4, 3, 4)
    grads = ops.deform_conv2d_backward(np.zeros((0, 4, 3, 4)), x, offset, w)
    assert grads.input.shape == x.shape and grads.offset.shape == offset.shape and grads.weight.shape == w.shape
    assert not grads.weight.any()


# ---- refusals -----------------------------------------------------------------------------------
XR = np.zeros((2, 4, 6, 6))
WR = np.zeros((4, 2, 3, 3))  # groups 2
OFF = np.zeros((2, 36, 4, 4))  # 2 offset groups
MASK = np.zeros((2, 18, 4, 4))
REFUSALS = [  # (id, call, rule, numbers the message must show)
    ("offset-channels", lambda: ops.deform_conv2d(XR, np.zeros((2, 35, 4, 4)), WR), "deform_offset_channels",
     ["35", "18"]),
    ("offset-channels-zero", lambda: ops.deform_conv2d(XR, np.zeros((2, 0, 4, 4)), WR), "deform_offset_channels",
     ["0", "18"]),
    ("mask-channels", lambda: ops.deform_conv2d(XR, OFF, WR, mask=np.zeros((2, 9, 4, 4))), "deform_mask_channels",
     ["9", "18"]),
    ("offset-size", lambda: ops.deform_conv2d(XR, np.zeros((2, 36, 5, 4)), WR), "deform_offset_size", ["5", "4"]),
    ("mask-size", lambda: ops.deform_conv2d(XR, OFF, WR, mask=np.zeros((2, 18, 4, 3))), "deform_mask_size",
     ["3", "4"]),
    ("offset-batch", lambda: ops.deform_conv2d(XR, np.zeros((3, 36, 4, 4)), WR), "deform_batch", ["3", "2"]),
    ("mask-batch", lambda: ops.deform_conv2d(XR, OFF, WR, mask=np.zeros((1, 18, 4, 4))), "deform_batch",
     ["1", "2"]),
    ("in-channels-weight", lambda: ops.deform_conv2d(np.zeros((2, 5, 6, 6)), np.zeros((2, 18, 4, 4)), WR),
     "deform_groups", ["5", "2"]),  # groups are inferred, so torch's input_channels wording does not fit
    ("in-channels-offset-groups", lambda: ops.deform_conv2d(XR, np.zeros((2, 54, 4, 4)), np.zeros((4, 4, 3, 3))),
     "deform_offset_groups", ["4", "3"]),
    ("out-channels-groups", lambda: ops.deform_conv2d(XR, OFF, np.zeros((3, 2, 3, 3))), "weight_groups", ["3", "2"]),
    ("weight-rank", lambda: ops.deform_conv2d(XR, OFF, np.zeros((4, 2, 3))), "deform_rank", ["3"]),
    ("input-rank", lambda: ops.deform_conv2d(np.zeros((4, 6, 6)), OFF, WR), "deform_rank", ["3"]),
    ("offset-rank", lambda: ops.deform_conv2d(XR, np.zeros((36, 4, 4)), WR), "deform_rank", ["3"]),
    ("mask-rank", lambda: ops.deform_conv2d(XR, OFF, WR, mask=np.zeros((18, 4, 4))), "deform_rank", ["3"]),
    ("output-too-small", lambda: ops.deform_conv2d(np.zeros((2, 4, 2, 6)), np.zeros((2, 36, 0, 4)), WR),
     "kernel_fits", ["2", "3"]),
    ("bias-shape", lambda: ops.deform_conv2d(XR, OFF, WR, np.zeros(3)), "bias_shape", ["3", "4"]),
]


@pytest.mark.parametrize("call, rule, numbers", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_refusals_name_rule_and_numbers(call, rule, numbers):
    with pytest.raises(npconv.ConvRuleError) as caught:
        call()
    assert isinstance(caught.value, ValueError) and caught.value.rule == rule, caught.value.rule
    message = str(caught.value)
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d.])", message)]
    assert not missing, f"{missing} not in: {message}"


@pytest.mark.parametrize("which", ["input", "offset", "weight", "mask"])
def test_complex_operands_are_type_errors(which):
    operands = dict(input=XR, offset=OFF, weight=WR, mask=MASK)
    operands[which] = operands[which].astype(np.complex128)
    with pytest.raises(TypeError, match=rf"{which} is complex \(complex128\): torchvision's deform_conv2d has no "
                                        r"complex kernel"):
        ops.deform_conv2d(operands["input"], operands["offset"], operands["weight"], mask=operands["mask"])


def test_strings_are_type_errors():
    with pytest.raises(TypeError):
        ops.deform_conv2d(XR, OFF, WR, stride="2")
    with pytest.raises(TypeError, match="input"):
        ops.deform_conv2d("abc", OFF, WR)


def test_nan_offsets_give_nan_not_zero():
    """A NaN offset has no place to sample: its output is NaN (never silently 0), the others are kept."""
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1))
    offset = np.zeros((1, 2, 3, 3))
    offset[0, 1, 2, 0] = np.nan
    out = ops.deform_conv2d(x, offset, w)
    assert np.isnan(out[0, 0, 2, 0]) and np.isnan(out).sum() == 1


@pytest.mark.parametrize("name", ["input", "offset", "weight"])
def test_missing_operand_is_named(name):
    operands = dict(input=np.ones((1, 1, 3, 3)), offset=np.zeros((1, 2, 3, 3)), weight=np.ones((1, 1, 1, 1)))
    operands[name] = None
    with pytest.raises(TypeError, match=f"{name} must be an array, got None"):
        ops.deform_conv2d(**operands)


# ---- review findings: runs, threads, the workspace cap, torchvision's geometry ---------------------
@pytest.mark.parametrize("seed", range(4))
def test_many_runs_and_one_thread_give_the_same_numbers(seed, monkeypatch):
    """The engine's runs of output positions (forced to a few positions each) and a one-thread cap
    change nothing beyond rounding: forward and all five gradients against the reference / defaults."""
    case = random_deform_case(np.random.default_rng(200 + seed))
    gy = np.random.default_rng(seed).standard_normal((case.input.shape[0], case.weight.shape[0]) + case.out_size)
    whole = ops.deform_conv2d_backward(gy, case.input, case.offset, case.weight, **case.kwargs())
    monkeypatch.setattr(npconv.ops.deform_engine, "CHUNK_TARGET_BYTES", 64)
    with npconv.config(threads=1):
        out = deform(case)
        runs = ops.deform_conv2d_backward(gy, case.input, case.offset, case.weight, **case.kwargs())
    assert relative_error(out, reference_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs())) <= 1e-12
    for name, a, b in zip(whole._fields, whole, runs):
        assert (a is None) == (b is None), name
        if a is not None:
            assert relative_error(b, a) <= 1e-12, name


def test_sample_columns_are_what_the_weight_multiplies():
    """sample_columns (N, C*K, P): weight_g @ columns_g + bias is the output, per weight group."""
    case = random_deform_case(np.random.default_rng(7), with_bias=True)
    spec = ops.DeformSpec.of(case.input.shape, case.offset.shape, case.weight.shape,
                             mask_shape=None if case.mask is None else case.mask.shape, stride=case.stride,
                             padding=case.padding, dilation=case.dilation)
    columns = ops.sample_columns(case.input, case.offset, case.mask, spec)
    g = spec.groups
    w = case.weight.reshape(g, case.weight.shape[0] // g, -1)
    out = np.matmul(w, columns.reshape(columns.shape[0], g, -1, columns.shape[2])).reshape(
        (columns.shape[0], case.weight.shape[0]) + case.out_size) + case.bias.reshape(1, -1, 1, 1)
    assert relative_error(out, reference_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs())) <= 1e-12


def test_workspace_cap_refuses_before_any_work():
    """The channels-last planes and one position's columns must fit under the cap, as conv2d's scratch does."""
    x, w, offset = np.zeros((1, 64, 128, 128), np.float32), np.zeros((8, 64, 3, 3), np.float32), np.zeros((1, 18, 128, 128), np.float32)
    with npconv.config(workspace_limit=2**20), pytest.raises(ValueError, match=r"deformable conv needs at least \d+ bytes"):
        ops.deform_conv2d(x, offset, w, padding=1)


@pytest.mark.parametrize("padding", ["same", ((1, 2), (1, 1))])
def test_torchvision_face_takes_int_or_pair_padding_only(padding):
    """torchvision's _pair: strings and per-side pads are refused (ONNX's per-side pads: npconv.onnx.deform_conv)."""
    with pytest.raises(TypeError, match="padding"):
        ops.deform_conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 18, 5, 5)), np.zeros((1, 1, 3, 3)), padding=padding)


def test_fewer_input_channels_than_the_weight_reads():
    """C_in below weight.shape[1] (0 included) is the groups rule, not a made-up groups=0."""
    for channels in (0, 1):
        with pytest.raises(npconv.ConvRuleError, match=r"not a multiple of weight.shape\[1\]=2") as error:
            ops.deform_conv2d(np.zeros((1, channels, 4, 4)), np.zeros((1, 18, 2, 2)), np.zeros((2, 2, 3, 3)))
        assert error.value.rule == "deform_groups"
