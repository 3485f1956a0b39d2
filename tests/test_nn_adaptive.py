"""The adaptive pools (npconv.nn.adaptive) against torch.nn: values, gradients and indices
for divisible, non-divisible and enlarging sizes, None entries, unbatched and channels-last
inputs, ties and NaN, repr and refusals."""

import numpy as np
import pytest
import torch

from conftest import assert_matches
from npconv.nn.adaptive import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool2d,
                                adaptive_windows)

CASES = [
    (AdaptiveAvgPool1d, 3, (2, 3, 7)),
    (AdaptiveAvgPool1d, (7,), (2, 3, 5)),  # enlarging: overlapping windows
    (AdaptiveAvgPool2d, 1, (2, 3, 5, 6)),
    (AdaptiveAvgPool2d, (3, 4), (2, 3, 7, 5)),
    (AdaptiveAvgPool2d, (2, 3), (2, 3, 8, 9)),  # divisible
    (AdaptiveAvgPool2d, (None, 3), (2, 3, 7, 6)),
    (AdaptiveAvgPool2d, [5, 7], (1, 2, 3, 5)),
    (AdaptiveAvgPool3d, (1, None, 2), (1, 2, 3, 4, 5)),
    (AdaptiveAvgPool3d, 2, (2, 2, 5, 3, 4)),
    (AdaptiveMaxPool2d, 1, (2, 3, 5, 6)),
    (AdaptiveMaxPool2d, (3, 4), (2, 3, 7, 5)),
    (AdaptiveMaxPool2d, (None, 2), (2, 3, 4, 6)),
    (AdaptiveMaxPool2d, (5, 7), (1, 2, 3, 5)),
]
IDS = [f"{cls.__name__}-{size}-{shape}" for cls, size, shape in CASES]


def _run_torch(cls, size, x, gy):
    """torch's output and input gradient, and the torch module."""
    module = getattr(torch.nn, cls.__name__)(size)
    tx = torch.from_numpy(x).requires_grad_()
    y = module(tx)
    y.backward(torch.from_numpy(gy))
    return module, y, tx.grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("cls,size,shape", CASES, ids=IDS)
def test_pool_matches_torch(cls, size, shape, batched, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x = x if batched else x[0]
    ours = cls(size)
    y = ours(x)
    gy = rng.standard_normal(y.shape).astype(dtype)
    theirs, y_t, gx_t = _run_torch(cls, size, x, gy)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    assert_matches(y, y_t, dtype, "output")
    assert_matches(ours.backward(gy), gx_t, dtype, "input gradient")


@pytest.mark.parametrize("cls,size", [(AdaptiveAvgPool2d, 1), (AdaptiveAvgPool2d, (3, 4)), (AdaptiveMaxPool2d, (3, 4))])
def test_channels_last_layout_is_kept(cls, size, rng):
    x = rng.standard_normal((2, 7, 5, 3)).astype(np.float32).transpose(0, 3, 1, 2)  # NCHW, NHWC strides
    ours = cls(size)
    y = ours(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    _, y_t, gx_t = _run_torch(cls, size, x, gy)
    assert_matches(y, y_t, np.float32, "output")
    gx = ours.backward(gy)
    assert_matches(gx, gx_t, np.float32, "input gradient")
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous and gx.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [(2, 3), 1, (3, 5)])
def test_max_indices_ties_and_nan_match_torch(size, channels_last, rng):
    x = rng.integers(0, 3, (2, 3, 6, 7)).astype(np.float64)  # many equal maxima
    x[0, 0, rng.integers(0, 6, 4), rng.integers(0, 7, 4)] = np.nan
    x[1, 2, :3, :3] = -np.inf
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    tx = torch.from_numpy(x).requires_grad_()
    y_t, i_t = torch.nn.AdaptiveMaxPool2d(size, return_indices=True)(tx)
    gy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.from_numpy(gy))
    ours = AdaptiveMaxPool2d(size, return_indices=True)
    y, index = ours(x)
    np.testing.assert_array_equal(y, y_t.detach().numpy())  # NaN in the same places
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, i_t.numpy())
    np.testing.assert_array_equal(ours.backward(gy), tx.grad.numpy())


