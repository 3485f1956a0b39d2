"""Worked examples with known answers: each names its setting and carries the expected value.

``npconv demo`` prints every one beside npconv's result; the test suite asserts them (and
checks two of the expected arrays against PyTorch).  Most use the numbered input ``arange``
and an all-ones kernel, so an output is a sum of cell numbers that can be checked by hand
(:data:`INPUTS` says so in words); the 1-D padding examples run on ``[1, 2, ..., 9]``.

:data:`HAND_SUMS` are single outputs written out as sums, e.g. ``474 = 0+1+6+7 + 36+...``;
``npconv explain`` recomputes each from the engine's index arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import functional as F
from .spec import parameter_count, weight_shape

if TYPE_CHECKING:
    from .explain.footprint import Explanation


INPUTS = ("Unless an example says otherwise, the input is arange: its 6x6 cells numbered 0, 1, 2, ...\n"
          "row by row, channel 0 first (0..35, then 36..71, ...), and every kernel weight is 1,\n"
          "so each output is the sum of the numbers it reads.")


@dataclass(frozen=True)
class WorkedExample:
    """One setting (``name`` says it in full), its expected value and how npconv computes it.

    ``expected`` is a tuple (a shape or a list of indices, compared exactly), an int, or an
    array-like of numbers (compared exactly, shape included).
    """

    name: str
    expected: Any
    compute: Callable[[], Any]
    note: str = ""

    def run(self) -> tuple[Any, bool]:
        """npconv's value and whether it equals ``expected``."""
        got = self.compute()
        if isinstance(self.expected, tuple):
            return tuple(got), tuple(got) == self.expected
        got = np.asarray(got)
        expected = np.asarray(self.expected, dtype=got.dtype)
        return got, got.shape == expected.shape and bool(np.array_equal(got, expected))


def _arange_image(channels: int) -> np.ndarray:
    """The numbered input: arange(36 * C) as (1, C, 6, 6), float32."""
    return np.arange(36 * channels, dtype=np.float32).reshape(1, channels, 6, 6)


def _ones(*shape: int) -> np.ndarray:
    return np.ones(shape, dtype=np.float32)


def _conv2d_ones(channels: int, out_channels: int, k: int, **kwargs: Any) -> np.ndarray:
    groups = kwargs.get("groups", 1)
    return F.conv2d(_arange_image(channels), _ones(out_channels, channels // groups, k, k), **kwargs)[0]


SOBEL_INPUT = np.array([[0, 0, 75, 80, 80],
                        [0, 75, 80, 80, 80],
                        [0, 75, 80, 80, 80],
                        [0, 70, 75, 80, 80],
                        [0, 0, 0, 0, 0]], dtype=np.float32)
SOBEL_KERNEL = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float32)

STANDARD = [[474, 720, 738, 756, 774, 522], [765, 1161, 1188, 1215, 1242, 837],
            [873, 1323, 1350, 1377, 1404, 945], [981, 1485, 1512, 1539, 1566, 1053],
            [1089, 1647, 1674, 1701, 1728, 1161], [762, 1152, 1170, 1188, 1206, 810]]
DEPTHWISE = [
    [[14, 24, 30, 36, 42, 30], [39, 63, 72, 81, 90, 63], [75, 117, 126, 135, 144, 99],
     [111, 171, 180, 189, 198, 135], [147, 225, 234, 243, 252, 171], [110, 168, 174, 180, 186, 126]],
    [[158, 240, 246, 252, 258, 174], [255, 387, 396, 405, 414, 279], [291, 441, 450, 459, 468, 315],
     [327, 495, 504, 513, 522, 351], [363, 549, 558, 567, 576, 387], [254, 384, 390, 396, 402, 270]],
    [[302, 456, 462, 468, 474, 318], [471, 711, 720, 729, 738, 495], [507, 765, 774, 783, 792, 531],
     [543, 819, 828, 837, 846, 567], [579, 873, 882, 891, 900, 603], [398, 600, 606, 612, 618, 414]]]
GROUPED = [
    [[172, 264, 276, 288, 300, 204], [294, 450, 468, 486, 504, 342], [366, 558, 576, 594, 612, 414],
     [438, 666, 684, 702, 720, 486], [510, 774, 792, 810, 828, 558], [364, 552, 564, 576, 588, 396]],
    [[748, 1128, 1140, 1152, 1164, 780], [1158, 1746, 1764, 1782, 1800, 1206],
     [1230, 1854, 1872, 1890, 1908, 1278], [1302, 1962, 1980, 1998, 2016, 1350],
     [1374, 2070, 2088, 2106, 2124, 1422], [940, 1416, 1428, 1440, 1452, 972]]]
POINTWISE = [[108, 111, 114, 117, 120, 123], [126, 129, 132, 135, 138, 141],
             [144, 147, 150, 153, 156, 159], [162, 165, 168, 171, 174, 177],
             [180, 183, 186, 189, 192, 195], [198, 201, 204, 207, 210, 213]]


def _groups_zeros_and_ones() -> list[float]:
    """Conv2d(10, 20, 3, groups=2) on ones: first 10 filters all 0, last 10 all 1."""
    weight = np.concatenate([np.zeros((10, 5, 3, 3), np.float32), _ones(10, 5, 3, 3)])
    y = F.conv2d(_ones(1, 10, 7, 7), weight, groups=2)[0]
    return [float(np.unique(channel)[0]) if np.unique(channel).size == 1 else np.nan for channel in y]


def _nine(k: int, stride: int, padding: int | str) -> np.ndarray:
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 9)
    return F.conv1d(x, _ones(1, 1, k), stride=stride, padding=padding)[0, 0]


