"""Every failure the fuzz suite (tests/test_fuzz.py) found, shrunk to a minimal case and kept
here as an explicit regression, run through the same comparison against PyTorch.

Add a case: copy the ``Case(...)`` hypothesis prints after "Falsifying example" or "Failing
test case", drop the fields at their defaults, and name it for what it broke.
"""

import pytest

from fuzz_oracle import Case, check_case
from fuzz_refusals import check_refusal

# (id, case): forward and every gradient must match PyTorch
MATCHES = [
    # transposed weight gradient when output_padding >= stride (allowed while dilation > stride):
    # the plain-conv twin has more outputs than the transposed input has positions
    ("transposed-k1-output_padding-reaches-stride",
     Case(n=1, transposed=True, in_channels=1, out_channels=1, groups=1, kernel=(1,), spatial=(1,), dilation=2,
          output_padding=1, bias=False)),
    ("transposed-2d-module-output_padding-beyond-stride-per-dim",
     Case(n=2, transposed=True, in_channels=2, out_channels=2, groups=2, kernel=(1, 1), spatial=(3, 4),
          stride=(1, 2), dilation=3, output_padding=(2, 1), entry="module")),
    ("transposed-3x2-pairs-output_padding-reaches-stride",
     Case(n=2, transposed=True, in_channels=4, out_channels=2, groups=2, kernel=(3, 2), spatial=(3, 4),
          stride=(2, 1), padding=((1, 2), 0), dilation=(1, 2), output_padding=(1, 1), entry="conv")),
    # empty batches: zero-sized results and zero weight gradients, as PyTorch gives
    ("empty-batch-depthwise_jit-conv1d",
     Case(n=1, transposed=False, in_channels=1, out_channels=1, groups=1, kernel=(2,), spatial=(2,), batch=0,
          bias=False, algorithm="depthwise_jit")),
    ("empty-batch-depthwise_jit-multiplier-grads",
     Case(n=2, transposed=False, in_channels=3, out_channels=6, groups=3, kernel=(3, 3), spatial=(5, 5), batch=0,
          entry="conv", algorithm="depthwise_jit")),
    ("empty-batch-pointwise",
     Case(n=2, transposed=False, in_channels=3, out_channels=4, groups=1, kernel=(1, 1), spatial=(5, 5), batch=0,
          entry="conv", algorithm="pointwise")),
    ("empty-batch-transposed-grouped",
     Case(n=1, transposed=True, in_channels=2, out_channels=2, groups=2, kernel=(3,), spatial=(1,), batch=0,
          bias=False)),
    ("empty-batch-transposed-weight-grad-reshape",
     Case(n=1, transposed=True, in_channels=1, out_channels=1, groups=1, kernel=(1,), spatial=(1,), batch=0,
          bias=False)),
    ("empty-batch-module-backward",
     Case(n=2, transposed=False, in_channels=3, out_channels=4, groups=1, kernel=(3, 3), spatial=(5, 5), batch=0,
          entry="module")),
    ("empty-batch-transposed-module-backward",
     Case(n=2, transposed=True, in_channels=3, out_channels=4, groups=1, kernel=(3, 3), spatial=(5, 5), stride=2,
          batch=0, entry="module")),
]

# (id, case, reason or None): npconv refuses exactly what PyTorch refuses
REFUSALS = [
    ("transposed-zero-output-channels-refused",
     Case(n=2, transposed=True, in_channels=2, out_channels=0, groups=1, kernel=(3, 3), spatial=(5, 5),
          bias=False),
     "npconv returns an empty (1, 0, 7, 7) output; PyTorch refuses a weight of size [2, 0, 3, 3]"),
    ("empty-batch-with-empty-spatial-dim-refused",  # PyTorch accepts it only because the batch is empty
     Case(n=2, transposed=False, in_channels=2, out_channels=3, groups=1, kernel=(1, 1), spatial=(0, 5), padding=1,
          batch=0, bias=False),
     None),
    ("transposed-empty-output-counts-as-refused",  # PyTorch's grouped path skips its own size check
     Case(n=3, transposed=True, in_channels=2, out_channels=2, groups=2, kernel=(1, 1, 1), spatial=(4, 4, 4),
          padding=2, bias=False, dtype="float32"),
     None),
    ("input-without-channels-refused-with-valueerror",
     Case(n=1, transposed=False, in_channels=1, out_channels=1, groups=1, kernel=(1,), spatial=(1,), bias=False,
          x_channels=0),
     "npconv's nearest-valid hint divides by the 0 groups an input of 0 channels suggests: ZeroDivisionError "
     "in spec._channel_fix instead of the channel-mismatch ValueError"),
    ("empty-batch-dilation-zero-refused",  # PyTorch skips its parameter checks on an empty batch
     Case(n=1, transposed=False, in_channels=1, out_channels=1, groups=1, kernel=(1,), spatial=(1,), dilation=0,
          batch=0, bias=False),
     None),
    ("weight-without-input-channels-refused-with-valueerror",
     Case(n=1, transposed=False, in_channels=1, out_channels=2, groups=2, kernel=(1,), spatial=(1,), bias=False),
     "weight (2, 0, 1) against a 1-channel input: the nearest-valid hint divides by weight.shape[1] = 0, "
     "ZeroDivisionError in spec._channel_fix instead of the channel-mismatch ValueError"),
    ("transposed-grouped-dilation-zero-refused",  # PyTorch's grouped path skips its dilation check
     Case(n=1, transposed=True, in_channels=2, out_channels=2, groups=2, kernel=(1,), spatial=(1,), dilation=0,
          bias=False, dtype="float32"),
     None),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in MATCHES])
def test_fuzz_regression_matches_torch(case):
    check_case(case)


def _refusal_param(name, case, reason):
    marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
    return pytest.param(case, id=name, marks=marks)


@pytest.mark.parametrize("case", [_refusal_param(*entry) for entry in REFUSALS])
def test_fuzz_regression_refusals_agree(case):
    check_refusal(case)
