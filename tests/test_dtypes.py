"""The dtype policy and special values, against PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv
import npconv.functional as F

from conftest import assert_matches, relative_error


@pytest.fixture
def operands(rng):
    return rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(operands, dtype):
    x, w, b = (a.astype(dtype) for a in operands)
    assert F.conv2d(x, w, b, groups=2).dtype == dtype
    assert F.conv_transpose2d(x[:, :4], np.ones((4, 2, 2, 2), dtype)).dtype == dtype


def test_float16_is_computed_in_float32_and_returned_as_float16(operands):
    x, w, b = (a.astype(np.float16) for a in operands)
    got = F.conv2d(x, w, b, padding=1, groups=2)
    assert got.dtype == np.float16
    want = TF.conv2d(*(torch.from_numpy(a.astype(np.float32)) for a in (x, w, b)), padding=1, groups=2)
    np.testing.assert_array_equal(got, want.numpy().astype(np.float16))  # float32 result, rounded once


def test_mixed_float_dtypes_promote_as_numpy(operands):
    x, w, b = operands
    got = F.conv2d(x.astype(np.float32), w, b.astype(np.float32), groups=2)
    assert got.dtype == np.float64
    want = TF.conv2d(torch.from_numpy(x.astype(np.float32)).double(), torch.from_numpy(w),
                     torch.from_numpy(b.astype(np.float32)).double(), groups=2)
    assert_matches(got, want, np.float64)


def test_integers_and_lists_become_float64():
    x = [[[1, 2, 3, 4, 5, 6, 7, 8, 9]]]
    got = F.conv1d(x, [[[1, 1, 1, 1, 1]]])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[[15, 20, 25, 30, 35]]])
    assert F.conv1d(np.arange(9).reshape(1, 1, 9), np.ones((1, 1, 2), bool)).dtype == np.float64


def test_torch_tensors_are_array_likes(operands):
    x, w, _ = (torch.from_numpy(a) for a in operands)
    assert_matches(F.conv2d(x, w, groups=2), TF.conv2d(x, w, groups=2), np.float64)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_nan_and_inf_propagate_as_in_torch(rng, mode):
    x = rng.standard_normal((1, 2, 8, 8))
    x[0, 0, 0, 0], x[0, 1, 5, 3] = np.nan, np.inf
    w = rng.standard_normal((3, 2, 3, 3))
    got = F.conv2d(x, w, padding=1, padding_mode=mode)
    want = torch.nn.functional.conv2d(
        TF.pad(torch.from_numpy(x), (1, 1, 1, 1), mode="constant" if mode == "zeros" else mode), torch.from_numpy(w)
    ).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert relative_error(got[finite], want[finite]) < 1e-12


def test_empty_batch(rng):
    got = F.conv2d(np.zeros((0, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)))
    assert got.shape == (0, 4, 3, 3)


def test_primitive_infers_dims_from_weight(rng):
    x, w = rng.standard_normal((2, 3, 5, 4, 6)), rng.standard_normal((4, 3, 2, 3, 2))
    want = TF.conv3d(torch.from_numpy(x), torch.from_numpy(w), stride=(1, 2, 1), padding=1)
    assert_matches(npconv.conv(x, w, stride=(1, 2, 1), padding=1), want, np.float64)


@pytest.mark.parametrize("rule,expected_pads", [("same_lower", (3, 2)), ("causal", (5, 0)), ("same", (2, 3))])
def test_padding_rule_extensions(rng, rule, expected_pads):
    """k=6 stride 1: total 5; SAME_UPPER puts the odd pad after, SAME_LOWER before, causal all before."""
    x, w = rng.standard_normal((1, 2, 9)), rng.standard_normal((3, 2, 6))
    want = TF.conv1d(TF.pad(torch.from_numpy(x), expected_pads), torch.from_numpy(w))
    assert_matches(F.conv1d(x, w, padding=rule), want, np.float64)