def _output_shape(x_shape: tuple[int, ...], w_shape: tuple[int, ...], **kwargs: Any) -> tuple[int, ...]:
    x = np.zeros(x_shape, np.float32)
    return F.conv2d(x, np.zeros(w_shape, np.float32), **kwargs).shape


def _channels_feeding(out_channel: int) -> tuple[int, ...]:
    """Depthwise Conv2d(10, 20, 3, groups=10): which input channels move this output channel."""
    w = np.random.default_rng(0).standard_normal((20, 1, 3, 3)).astype(np.float32)
    base = F.conv2d(np.zeros((1, 10, 5, 5), np.float32), w, groups=10)[0, out_channel]
    moved = []
    for c in range(10):
        x = np.zeros((1, 10, 5, 5), np.float32)
        x[0, c] = 1
        if not np.array_equal(F.conv2d(x, w, groups=10)[0, out_channel], base):
            moved.append(c)
    return tuple(moved)


def _one_d_examples() -> list[WorkedExample]:
    by_hand = "expected: the window sums of [1, 2, ..., 9] with the padding's zeros, added by hand"
    torch_cases = [(5, 1, 0, [15, 20, 25, 30, 35]), (5, 1, 2, [6, 10, 15, 20, 25, 30, 35, 30, 24]),
                   (6, 1, 0, [21, 27, 33, 39]), (6, 1, 3, [6, 10, 15, 21, 27, 33, 39, 35, 30, 24]),
                   (5, 2, 0, [15, 25, 35]), (5, 2, 2, [6, 15, 25, 35, 24]),
                   (6, 2, 0, [21, 33]), (6, 2, 3, [6, 15, 27, 39, 30])]
    keras_cases = [(5, 1, "valid", [15, 20, 25, 30, 35]), (5, 1, "same", [6, 10, 15, 20, 25, 30, 35, 30, 24]),
                   (6, 1, "valid", [21, 27, 33, 39]), (6, 1, "same", [10, 15, 21, 27, 33, 39, 35, 30, 24]),
                   (5, 2, "valid", [15, 25, 35]), (5, 2, "same", [6, 15, 25, 35, 24]),
                   (6, 2, "valid", [21, 33]), (6, 2, "same", [10, 21, 33, 35, 24])]
    examples = [WorkedExample(f"Conv1d on [1..9], all-ones kernel_size={k}, stride={s}, padding={p}",
                              expected, _nine_sums(k, s, p), by_hand)
                for k, s, p, expected in torch_cases]
    same_note = ("TensorFlow's 'same': out = ceil(9 / stride) (not floor), the odd pad on the right; "
                 "npconv's padding='same' extension. ")
    examples += [WorkedExample(f"Keras Conv1D on [1..9], all-ones kernel_size={k}, strides={s}, padding='{p}'",
                               expected, _nine_sums(k, s, p), (same_note if p == "same" else "") + by_hand)
                 for k, s, p, expected in keras_cases]
    return examples


def _nine_sums(k: int, stride: int, padding: int | str) -> Callable[[], np.ndarray]:
    return lambda: _nine(k, stride, padding)


