"""unfold/fold in 1, 2 and 3 spatial dims, and pad, against PyTorch.

PyTorch's unfold/fold are 2-D only, so for every dim count the oracle is PyTorch's own
convolution with an identity kernel (unfold) and its autograd adjoint (fold); for 2-D,
PyTorch's F.unfold/F.fold are checked as well.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv.functional as F

from conftest import assert_matches

SPATIAL = {1: (10,), 2: (7, 6), 3: (5, 6, 4)}
BLOCKS = {
    "k2": dict(kernel_size=2),
    "k3-s2-p1": dict(kernel_size=3, stride=2, padding=1),
    "k2-d2": dict(kernel_size=2, dilation=2),
    "mixed": dict(kernel_size=(3, 2, 1), dilation=(1, 2, 1), padding=(1, 0, 2), stride=(2, 1, 3)),
    "k1-p2-s3": dict(kernel_size=1, padding=2, stride=3),
}


def _as_nd(params, n):
    """Tuple arguments of length n (so npconv knows the dim count), ints left as they are."""
    out = {}
    for key, value in {"dilation": 1, "padding": 0, "stride": 1, **params}.items():
        out[key] = tuple(value[:n]) if isinstance(value, tuple) else (value,) * n
    return out


def _torch_unfold(x, n, kernel_size, dilation, padding, stride):
    """Unfold as a grouped conv with an identity kernel: channel c*K + t copies tap t."""
    c, k = x.shape[1], math.prod(kernel_size)
    eye = torch.eye(k, dtype=x.dtype).reshape((k, 1) + tuple(kernel_size)).repeat(c, 1, *([1] * n))
    conv = getattr(TF, f"conv{n}d")
    y = conv(x, eye, None, stride, padding, dilation, groups=c)
    return y.reshape(y.shape[0], y.shape[1], -1)


CASES = [(n, name, dtype, batched) for n in SPATIAL for name in BLOCKS
         for dtype in (np.float32, np.float64) for batched in (True, False)]


@pytest.mark.parametrize("n,name,dtype,batched", CASES,
                         ids=[f"{n}d-{b}-{np.dtype(d).name}-{'batched' if u else 'unbatched'}"
                              for n, b, d, u in CASES])
def test_unfold_and_fold_match_torch(n, name, dtype, batched):
    params = _as_nd(BLOCKS[name], n)
    rng = np.random.default_rng(n * 100 + len(name))
    x = rng.standard_normal((2, 3) + SPATIAL[n]).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    want = _torch_unfold(tx, n, params["kernel_size"], params["dilation"], params["padding"],
                         params["stride"])
    got = F.unfold(x if batched else x[0], **params)
    assert_matches(got, want.detach().numpy() if batched else want.detach().numpy()[0], dtype)
    if n == 2:
        assert_matches(F.unfold(x, **params), TF.unfold(torch.from_numpy(x), **params), dtype)

    cols = rng.standard_normal(tuple(want.shape)).astype(dtype)
    (want * torch.from_numpy(cols)).sum().backward()  # fold is unfold's adjoint
    folded = F.fold(cols if batched else cols[0], SPATIAL[n], **params)
    assert_matches(folded, tx.grad.numpy() if batched else tx.grad.numpy()[0], dtype)
    if n == 2:
        assert_matches(F.fold(cols, SPATIAL[n], **params),
                       TF.fold(torch.from_numpy(cols), SPATIAL[n], **params), dtype)


def test_unfold_with_int_arguments_is_2d_as_in_torch(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    assert_matches(F.unfold(x, 3, padding=1), TF.unfold(torch.from_numpy(x), 3, padding=1), np.float64)


PAD_SHAPES = {1: (2, 3, 6), 2: (2, 3, 5, 6), 3: (2, 2, 4, 5, 6)}
PADS = {1: [(1, 2), (0, 3), (-1, 2), (2, -2)],
        2: [(1, 2, 3, 0), (2, -1, 1, 1), (0, 0, 4, 4)],
        3: [(1, 1, 2, 0, 0, 3), (-1, 2, 1, -1, 2, 2)]}
PAD_CASES = [(n, pads, mode, batched) for n in PADS for pads in PADS[n]
             for mode in ("constant", "reflect", "replicate", "circular") for batched in (True, False)]


@pytest.mark.parametrize("n,pads,mode,batched", PAD_CASES,
                         ids=[f"{n}d-{p}-{m}-{'b' if b else 'u'}" for n, p, m, b in PAD_CASES])
def test_pad_matches_torch(n, pads, mode, batched):
    x = np.random.default_rng(7).standard_normal(PAD_SHAPES[n])
    x = x if batched else x[0]
    want = TF.pad(torch.from_numpy(x), pads, mode=mode)
    np.testing.assert_array_equal(F.pad(x, pads, mode=mode), want.numpy())


@pytest.mark.parametrize("pads,value", [((1, 2), 0.0), ((2, 1, 0, 3), 7.5), ((1, 1, 1, 1, 1, 1, 1, 1), -2.0),
                                        ((-2, 1), 0.0)])
def test_pad_constant_any_number_of_dims(pads, value):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    want = TF.pad(torch.from_numpy(x), pads, value=value)
    np.testing.assert_array_equal(F.pad(x, pads, value=value), want.numpy())
