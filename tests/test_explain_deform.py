"""npconv.explain.explain_deform_output: one output of a deformable conv, tap by tap.

Oracles: npconv.ops.deform_conv2d's value of the same element (the taps must add up to it),
sums worked by hand, explain_output (zero offsets and no mask are a plain conv), and the rules
of bilinear interpolation (weights add up to 1; a point or corner outside the image adds 0)."""

import math

import numpy as np
import pytest

import npconv
from npconv.cli import main
from npconv.explain import (BilinearCorner, DeformExplanation, deformable_example, explain_deform_output,
                            explain_output)
from npconv.ops import deform_conv2d

# (C_in, C_out, groups, offset groups, H, W, kernel, stride, padding, dilation, mask, bias)
CASES = {
    "plain-3x3": (1, 1, 1, 1, 5, 5, (3, 3), 1, 0, 1, False, False),
    "mask-bias-pad1": (2, 3, 1, 1, 6, 5, (3, 3), 1, 1, 1, True, True),
    "groups2-offset-groups2": (4, 6, 2, 2, 5, 6, (3, 3), 1, 1, 1, True, True),
    "offset-groups4-groups1": (4, 2, 1, 4, 5, 5, (2, 3), 1, (1, 0), 1, True, False),
    "depthwise-offset-groups2": (4, 4, 4, 2, 6, 6, (3, 3), 1, 1, 1, False, True),
    "groups2-offset-groups1": (4, 2, 2, 1, 6, 5, (3, 2), 1, 1, 1, True, True),
    "stride2-dilation2": (2, 2, 1, 2, 9, 8, (3, 3), 2, 2, 2, True, True),
    "stride-pad-dilation-pairs": (3, 3, 3, 3, 8, 9, (2, 3), (2, 1), (1, 2), (2, 1), False, False),
    "1x1-kernel": (2, 4, 2, 2, 4, 4, (1, 1), 1, 0, 1, True, True),
}