@dataclass(frozen=True)
class HandSum:
    """One output written out as a sum by hand: an all-ones kernel on the arange input.

    :attr:`setting` says the convolution in words (from the fields it runs, so it cannot drift).
    """

    expected: str
    channels: int
    out_channels: int
    kernel: int
    index: tuple[int, ...]
    options: tuple[tuple[str, int], ...] = ()
    note: str = ""

    @property
    def setting(self) -> str:
        """E.g. ``3 channels -> 1, 3x3, padding 1, output[0, 0, 0, 0]``."""
        options = "".join(f", {name} {value}" for name, value in self.options)
        into = "channel" if self.channels == 1 else "channels"
        return (f"{self.channels} {into} -> {self.out_channels}, {self.kernel}x{self.kernel}{options}, "
                f"output[{', '.join(map(str, self.index))}]")

    def explain(self) -> Explanation:
        """npconv's explanation of this output (:func:`npconv.explain.explain_output`)."""
        from .explain import explain_output
        options: dict[str, Any] = dict(self.options)
        w = _ones(self.out_channels, self.channels // options.get("groups", 1), self.kernel, self.kernel)
        return explain_output(_arange_image(self.channels), w, self.index, **options)

    def reproduced(self, line: str | None = None) -> bool:
        """npconv's sum line (``line`` when already made) is the expected one (spaces aside)."""
        line = self.explain().sum_line() if line is None else line
        return line.replace(" ", "") == self.expected.replace(" ", "")


HAND_SUMS = [
    HandSum("474 = 0+1+6+7+36+37+42+43+72+73+78+79", 3, 1, 3, (0, 0, 0, 0), (("padding", 1),)),
    *(HandSum(text, 3, 3, 3, (0, c, 0, 0), (("padding", 1), ("groups", 3)))
      for c, text in enumerate(["14 = 0+1+6+7", "158 = 36+37+42+43", "302 = 72+73+78+79"])),
    *(HandSum(text, 4, 2, 3, (0, c, 0, 0), (("padding", 1), ("groups", 2)), note)
      for c, (text, note) in enumerate([("172 = 0+1+6+7+36+37+42+43", "first group"),
                                        ("748 = 72+73+78+79+108+109+114+115", "second group")])),
    HandSum("108 = 0+36+72", 3, 1, 1, (0, 0, 0, 0)),
    HandSum("1350 = 0+2+4+12+14+16+24+26+28 + 36+38+40+48+50+52+60+62+64 + 72+74+76+84+86+88+96+98+100",
            3, 1, 3, (0, 0, 0, 0), (("dilation", 2),)),
    *(HandSum(text, 1, 1, 3, (0, 0, row, 0), (("stride", 2),))
      for row, text in enumerate(["63 = 0+1+2+6+7+8+12+13+14", "171 = 12+13+14+18+19+20+24+25+26"])),
]


def worked_examples() -> list[WorkedExample]:
    """Every worked example: shapes and parameter counts, then values on the numbered input
    (standard, depthwise, grouped, pointwise, dilated, strided), then 1-D padding on [1..9]."""
    return _shape_examples() + _value_examples() + _channel_examples() + _one_d_examples()


def _shape_examples() -> list[WorkedExample]:
    return [
        WorkedExample("Shapes: Conv2d(3, 256, 5) on (1, 3, 12, 12)", (1, 256, 8, 8),
                      lambda: _output_shape((1, 3, 12, 12), weight_shape(3, 256, (5, 5)))),
        WorkedExample("Shapes: depthwise Conv2d(3, 3, 5, groups=3) on (1, 3, 12, 12)", (1, 3, 8, 8),
                      lambda: _output_shape((1, 3, 12, 12), weight_shape(3, 3, (5, 5), 3), groups=3)),
        WorkedExample("Shapes: then pointwise Conv2d(3, 256, 1)", (1, 256, 8, 8),
                      lambda: _output_shape((1, 3, 8, 8), weight_shape(3, 256, (1, 1)))),
        WorkedExample("Parameters of Conv2d(3, 16, 5): (5*5*3 + 1) * 16", 1216,
                      lambda: parameter_count(3, 16, (5, 5))),
        WorkedExample("Shapes: Conv2d(64, 128, 3) on (32, 64, 28, 28): weight", (128, 64, 3, 3),
                      lambda: weight_shape(64, 128, (3, 3))),
        WorkedExample("Shapes: Conv2d(64, 128, 3) on (32, 64, 28, 28): output", (32, 128, 26, 26),
                      lambda: _output_shape((32, 64, 28, 28), weight_shape(64, 128, (3, 3)))),
        WorkedExample("Shapes: Conv2d(64, 128, 3, groups=4): weight", (128, 16, 3, 3),
                      lambda: weight_shape(64, 128, (3, 3), groups=4)),
        WorkedExample("Shapes: Conv2d(64, 128, 3, groups=4) on (32, 64, 28, 28): output", (32, 128, 26, 26),
                      lambda: _output_shape((32, 64, 28, 28), weight_shape(64, 128, (3, 3), 4), groups=4)),
        WorkedExample("Shapes: depthwise Conv2d(3, 3, 5, groups=3) on (5, 3, 12, 12)", (5, 3, 8, 8),
                      lambda: _output_shape((5, 3, 12, 12), weight_shape(3, 3, (5, 5), 3), groups=3)),
        WorkedExample("Shapes: its weight", (3, 1, 5, 5), lambda: weight_shape(3, 3, (5, 5), 3)),
        WorkedExample("Shapes: then pointwise Conv2d(3, 256, 1) on (5, 3, 8, 8)", (5, 256, 8, 8),
                      lambda: _output_shape((5, 3, 8, 8), weight_shape(3, 256, (1, 1)))),
        WorkedExample("Shapes: Conv2d(10, 20, 1) on (1, 10, 7, 7)", (1, 20, 7, 7),
                      lambda: _output_shape((1, 10, 7, 7), weight_shape(10, 20, (1, 1)))),
    ]


def _value_examples() -> list[WorkedExample]:
    sobel = lambda: F.conv2d(SOBEL_INPUT[None, None], SOBEL_KERNEL[None, None])[0, 0]  # noqa: E731
    return [
        WorkedExample("Sobel kernel (horizontal edges) on a 5x5 image, no padding",
                      [[155, 85, 5], [-15, -15, -5], [-230, -315, -320]], sobel,
                      "the kernel is not flipped: conv2d is a cross-correlation, as in PyTorch"),
        WorkedExample("1 channel, 6x6 arange, 3x3 ones, stride=2, padding=1",
                      [[14, 30, 42], [75, 126, 144], [147, 234, 252]],
                      lambda: _conv2d_ones(1, 1, 3, stride=2, padding=1)[0]),
        WorkedExample("Standard conv: 3 channels -> 1, 3x3 ones, padding=1", [STANDARD],
                      lambda: _conv2d_ones(3, 1, 3, padding=1), "474 = 0+1+6+7+36+37+42+43+72+73+78+79"),
        WorkedExample("Depthwise conv: 3 channels -> 3, 3x3 ones, groups=3, padding=1", DEPTHWISE,
                      lambda: _conv2d_ones(3, 3, 3, padding=1, groups=3), "14 = 0+1+6+7; 158 = 36+37+42+43"),
        WorkedExample("Grouped conv: 4 channels -> 2, 3x3 ones, groups=2, padding=1", GROUPED,
                      lambda: _conv2d_ones(4, 2, 3, padding=1, groups=2), "172 = 0+1+6+7+36+37+42+43"),
        WorkedExample("1x1 (pointwise) conv: 3 channels -> 1", [POINTWISE],
                      lambda: _conv2d_ones(3, 1, 1), "108 = 0+36+72"),
        WorkedExample("Dilated conv: 3 channels -> 1, 3x3 ones, dilation=2, no padding",
                      [[[1350, 1377], [1512, 1539]]], lambda: _conv2d_ones(3, 1, 3, dilation=2)),
        WorkedExample("Strided conv: 1 channel -> 1, 3x3 ones, stride=2, no padding", [[[63, 81], [171, 189]]],
                      lambda: _conv2d_ones(1, 1, 3, stride=2), "the last row and column take no part"),
    ]


def _channel_examples() -> list[WorkedExample]:
    return [
        WorkedExample("Grouped Conv2d(10, 20, 3, groups=2) on ones(1, 10, 7, 7): first 10 filters "
                      "zeros, last 10 ones", [0.0] * 10 + [45.0] * 10, _groups_zeros_and_ones,
                      "value of each of the 20 output channels: 0 for the first 10, 45 = 5*9 after"),
        WorkedExample("Depthwise Conv2d(10, 20, 3, groups=10): inputs behind outputs 0 and 1",
                      (0, 0), lambda: _channels_feeding(0) + _channels_feeding(1),
                      "input channel 0 makes output channels 0 and 1"),
    ]
