"""One test per refusal: the exception type, PyTorch's wording where it has one, and the
numbers.  Every refusal happens before any arithmetic (the algorithm is never entered)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv
import npconv.core
import npconv.functional as F
from npconv import nn

X = np.zeros((1, 6, 8, 8), np.float32)
W = np.zeros((4, 6, 3, 3), np.float32)


def t(*arrays):
    return [torch.from_numpy(np.asarray(a)) for a in arrays]


# (id, npconv call, exception, fragments in npconv's message, PyTorch call raising the same words or None)
CASES = [
    ("groups-zero", lambda: F.conv2d(X, W, groups=0), ValueError,
     ["non-positive groups is not supported", "groups=0"], lambda: TF.conv2d(*t(X, W), groups=0)),
    ("groups-float", lambda: F.conv2d(X, W, groups=1.5), TypeError, ["groups must be a positive integer", "1.5"], None),
    ("stride-zero", lambda: F.conv2d(X, W, stride=0), ValueError,
     ["non-positive stride is not supported", "stride=(0, 0)"], lambda: TF.conv2d(*t(X, W), stride=0)),
    ("padding-negative", lambda: F.conv2d(X, W, padding=-1), ValueError,
     ["negative padding is not supported", "padding=-1"], lambda: TF.conv2d(*t(X, W), padding=-1)),
    ("dilation-zero", lambda: F.conv2d(X, W, dilation=0), ValueError,
     ["dilation should be greater than zero", "dilation=(0, 0)"], lambda: TF.conv2d(*t(X, W), dilation=0)),
    ("kernel-zero", lambda: F.conv2d(X, np.zeros((4, 6, 0, 3))), ValueError,
     ["kernel size should be greater than zero", "kernel_size=(0, 3)"], None),
    ("input-rank", lambda: F.conv2d(np.zeros((6, 8)), W), ValueError,
     ["Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [6, 8]"],
     lambda: TF.conv2d(torch.zeros(6, 8), torch.zeros(4, 6, 3, 3))),
    ("input-channels", lambda: F.conv2d(X, np.zeros((4, 2, 3, 3)), groups=2), ValueError,
     ["Given groups=2, weight of size [4, 2, 3, 3], expected input[1, 6, 8, 8] to have 4 channels, "
      "but got 6 channels instead"], lambda: TF.conv2d(*t(X, np.zeros((4, 2, 3, 3), np.float32)), groups=2)),
    ("weight-groups", lambda: F.conv2d(np.zeros((1, 3, 8, 8)), np.zeros((4, 1, 3, 3)), groups=3), ValueError,
     ["Given groups=3, expected weight to be divisible by 3 at dimension 0", "4 % 3 = 1"],
     lambda: TF.conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(4, 1, 3, 3), groups=3)),
    ("kernel-too-big", lambda: F.conv2d(np.zeros((1, 6, 4, 4)), np.zeros((4, 6, 5, 5)), dilation=2, padding=1),
     ValueError, ["Kernel size can't be greater than actual input size",
                  "padded input 6 = 4 + 1 + 1 < effective kernel 9 = 2*(5-1)+1"],
     lambda: TF.conv2d(torch.zeros(1, 6, 4, 4), torch.zeros(4, 6, 5, 5), dilation=2, padding=1)),
    ("padding-string", lambda: F.conv2d(X, W, padding="SAME"), ValueError,
     ["Invalid padding string 'SAME', should be one of {'same', 'valid'}"], None),
    ("stride-length", lambda: F.conv2d(X, W, stride=(1, 1, 1)), ValueError,
     ["expected stride to be a single integer value or a list of 2 values", "stride=[1, 1, 1]"],
     lambda: TF.conv2d(*t(X, W), stride=(1, 1, 1))),
    ("stride-type", lambda: F.conv2d(X, W, stride=1.0), TypeError, ["stride must be an int or a tuple of 2 ints"], None),
    ("padding-pair-type", lambda: F.conv2d(X, W, padding=((1, 2, 3), 1)), TypeError, ["(lo, hi) pair"], None),
    ("bias-shape", lambda: F.conv2d(X, W, np.zeros(3)), ValueError,
     ["expected bias to be 1-dimensional with 4 elements, but got bias of size [3]"],
     lambda: TF.conv2d(*t(X, W, np.zeros(3, np.float32)))),
    ("weight-rank", lambda: F.conv2d(X, np.zeros((4, 6, 3))), ValueError, ["weight must be 4-D", "[4, 6, 3]"], None),
    ("conv-weight-rank", lambda: npconv.conv(X, np.zeros((4, 6))), ValueError, ["at least 3 dims", "[4, 6]"], None),
    ("spatial-empty", lambda: F.conv2d(np.zeros((1, 6, 0, 8)), W, padding=1), ValueError,
     ["every spatial size of the input must be >= 1"], None),
    ("padding-mode", lambda: F.conv2d(X, W, padding_mode="foo"), ValueError,
     ["padding_mode must be one of", "padding_mode='foo'"], None),
    ("reflect-limit", lambda: F.conv2d(X, W, padding=8, padding_mode="reflect"), ValueError,
     ["Padding size should be less than the corresponding input dimension", "padding (8, 8)", "size 8"],
     lambda: TF.pad(torch.zeros(1, 6, 8, 8), (8, 8, 8, 8), mode="reflect")),
    ("circular-limit", lambda: F.conv2d(X, W, padding=9, padding_mode="circular"), ValueError,
     ["Padding value causes wrapping around more than once", "padding (9, 9)", "size 8"],
     lambda: TF.pad(torch.zeros(1, 6, 8, 8), (9, 9, 9, 9), mode="circular")),
    ("output-padding-range", lambda: F.conv_transpose2d(X, np.zeros((6, 2, 3, 3)), output_padding=1), ValueError,
     ["output padding must be smaller than either stride or dilation", "output_padding 1 >= max(stride 1, dilation 1)",
      "nearest valid: 0"],
     lambda: TF.conv_transpose2d(*t(X, np.zeros((6, 2, 3, 3), np.float32)), output_padding=1)),
    ("output-padding-negative", lambda: F.conv_transpose2d(X, np.zeros((6, 2, 3, 3)), output_padding=-1),
     ValueError, ["negative output_padding is not supported"],
     lambda: TF.conv_transpose2d(*t(X, np.zeros((6, 2, 3, 3), np.float32)), output_padding=-1)),
    ("output-padding-not-transposed", lambda: npconv.conv(X, W, output_padding=1), ValueError,
     ["only applies to transposed convolution"], None),
    ("transposed-too-small", lambda: F.conv_transpose2d(np.zeros((1, 6, 1, 1)), np.zeros((6, 2, 1, 1)), padding=1),
     ValueError, ["Given input size per channel: (1 x 1). Calculated output size per channel: (-1 x -1). "
                  "Output size is too small"],
     lambda: TF.conv_transpose2d(torch.zeros(1, 6, 1, 1), torch.zeros(6, 2, 1, 1), padding=1)),
    ("transposed-channels", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3))), ValueError,
     ["Given transposed=1, weight of size [4, 2, 3, 3], expected input[1, 6, 8, 8] to have 4 channels"],
     lambda: TF.conv_transpose2d(*t(X, np.zeros((4, 2, 3, 3), np.float32)))),
    ("transposed-padding-mode", lambda: npconv.conv(X, np.zeros((6, 2, 3, 3)), transposed=True,
                                                    padding_mode="reflect"), ValueError,
     ['Only "zeros" padding mode is supported for ConvTranspose2d'],
     lambda: torch.nn.ConvTranspose2d(6, 2, 3, padding_mode="reflect")),
    ("transposed-padding-string", lambda: npconv.conv(X, np.zeros((6, 2, 3, 3)), transposed=True, padding="same"),
     ValueError, ["padding='same' is not defined for transposed convolution"], None),
    ("dtype-complex256", lambda: F.conv2d(X.astype(np.clongdouble), W), TypeError,
     ["must hold complex64 or complex128", "complex256"], None),
    ("dtype-string", lambda: F.conv2d(np.array(["a"]), W), TypeError, ["must hold real numbers", "<U1"], None),
    ("dtype-ragged", lambda: F.conv2d([[1, 2], [3]], W), TypeError, ["could not be read as a numeric array"], None),
    ("dtype-none", lambda: F.conv2d(X, None), TypeError, ["weight must be an array, got None"], None),
    ("pad-odd", lambda: F.pad(X, (1, 2, 3)), ValueError, ["Padding length must be divisible by 2"],
     lambda: TF.pad(torch.zeros(1, 6, 8, 8), (1, 2, 3))),
    ("pad-too-long", lambda: F.pad(np.zeros(5), (1, 2, 3, 4)), ValueError,
     ["Padding length should be less than or equal to two times the input dimension but got padding "
      "length 4 and input of dimension 1"], lambda: TF.pad(torch.zeros(5), (1, 2, 3, 4))),
    ("pad-mode", lambda: F.pad(X, (1, 1), mode="foo"), ValueError, ["Unrecognised padding mode 'foo'"], None),
    ("pad-value", lambda: F.pad(X, (1, 1, 1, 1), mode="reflect", value=1.0), ValueError,
     ['Padding mode "reflect" doesn\'t take in value argument'],
     lambda: TF.pad(torch.zeros(1, 6, 8, 8), (1, 1, 1, 1), mode="reflect", value=1.0)),
    ("pad-rank", lambda: F.pad(X, (1, 2), mode="replicate"), ValueError,
     ["Padding size 2 is not supported for 4D input tensor"],
     lambda: TF.pad(torch.zeros(1, 6, 8, 8), (1, 2), mode="replicate")),
    ("pad-reflect-limit", lambda: F.pad(np.zeros((1, 1, 3)), (3, 3), mode="reflect"), ValueError,
     ["Padding size should be less than the corresponding input dimension"],
     lambda: TF.pad(torch.zeros(1, 1, 3), (3, 3), mode="reflect")),
    ("pad-circular-limit", lambda: F.pad(np.zeros((1, 1, 3)), (4, 0), mode="circular"), ValueError,
     ["Padding value causes wrapping around more than once"],
     lambda: TF.pad(torch.zeros(1, 1, 3), (4, 0), mode="circular")),
    ("pad-crop-too-much", lambda: F.pad(np.zeros((1, 1, 5)), (-3, -3)), ValueError,
     ["crop more than the size 5"], None),
    ("unfold-blocks", lambda: F.unfold(np.zeros((1, 2, 3, 3)), 4), ValueError,
     ["calculated shape of the array of sliding blocks as (0, 0), but its components must be at least one"],
     lambda: TF.unfold(torch.zeros(1, 2, 3, 3), 4)),
    ("unfold-padding-string", lambda: F.unfold(X, 2, padding="same"), TypeError, ["padding must be an int"], None),
    ("unfold-dims-disagree", lambda: F.unfold(X, (2, 2), stride=(1, 1, 1)), ValueError,
     ["disagree on the number of spatial dims"], None),
    ("fold-blocks", lambda: F.fold(np.zeros((1, 8, 10)), (4, 5), 2), ValueError,
     ["expected size of input's dimension 2 to match the calculated number of sliding blocks 3 * 4 = 12, "
      "but got input.size(2)=10"], lambda: TF.fold(torch.zeros(1, 8, 10), (4, 5), 2)),
    ("fold-channels", lambda: F.fold(np.zeros((1, 7, 12)), (4, 5), 2), ValueError,
     ["Expected size of input's dimension 1 to be divisible by the product of kernel_size, but got "
      "input.size(1)=7 and kernel_size=(2, 2)"], lambda: TF.fold(torch.zeros(1, 7, 12), (4, 5), 2)),
    ("fold-rank", lambda: F.fold(np.zeros((8, 12, 1, 1)), (4, 5), 2), ValueError,
     ["Expected 2D or 3D (batch mode) tensor for input"], lambda: TF.fold(torch.zeros(8, 12, 1, 1), (4, 5), 2)),
]


@pytest.mark.parametrize("call,exception,fragments,torch_call", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refusal(call, exception, fragments, torch_call, monkeypatch):
    monkeypatch.setattr(npconv.core, "forward", lambda *a: pytest.fail("computed before refusing"))
    with pytest.raises(exception) as caught:
        call()
    for fragment in fragments:
        assert fragment in str(caught.value), f"{fragment!r} not in {str(caught.value)!r}"
    if torch_call is not None:  # PyTorch refuses the same condition with the words we quote
        with pytest.raises(Exception) as torch_caught:
            torch_call()
        assert fragments[0] in str(torch_caught.value)


# ---- every refusal shows its arithmetic and, where one exists, the nearest valid setting ----
NEAREST = [
    (lambda: F.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), dilation=2, padding=1),
     "padded input 4 = 2 + 1 + 1 < effective kernel 9 = 2*(5-1)+1; nearest valid: padding 4 per side"),
    (lambda: F.conv1d(np.zeros((1, 1, 6)), np.zeros((1, 1, 4)), dilation=3),
     "nearest valid: padding 2 per side (padded 10), or dilation=1 (effective kernel 4), or kernel_size=2"),
    (lambda: F.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), padding=3, padding_mode="reflect"),
     "(3 >= 3); nearest valid: padding <= 2 per side, or padding_mode='replicate'"),
    (lambda: F.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), padding=4, padding_mode="circular"),
     "(4 > 3); nearest valid: padding <= 3 per side"),
    (lambda: nn.Conv2d(6, 9, 3, groups=4), "6 % 4 = 2; nearest valid: groups=3"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 2, 3, 3))), "nearest valid: groups=2 (4 = 2 * 2)"),
    (lambda: F.conv_transpose2d(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), padding=1),
     "in dim 0, 0 = 2 - 1 - 1; nearest valid: pad_lo + pad_hi <= 1"),
    (lambda: F.conv_transpose1d(np.zeros((1, 1, 4)), np.zeros((1, 1, 3)), stride=2, output_padding=2),
     "output_padding 2 >= max(stride 2, dilation 1); nearest valid: 1"),
    (lambda: F.unfold(np.zeros((1, 1, 2, 2)), 5), "nearest valid: dim 0: padding >= 2; dim 1: padding >= 2"),
]


@pytest.mark.parametrize("call, words", NEAREST, ids=[w[:40] for _, w in NEAREST])
def test_refusals_show_the_nearest_valid_setting(call, words):
    with pytest.raises(ValueError) as refusal:
        call()
    assert words in str(refusal.value)