def operands(case, seed=0, dtype=np.float64):
    """Random input, offsets (uniform in +-3: many points between pixels, some outside), weight,
    bias and mask for a case; the output's shape."""
    c_in, c_out, groups, og, h, w, k, stride, padding, dilation, masked, biased = case
    rng = np.random.default_rng(seed)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (k[0] - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (k[1] - 1) - 1) // sw + 1
    taps = k[0] * k[1]
    args = dict(input=rng.standard_normal((2, c_in, h, w)).astype(dtype),
                offset=rng.uniform(-3, 3, (2, 2 * og * taps, oh, ow)).astype(dtype),
                weight=rng.standard_normal((c_out, c_in // groups, *k)).astype(dtype),
                bias=rng.standard_normal(c_out).astype(dtype) if biased else None,
                stride=stride, padding=padding, dilation=dilation,
                mask=rng.uniform(0, 1, (2, og * taps, oh, ow)).astype(dtype) if masked else None)
    return args, (2, c_out, oh, ow)


def some_indices(shape, count=5, seed=1):
    rng = np.random.default_rng(seed)
    picked = {(0, 0, 0, 0), tuple(s - 1 for s in shape)}
    picked |= {tuple(int(rng.integers(s)) for s in shape) for _ in range(count)}
    return sorted(picked)


def magnitude(e: DeformExplanation) -> float:
    return math.fsum(abs(t.product) for t in e.terms) + abs(e.bias)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_taps_add_up_to_deform_conv2d(case):
    args, shape = operands(case)
    out = deform_conv2d(**args)
    assert out.shape == shape
    for index in some_indices(shape):
        e = explain_deform_output(**args, index=index)
        assert e.value == out[index]
        assert abs(e.total - out[index]) <= 1e-12 * max(magnitude(e), 1e-300), (index, e.total, out[index])
        assert e.agrees
        c_in, _, groups, *_ = case
        assert len(e.terms) == c_in // groups * math.prod(case[6])


def test_float32_agrees_within_its_rounding():
    args, shape = operands(CASES["groups2-offset-groups2"], dtype=np.float32)
    out = deform_conv2d(**args)
    assert out.dtype == np.float32
    for index in some_indices(shape):
        e = explain_deform_output(**args, index=index)
        assert e.value == out[index] and e.agrees
        assert abs(e.total - e.value) <= 1e-5 * max(magnitude(e), 1e-30)


def test_corner_weights_add_up_to_one_for_an_interior_point():
    args, shape = operands(CASES["mask-bias-pad1"], seed=3)
    interior = 0
    for index in some_indices(shape):
        for t in explain_deform_output(**args, index=index).terms:
            if t.inside:
                assert len(t.corners) == 4
                assert math.isclose(sum(c.weight for c in t.corners), 1.0, rel_tol=0, abs_tol=1e-15)
                assert all(0 <= c.weight <= 1 for c in t.corners)
            if t.inside and all(c.inside for c in t.corners):
                interior += 1
    assert interior > 10


def test_a_point_outside_the_image_adds_zero():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    offset = np.zeros((1, 2, 5, 5))
    offset[0, :, 2, 2] = (-3.0, 0.5)  # (2, 2) + (-3, 0.5) = (-1, 2.5): y = -1 is not > -1
    offset[0, :, 0, 0] = (0.5, 10.0)
    for index in ((0, 0, 2, 2), (0, 0, 0, 0)):
        e = explain_deform_output(x, offset, np.full((1, 1, 1, 1), 7.0), np.array([0.25]), index=index)
        (t,) = e.terms
        assert not t.inside and t.corners == () and t.sample == 0 and t.product == 0
        assert e.total == e.value == 0.25
        assert "outside -1 < y < 5, -1 < x < 5: adds 0" in e.text()
        assert e.sum_line() == "0.25 = 0 + bias 0.25"


def test_a_corner_outside_the_image_adds_zero():
    """Tap (2,0) of the CLI example samples (3.25, -0.75): column -1 lies outside the image."""
    tap = deformable_example().terms[6]
    assert tap.tap == (2, 0) and tap.point == (3.25, -0.75) and tap.inside
    assert tap.corners == (BilinearCorner((3, -1), 0.5625, 0.0, False), BilinearCorner((3, 0), 0.1875, 15.0, True),
                           BilinearCorner((4, -1), 0.1875, 0.0, False), BilinearCorner((4, 0), 0.0625, 20.0, True))
    assert tap.sample == 0.1875 * 15 + 0.0625 * 20 == 4.0625


def test_one_tap_worked_by_hand():
    """A 1x1 kernel (weight 3), bias -1, mask 0.5; output (0, 0) samples (0, 0) + (0.5, 0.25).
    Corners: (0,0)=1 weighs 0.5*0.75 = 0.375, (0,1)=2 weighs 0.5*0.25 = 0.125,
    (1,0)=8 weighs 0.375, (1,1)=16 weighs 0.125; sample = 0.375 + 0.25 + 3 + 2 = 5.625;
    output = 3 * 0.5 * 5.625 - 1 = 7.4375."""
    x = np.array([[[[1.0, 2, 4], [8, 16, 32], [64, 128, 256]]]])
    offset = np.zeros((1, 2, 3, 3))
    offset[0, :, 0, 0] = (0.5, 0.25)
    e = explain_deform_output(x, offset, np.full((1, 1, 1, 1), 3.0), np.array([-1.0]),
                              mask=np.full((1, 1, 3, 3), 0.5), index=(0, 0, 0, 0))
    (t,) = e.terms
    assert (t.regular, t.offset, t.point, t.inside) == ((0, 0), (0.5, 0.25), (0.5, 0.25), True)
    assert [(c.position, c.weight, c.value) for c in t.corners] == [
        ((0, 0), 0.375, 1.0), ((0, 1), 0.125, 2.0), ((1, 0), 0.375, 8.0), ((1, 1), 0.125, 16.0)]
    assert (t.sample, t.mask, t.weight, t.product) == (5.625, 0.5, 3.0, 8.4375)
    assert e.total == e.value == 7.4375
    assert e.sum_line() == "7.4375 = 3*0.5*5.625 + bias -1"  # the weight is not 1, so it is shown
    assert "(0,0) 0.375*1 + (0,1) 0.125*2 + (1,0) 0.375*8 + (1,1) 0.125*16 = 5.625" in e.text()


def test_zero_offsets_and_no_mask_explain_as_a_plain_conv():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    offset = np.zeros((1, 18, 5, 5))
    for index in ((0, 0, 0, 0), (0, 2, 2, 3), (0, 1, 4, 4)):
        deform = explain_deform_output(x, offset, w, padding=1, index=index)
        plain = explain_output(x, w, index, padding=1)
        assert [t.product for t in deform.terms] == [t.weight * t.value for t in plain.terms]
        assert all(t.mask == 1 for t in deform.terms)
        assert math.isclose(deform.value, plain.value, rel_tol=1e-12, abs_tol=1e-12)


def test_the_explanation_is_data_and_text():
    args, shape = operands(CASES["groups2-offset-groups2"])
    e = explain_deform_output(**args, index=(1, 4, 2, 3))
    records = e.records()
    assert len(records) == 2 * 9 and records[0]["channel"] == 2 and records[-1]["channel"] == 3
    assert {r["offset_group"] for r in records} == {1}  # channels 2 and 3 of 4: the second offset group
    assert set(records[0]) == {"channel", "offset_group", "tap", "regular", "offset", "point", "inside", "corners",
                               "sample", "mask", "weight", "product"}
    assert math.fsum(r["product"] for r in records) + e.bias == e.total
    text = str(e)
    assert text.startswith("deform_conv2d output[1, 4, 2, 3]: stride (1, 1), padding ((1, 1), (1, 1))")
    assert "offset groups 2, mask (v2)" in text and "reads input channels 2..3, 9 taps each" in text
    assert len(text.splitlines()) == 3 + 2 + 18 + 2 + 18 + 2
    assert text.splitlines()[-1].startswith("\u2713 sum of the products + bias")
    assert "<table>" in e._repr_html_()


def test_v1_leaves_the_mask_out_of_the_sum():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    e = explain_deform_output(x, np.zeros((1, 8, 2, 2)), np.ones((1, 1, 2, 2)), index=(0, 0, 1, 0))
    assert e.sum_line() == "20 = 3 + 4 + 6 + 7"
    assert "no mask (v1: every mask 1)" in e.heading()


def test_a_non_finite_offset_gives_nan_as_the_engine_does():
    offset = np.zeros((1, 2, 3, 3))
    offset[0, 0, 1, 1] = np.nan
    x = np.ones((1, 1, 3, 3))
    e = explain_deform_output(x, offset, np.ones((1, 1, 1, 1)), index=(0, 0, 1, 1))
    assert math.isnan(e.terms[0].sample) and math.isnan(e.total) and math.isnan(e.value) and e.agrees
    assert "not a finite point: the sample is NaN" in e.text()


def test_refusals_are_the_engines():
    args, shape = operands(CASES["plain-3x3"])
    with pytest.raises(ValueError, match="outside the shape"):
        explain_deform_output(**args, index=(0, 0, 3, 0))
    with pytest.raises(npconv.ConvRuleError) as refused:
        explain_deform_output(args["input"], args["offset"][:, :17], args["weight"], index=(0, 0, 0, 0))
    assert refused.value.rule == "deform_offset_channels"


def test_the_cli_prints_the_deformable_example(capsys):
    assert main(["explain", "--deformable"]) == 0
    out = capsys.readouterr().out
    assert "A deformable 3x3 conv (v2: with a mask) on a 5x5 input" in out
    assert "55.8125 = 1*8.75 + 1*7 + 1*6 + 1*11 + 0.5*12 + 1*12.5 + 1*4.0625 + 0*22 + bias 0.5" in out
    assert "channel 0 tap (2,2) at (5,4.5): outside -1 < y < 5, -1 < x < 5: adds 0" in out
    assert "(3,-1) 0.5625*0 (outside)" in out
    assert out.rstrip().endswith("\u2713 sum of the products + bias 0.5 = 55.8125; "
                                 "npconv.ops.deform_conv2d gives 55.8125")


def test_the_cli_example_takes_no_shapes(capsys):
    assert main(["explain", "--deformable", "--input", "1,1,5,5"]) == 2
    assert "--deformable prints its own example" in capsys.readouterr().err


def test_infinite_offset_and_integer_operands_are_read_as_the_engine_reads_them():
    """An infinite offset samples outside (0, as deform_conv2d gives); int arrays are read as float64."""
    x = np.arange(25).reshape(1, 1, 5, 5)
    offset = np.zeros((1, 2, 5, 5))
    offset[0, 0, 1, 1] = np.inf
    explanation = explain_deform_output(x, offset, np.ones((1, 1, 1, 1), int), index=(0, 0, 1, 1))
    assert (explanation.value, explanation.total, explanation.agrees) == (0.0, 0.0, True)
    with pytest.raises(TypeError, match="offset must be an array, got None"):
        explain_deform_output(x, None, np.ones((1, 1, 1, 1)), index=(0, 0, 1, 1))