def test_unbatched_indices():
    x = np.array([[[1.0, 5.0, 2.0], [4.0, 0.0, 3.0]]])
    y, index = AdaptiveMaxPool2d((2, 2), return_indices=True)(x)
    y_t, i_t = torch.nn.AdaptiveMaxPool2d((2, 2), return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(y, y_t.numpy())
    np.testing.assert_array_equal(index, i_t.numpy())


def test_windows_follow_torchs_rule():
    assert adaptive_windows(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert adaptive_windows(5, 7) == [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5)]
    assert adaptive_windows(6, 2) == [(0, 3), (3, 6)]


@pytest.mark.parametrize("cls", [AdaptiveAvgPool2d, AdaptiveMaxPool2d])
@pytest.mark.parametrize("size", [0, (0, 2)])
def test_zero_output_size_gives_empty_output(cls, size):
    x = np.ones((1, 2, 4, 4))
    want = getattr(torch.nn, cls.__name__)(size)(torch.from_numpy(x))
    ours = cls(size)
    y = ours(x)
    assert y.shape == tuple(want.shape)
    np.testing.assert_array_equal(ours.backward(np.ones(y.shape)), np.zeros(x.shape))


def test_reprs_show_output_size_as_given():
    for cls, size in [(AdaptiveAvgPool2d, 1), (AdaptiveAvgPool2d, (7, 7)), (AdaptiveAvgPool2d, (None, 3)),
                      (AdaptiveAvgPool1d, 3), (AdaptiveAvgPool3d, (1, None, 2)), (AdaptiveMaxPool2d, [2, 3])]:
        assert repr(cls(size)) == repr(getattr(torch.nn, cls.__name__)(size))
    assert repr(AdaptiveMaxPool2d(2, True)) == repr(torch.nn.AdaptiveMaxPool2d(2, True))


@pytest.mark.parametrize("cls,size,error,match", [
    (AdaptiveAvgPool2d, (2, 3, 4), ValueError, "output_size must be 2"),
    (AdaptiveMaxPool2d, (2,), ValueError, "output_size must be 2"),
    (AdaptiveAvgPool1d, (3, 4), ValueError, "output_size must be 1"),
    (AdaptiveAvgPool3d, -1, ValueError, "greater than or equal to 0"),
    (AdaptiveMaxPool2d, (2, -1), ValueError, "greater than or equal to 0"),
    (AdaptiveAvgPool1d, None, TypeError, "must be tuple of ints, not NoneType"),
    (AdaptiveAvgPool2d, 2.0, TypeError, "got float"),
    (AdaptiveAvgPool2d, True, TypeError, "got bool"),
])
def test_bad_output_size_is_refused(cls, size, error, match):
    with pytest.raises(error, match=match):
        cls(size)


@pytest.mark.parametrize("cls,shape,match", [
    (AdaptiveAvgPool2d, (4,), r"Expected 3D or 4D tensor, but got \[4\]"),
    (AdaptiveMaxPool2d, (1, 1, 1, 4, 4), r"Expected 3D or 4D tensor"),
    (AdaptiveAvgPool1d, (1, 1, 1, 4), r"Expected 2D or 3D tensor"),
    (AdaptiveAvgPool3d, (4, 4, 4), r"Expected 4D or 5D tensor"),
    (AdaptiveAvgPool2d, (1, 1, 0, 4), r"non-zero size for non-batch dimensions.*dimension 2 being empty"),
    (AdaptiveMaxPool2d, (1, 0, 3, 4), r"dimension 1 being empty"),
])
def test_bad_input_is_refused(cls, shape, match):
    with pytest.raises(ValueError, match=match):
        cls(2)(np.ones(shape))


def test_complex_and_backward_before_forward_are_refused():
    with pytest.raises(TypeError, match="complex"):
        AdaptiveAvgPool2d(1)(np.ones((1, 2, 3), complex))
    with pytest.raises(RuntimeError, match="run forward first"):
        AdaptiveMaxPool2d(1).backward(np.ones((1, 1, 1, 1)))


def test_empty_batch_matches_torch():
    x = np.ones((0, 2, 5, 5), np.float32)
    for cls in (AdaptiveAvgPool2d, AdaptiveMaxPool2d):
        y = cls((2, 3))(x)
        assert y.shape == tuple(getattr(torch.nn, cls.__name__)((2, 3))(torch.from_numpy(x)).shape)


def test_identity_sizes_give_a_new_array(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = AdaptiveAvgPool2d((None, 5))(x)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)
