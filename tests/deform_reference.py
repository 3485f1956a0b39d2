"""An independent float64 reference for deformable convolution (issue 16), and random cases.

:func:`reference_deform_conv2d` is written from the rules alone (torchvision.ops.deform_conv2d's
conventions; Dai et al. 2017, "Deformable Convolutional Networks", and Zhu et al. 2018 for the
mask), as plain loops over batch, input channel and kernel tap, vectorised only over output
positions.  It shares no code with ``npconv.ops``.

The rules, in one place:

- input (N, C_in, H, W); weight (C_out, C_in / groups, kh, kw), groups = C_in // weight.shape[1];
- offset (N, 2 * G * kh * kw, oh, ow), G offset groups; for group g and tap t = i * kw + j,
  channel g * 2 * kh * kw + 2 * t is dy and the next one dx;
- mask (N, G * kh * kw, oh, ow), channel g * kh * kw + t (None: every mask is 1, DCN v1);
- input channel c belongs to offset group c // (C_in // G) and weight group c // (C_in // groups);
- tap (i, j) of output (oy, ox) samples y = oy * sh - ph + i * dh + dy,
  x = ox * sw - pw + j * dw + dx, by bilinear interpolation: zero unless -1 < y < H and
  -1 < x < W, and each of the four corners that falls outside the image contributes zero;
- out[n, o] = bias[o] + sum over the group's channels and taps of weight * mask * sample.

Other test helpers (ONNX, explain) import :func:`reference_deform_conv2d`,
:func:`random_deform_case` and :class:`DeformCase`; keep those names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

Pair = tuple[int, int]


def as_pair(value: int | tuple[int, int]) -> Pair:
    """An int or a pair as a pair of ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def deform_out_size(in_size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """(oh, ow) = floor((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1 per dim."""
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1  # type: ignore[return-value]
                 for n, k, s, p, d in zip(in_size, kernel, stride, padding, dilation))


def bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """image (H, W) sampled at the points (y, x) (any equal shapes) by torchvision's rule.

    Examples
    --------
    >>> image = np.arange(6.0).reshape(2, 3)
    >>> bilinear(image, np.array([0.5, -0.5, 1.0, -1.0]), np.array([1.0, 1.0, 2.5, 0.0]))
    array([2.5, 0.5, 2.5, 0. ])
    """
    height, width = image.shape
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    y_safe, x_safe = np.where(inside, y, 0.0), np.where(inside, x, 0.0)  # no NaN/overflow in floor
    y0, x0 = np.floor(y_safe), np.floor(x_safe)
    ly, lx = y_safe - y0, x_safe - x0
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    total = np.zeros(y.shape, np.float64)
    for cy, cx, corner_weight in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                                  (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        ok = inside & (cy >= 0) & (cy < height) & (cx >= 0) & (cx < width)
        value = image[np.clip(cy, 0, height - 1), np.clip(cx, 0, width - 1)]
        total += np.where(ok, corner_weight * value, 0.0)
    return total


def reference_deform_conv2d(input: Any, offset: Any, weight: Any, bias: Any = None,
                            stride: int | Pair = 1, padding: int | Pair = 0, dilation: int | Pair = 1,
                            mask: Any = None) -> np.ndarray:
    """torchvision.ops.deform_conv2d in float64, from the rules (see the module docstring).

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W).
    offset : array_like
        (N, 2 * G * kh * kw, oh, ow).
    weight : array_like
        (C_out, C_in / groups, kh, kw).
    bias : array_like, optional
        (C_out,).
    stride, padding, dilation : int or pair of ints
        As torchvision's (padding symmetric).
    mask : array_like, optional
        (N, G * kh * kw, oh, ow); None: no modulation.

    Returns
    -------
    numpy.ndarray
        (N, C_out, oh, ow), float64.  Shapes are assumed valid (the reference checks nothing).

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 1, 1))
    >>> offset = np.full((1, 2, 4, 4), 0.5)  # every sample half a pixel down and right
    >>> reference_deform_conv2d(x, offset, w)[0, 0, 0, :2]
    array([2.5, 3.5])
    """
    x, off, w = (np.asarray(a, np.float64) for a in (input, offset, weight))
    n_batch, c_in, height, width = x.shape
    c_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    oh, ow = deform_out_size((height, width), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    groups, taps = c_in // c_per_group, kh * kw
    offset_groups = off.shape[1] // (2 * taps)
    out_per_group = c_out // groups
    m = None if mask is None else np.asarray(mask, np.float64)
    base_y = (np.arange(oh) * sh - ph)[:, None]  # (oh, 1)
    base_x = (np.arange(ow) * sw - pw)[None, :]  # (1, ow)
    out = np.zeros((n_batch, c_out, oh, ow), np.float64)
    for n in range(n_batch):
        for c in range(c_in):
            g = c // (c_in // offset_groups)  # offset group of input channel c
            wg, ci = divmod(c, c_per_group)  # weight group, channel within it
            outs = slice(wg * out_per_group, (wg + 1) * out_per_group)
            for i in range(kh):
                for j in range(kw):
                    t = i * kw + j
                    dy = off[n, g * 2 * taps + 2 * t]
                    dx = off[n, g * 2 * taps + 2 * t + 1]
                    sample = bilinear(x[n, c], base_y + i * dh + dy, base_x + j * dw + dx)  # (oh, ow)
                    if m is not None:
                        sample = sample * m[n, g * taps + t]
                    out[n, outs] += w[outs, ci, i, j][:, None, None] * sample
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


@dataclass(frozen=True)
class DeformCase:
    """One random deformable conv problem: operands and torchvision-style parameters."""

    input: np.ndarray
    offset: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    mask: np.ndarray | None
    stride: int | Pair
    padding: int | Pair
    dilation: int | Pair
    groups: int
    offset_groups: int
    label: str = field(default="")

    def kwargs(self) -> dict[str, Any]:
        """bias, stride, padding, dilation and mask as keyword arguments."""
        return dict(bias=self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation,
                    mask=self.mask)

    def astype(self, dtype: Any) -> "DeformCase":
        """The same case with every array cast to ``dtype``."""
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return replace(self, input=self.input.astype(dtype), offset=self.offset.astype(dtype),
                       weight=self.weight.astype(dtype), bias=cast(self.bias), mask=cast(self.mask))

    @property
    def out_size(self) -> Pair:
        """(oh, ow)."""
        return deform_out_size(self.input.shape[2:], self.weight.shape[2:], as_pair(self.stride),
                               as_pair(self.padding), as_pair(self.dilation))


def _maybe_pair(rng: np.random.Generator, low: int, high: int) -> int | Pair:
    """An int in [low, high], or (half the time) a pair of them."""
    if rng.random() < 0.5:
        return int(rng.integers(low, high + 1))
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def off_grid(rng: np.random.Generator, shape: tuple[int, ...], scale: float, margin: float) -> np.ndarray:
    """Offsets whose fractional part lies in [margin, 1 - margin]: every sample coordinate
    (an integer plus the offset) stays ``margin`` away from the integers, so from the corner
    lines and from the -1 / H, -1 / W borders, where sampling has kinks."""
    whole = np.round(rng.standard_normal(shape) * scale)
    return whole + rng.uniform(margin, 1 - margin, shape)


def random_deform_case(rng: np.random.Generator, *, masked: bool | None = None, with_bias: bool | None = None,
                       offset_scale: float = 2.0, margin: float | None = None, max_size: int = 7,
                       dtype: Any = np.float64) -> DeformCase:
    """A random valid case: weight groups and offset groups drawn independently, non-square
    kernels, int-or-pair stride/padding/dilation, offsets of ``offset_scale`` pixels (so some
    samples leave the image), a mask and a bias or not (None: drawn).

    ``margin`` set: offsets from :func:`off_grid` (for finite differences).

    Examples
    --------
    >>> case = random_deform_case(np.random.default_rng(0))
    >>> out = reference_deform_conv2d(case.input, case.offset, case.weight, **case.kwargs())
    >>> out.shape == (case.input.shape[0], case.weight.shape[0]) + case.out_size
    True
    """
    groups, offset_groups = int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 3]))
    c_in = int(np.lcm(groups, offset_groups)) * int(rng.integers(1, 3))
    c_out = groups * int(rng.integers(1, 3))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride, padding, dilation = _maybe_pair(rng, 1, 2), _maybe_pair(rng, 0, 2), _maybe_pair(rng, 1, 2)
    (ph, pw), (dh, dw) = as_pair(padding), as_pair(dilation)
    height = int(rng.integers(max(dh * (kh - 1) + 1 - 2 * ph, 1), max_size + 1))
    width = int(rng.integers(max(dw * (kw - 1) + 1 - 2 * pw, 1), max_size + 1))
    batch = int(rng.integers(1, 3))
    masked = bool(rng.random() < 0.5) if masked is None else masked
    with_bias = bool(rng.random() < 0.5) if with_bias is None else with_bias
    oh, ow = deform_out_size((height, width), (kh, kw), as_pair(stride), (ph, pw), (dh, dw))
    offset_shape = (batch, 2 * offset_groups * kh * kw, oh, ow)
    if margin is None:
        offset = rng.standard_normal(offset_shape) * offset_scale
    else:
        offset = off_grid(rng, offset_shape, offset_scale, margin)
    case = DeformCase(
        input=rng.standard_normal((batch, c_in, height, width)),
        offset=offset,
        weight=rng.standard_normal((c_out, c_in // groups, kh, kw)),
        bias=rng.standard_normal(c_out) if with_bias else None,
        mask=rng.uniform(-0.5, 1.5, (batch, offset_groups * kh * kw, oh, ow)) if masked else None,
        stride=stride, padding=padding, dilation=dilation, groups=groups, offset_groups=offset_groups,
        label=(f"N{batch}-C{c_in}-O{c_out}-g{groups}-G{offset_groups}-k{kh}x{kw}-s{stride}-p{padding}"
               f"-d{dilation}-{height}x{width}" + ("-mask" if masked else "") + ("-bias" if with_bias else "")))
    return case.astype(dtype)


def torch_deform_conv2d(input: Any, offset: Any, weight: Any, bias: Any = None, stride: int | Pair = 1,
                        padding: int | Pair = 0, dilation: int | Pair = 1, mask: Any = None) -> Any:
    """A second, differentiable oracle: the same rules through ``torch.nn.functional.grid_sample``.

    grid_sample with ``padding_mode='zeros'`` drops each corner outside the image, which is
    torchvision's rule (a point at y <= -1 or y >= H has no corner inside, or only ones of
    weight zero).  Takes float64 tensors (or arrays); returns a tensor, so torch's autograd
    gives every gradient.  Used to check :func:`reference_deform_conv2d` and, on the smooth
    pieces that the finite differences use, the gradients.
    """
    import torch
    import torch.nn.functional as TF

    x, off, w = (torch.as_tensor(a, dtype=torch.float64) for a in (input, offset, weight))
    n_batch, c_in, height, width = x.shape
    c_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    oh, ow = deform_out_size((height, width), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    taps, groups = kh * kw, c_in // c_per_group
    offset_groups = off.shape[1] // (2 * taps)
    grouped = x.reshape(n_batch * offset_groups, c_in // offset_groups, height, width)
    base_y = (torch.arange(oh, dtype=torch.float64) * sh - ph)[:, None]
    base_x = (torch.arange(ow, dtype=torch.float64) * sw - pw)[None, :]
    columns = []
    for t in range(taps):
        i, j = divmod(t, kw)
        y = base_y + i * dh + off[:, 2 * t::2 * taps]  # (N, G, oh, ow)
        x_at = base_x + j * dw + off[:, 2 * t + 1::2 * taps]
        # align_corners=False: pixel p sits at (2p + 1) / size - 1 (valid for size 1 too)
        grid = torch.stack(((2 * x_at + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
        sample = TF.grid_sample(grouped, grid.reshape(n_batch * offset_groups, oh, ow, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=False)  # (N*G, C/G, oh, ow)
        if mask is not None:
            sample = sample * torch.as_tensor(mask, dtype=torch.float64)[:, t::taps].reshape(-1, 1, oh, ow)
        columns.append(sample.reshape(n_batch, c_in, oh, ow))
    cols = torch.stack(columns, dim=2).reshape(n_batch, groups, c_per_group * taps, oh * ow)
    out = torch.einsum("gok,ngkp->ngop", w.reshape(groups, c_out // groups, c_per_group * taps), cols)
    out = out.reshape(n_batch, c_out, oh, ow)
    if bias is not None:
        out = out + torch.as_tensor(bias, dtype=torch.float64)[None, :, None, None]
    return out
