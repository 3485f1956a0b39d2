"""Shape arithmetic of the spec object, by invariants and brute force."""

import dataclasses
import itertools
import math

import pytest

from npconv.spec import ConvSpec, parameter_count, weight_shape


def count_windows(size, lo, hi, k, stride, dilation):
    """Brute force: how many window starts fit in the padded input."""
    ek = dilation * (k - 1) + 1
    return len(range(0, size + lo + hi - ek + 1, stride))


@pytest.mark.parametrize("size,k,stride,dilation,pad", list(itertools.product((5, 8, 13), (1, 2, 3, 5), (1, 2, 3),
                                                                          (1, 2), (0, 1, 3))))
def test_out_size_is_the_number_of_windows(size, k, stride, dilation, pad):
    spec = ConvSpec.build(k, stride, pad, dilation, ndim=1)
    if size + 2 * pad < dilation * (k - 1) + 1:
        with pytest.raises(ValueError):
            spec.out_spatial((size,))
    else:
        assert spec.out_spatial((size,)) == (count_windows(size, pad, pad, k, stride, dilation),)


@pytest.mark.parametrize("size,k,stride,dilation", list(itertools.product((1, 4, 7, 10), (1, 2, 3, 4), (1, 2, 3), (1, 2))))
def test_same_gives_ceil_in_over_stride(size, k, stride, dilation):
    for rule in ("same", "same_lower"):
        spec = ConvSpec.build(k, stride, rule, dilation, ndim=1)
        (lo, hi), = spec.pads((size,))
        assert abs(lo - hi) <= 1 and (hi >= lo if rule == "same" else lo >= hi)
        assert spec.out_spatial((size,)) == (math.ceil(size / stride),)


@pytest.mark.parametrize("size,k,stride,dilation,pad", list(itertools.product((1, 3, 6), (1, 2, 3), (1, 2, 3), (1, 2),
                                                                          (0, 1))))
def test_transposed_inverts_conv_shape(size, k, stride, dilation, pad):
    """Every size in the transposed range convolves back to the input size."""
    spec = ConvSpec.build(k, stride, pad, dilation, transposed=True, ndim=1)
    forward = ConvSpec.build(k, stride, pad, dilation, ndim=1)
    try:
        (low, high), = spec.transposed_out_range((size,))
    except ValueError:
        return  # output too small: the refusal is tested in test_errors
    for out in range(max(low, 1), high + 1):
        assert forward.out_spatial((out,)) == (size,)


def test_spec_is_frozen_and_normalised():
    spec = ConvSpec.build((3, 5), stride=2, padding=((1, 2), 0), dilation=(1, 2))
    assert spec.padding == ((1, 2), (0, 0)) and spec.stride == (2, 2) and spec.effective_kernel == (3, 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stride = (1, 1)


def test_same_at_stride_one_is_resolved_once():
    assert ConvSpec.build((4, 3), padding="same", dilation=(2, 1)).padding == ((3, 3), (1, 1))
    same = ConvSpec.build(3, stride=2, padding="same")
    assert (same.padding, same.same_rule) == (((0, 0), (0, 0)), "same")  # pairs always, the rule beside
    assert same.pads((7, 8)) == ((1, 1), (0, 1))  # out = ceil(in / 2): 4 from 7 + 2 - 3, 4 from 8 + 1 - 3
    assert ConvSpec.build(3, padding="same").same_rule is None  # stride 1: shape-free pairs, no rule


def test_op_is_a_label_not_part_of_the_problem():
    """F.conv2d, nn.Conv2d, keras and onnx of one shape are one spec: equal, one hash, one repr."""
    specs = [ConvSpec.build((3, 3), 2, 1, op=op) for op in ("conv2d", "Conv2d", "Conv", "conv2d_keras")]
    assert len(set(specs)) == 1 and len({repr(s) for s in specs}) == 1
    assert [s.op for s in specs] == ["conv2d", "Conv2d", "Conv", "conv2d_keras"]
    assert ConvSpec.build((3, 3), 2, 1) != ConvSpec.build((3, 3), 2, 2)


def test_refusals_carry_the_rule_and_the_numbers():
    from npconv.spec_errors import ConvRuleError
    with pytest.raises(ConvRuleError) as refused:
        ConvSpec.build((5, 5), padding=1, dilation=2, op="conv2d").out_spatial((6, 6))
    error = refused.value
    assert isinstance(error, ValueError)
    assert (error.rule, error.param, error.dim, error.op) == ("kernel_fits", "kernel_size", 0, "conv2d")
    assert {k: error.numbers[k] for k in ("size", "lo", "hi", "padded", "effective")} == \
        {"size": 6, "lo": 1, "hi": 1, "padded": 8, "effective": 9}
    assert error.nearest.startswith("padding 2 per side")
    import pickle
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.numbers) == (ConvRuleError, str(error), error.numbers)


def test_weight_shapes_and_parameter_count():
    assert weight_shape(64, 128, (3, 3), groups=4) == (128, 16, 3, 3)
    assert weight_shape(64, 128, (3, 3), groups=4, transposed=True) == (64, 32, 3, 3)
    assert parameter_count(3, 16, (5, 5)) == 1216
    assert parameter_count(64, 128, (3, 3), groups=4, bias=False) == 128 * 16 * 9
