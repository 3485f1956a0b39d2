"""ONNX's DeformConv (opsets 19 and 22) on npconv's deformable engine (:mod:`npconv.ops`).

DeformConv is torchvision's ``deform_conv2d`` (Dai et al. 2017; with the mask, v2 of Zhu et
al. 2018) under ONNX's names: the onnx package's reference implementation, its node cases and
ONNX Runtime follow torchvision's layouts and sampling rule exactly:

- offset ``(N, offset_group * kH * kW * 2, oH, oW)``: for offset group g and tap t = i*kW + j,
  channel ``g*2*kH*kW + 2*t`` moves the sample along H, the next one along W; input channel c
  uses offset group ``c // (C / offset_group)``, whatever ``group`` is;
- mask ``(N, offset_group * kH * kW, oH, oW)``, channel ``g*kH*kW + t``; none = all ones (v1);
- tap (i, j) of output (oh, ow) samples ``h = oh*stride - pad_begin + i*dilation + dh`` (and so
  for w) bilinearly; a corner outside the image counts zero (the spec's "sampling locations
  outside of the padded input tensor gives zero" says the same, the pads being zeros).

What ONNX adds: the inputs come as ``X, W, offset, B, mask``; ``group`` and ``offset_group``
are attributes, checked against the shapes (torchvision infers both); ``pads`` are per side
(samples start at the begin pads, the output size counts both).  The spec's text allows n-D,
but the onnx reference evaluator and ONNX Runtime run 2-D only, and so does npconv.

:class:`DeformConvCall` is a DeformConv node as npconv calls (``npconv.convert.onnx_node_to_call``
makes it): ``npconv.ops.deform_conv2d`` and the module ``npconv.nn.DeformConv2d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import numpy.typing as npt

from . import nn, ops
from .onnx import _check_ranks, _of_type, _operands
from .onnx_pads import Ints, int_list, pads_attribute
from .onnx_words import ONNX_WORDS
from .spec import Pads, is_int
from .spec_errors import ConvRule, worded

__all__ = ["deform_conv", "DeformConvCall", "deform_node_call"]

OP = "DeformConv"
#: The attributes ONNX defines for DeformConv (no auto_pad).
ATTRIBUTES = frozenset({"dilations", "group", "kernel_shape", "offset_group", "pads", "strides"})
_NAMES = {"input": "X", "weight": "W", "offset": "offset", "mask": "mask"}  # npconv's -> ONNX's operand names

Operands = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def deform_conv(X: npt.ArrayLike, W: npt.ArrayLike, offset: npt.ArrayLike, B: npt.ArrayLike | None = None,
                mask: npt.ArrayLike | None = None, *, dilations: Ints | None = None, group: int = 1,
                kernel_shape: Ints | None = None, offset_group: int = 1, pads: Ints | None = None,
                strides: Ints | None = None) -> np.ndarray:
    """ONNX DeformConv (opsets 19 and 22): deformable convolution, v1 or (with mask) v2.

    Parameters
    ----------
    X : array_like
        (N, C, H, W).
    W : array_like
        (oC, C / group, kH, kW).
    offset : array_like
        (N, offset_group * kH * kW * 2, oH, oW): an (h, w) shift per offset group and tap.
    B : array_like, optional
        (oC,).
    mask : array_like, optional
        (N, offset_group * kH * kW, oH, oW); default all ones.
    dilations, strides : sequence of 2 ints, optional
        Default ones.
    group : int, default 1
        Weight groups; C and oC must be divisible by it.
    kernel_shape : sequence of 2 ints, optional
        Must be W's spatial shape when given.
    offset_group : int, default 1
        Offset groups; C must be divisible by it.
    pads : sequence of 4 ints, optional
        [H_begin, W_begin, H_end, W_end]; default zeros.

    Returns
    -------
    numpy.ndarray
        Y (N, oC, oH, oW), ``oH = floor((H + pad_begin + pad_end - ((kH - 1) * dilation + 1)) /
        stride) + 1`` (so for W), of X's type (float16 computed in float32).

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a broken rule, in ONNX's words: C not ``W.shape[1] * group``, oC
        not divisible by group, offset or mask channels not as above, C not divisible by
        offset_group, offset or mask not (oH, oW) or not of X's batch, B not (oC,), a kernel
        larger than the padded input, an attribute of the wrong length or below its minimum.
    ValueError
        Operands not 4-D (npconv runs the 2-D operator), kernel_shape not W's.
    TypeError
        Operands not of one float type T, or not real numbers; offset_group not an int.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(9.).reshape(1, 1, 3, 3)
    >>> offset = np.zeros((1, 2, 3, 3)); offset[:, 1] = 0.5   # every sample half a pixel right
    >>> deform_conv(x, np.ones((1, 1, 1, 1)), offset)[0, 0]   # beyond the last column: zeros
    array([[0.5, 1.5, 1. ],
           [3.5, 4.5, 2.5],
           [6.5, 7.5, 4. ]])
    """
    x, w, off, b, m = _read(X, W, offset, B, mask, kernel_shape)
    spec = deform_spec(x, w, off, b, m, dilations=dilations, group=group, offset_group=offset_group, pads=pads,
                       strides=strides)
    return ops.deform_conv(x, off, w, b, m, spec)


def _read(X: npt.ArrayLike, W: npt.ArrayLike, offset: npt.ArrayLike, B: npt.ArrayLike | None,
          mask: npt.ArrayLike | None, kernel_shape: Ints | None) -> Operands:
    """The five operands as arrays of X's type T; X and W 4-D, kernel_shape W's."""
    x, w, b = _operands(OP, X, W, B)
    off = _of_type(OP, x, "offset", offset)
    m = None if mask is None else _of_type(OP, x, "mask", mask)
    if _check_ranks(OP, x, w, kernel_shape) != 2:
        raise ValueError(f"{OP}: npconv runs the 2-D operator (X (N, C, H, W), W (oC, C/group, kH, kW)), as the "
                         f"onnx reference evaluator and ONNX Runtime do; the spec's n-D form is not implemented, "
                         f"got X of shape {list(x.shape)} and W of shape {list(w.shape)}")
    return x, w, off, b, m


def deform_spec(x: np.ndarray, w: np.ndarray, offset: np.ndarray, b: np.ndarray | None, mask: np.ndarray | None, *,
                dilations: Ints | None, group: int, offset_group: int, pads: Ints | None,
                strides: Ints | None) -> ops.DeformSpec:
    """The engine's :class:`npconv.ops.DeformSpec` for these 2-D operands and DeformConv's
    attributes; every refusal before any work, in ONNX's words."""
    strides_t, dilations_t = (int_list(OP, a, v, 2, 1, 1) for a, v in (("strides", strides), ("dilations", dilations)))
    pairs = pads_attribute(OP, "NOTSET", pads, 2)
    assert pairs is not None  # NOTSET: always the pairs
    _check_offset_group(offset_group)
    with worded(deform_words(w.shape)):
        return ops.DeformSpec.of(x.shape, offset.shape, w.shape, mask_shape=None if mask is None else mask.shape,
                                 bias_shape=None if b is None else b.shape, stride=strides_t, padding=pairs,
                                 dilation=dilations_t, groups=group, offset_groups=offset_group, op=OP)


def _check_offset_group(value: object) -> None:
    if not is_int(value):
        raise TypeError(f"{OP}: offset_group must be an int, got offset_group={value!r}")
    if value < 1:
        raise ValueError(f"{OP}: offset_group must be a positive integer (C is split into offset_group groups, "
                         f"each with its own offsets), got offset_group={value}")


def deform_words(weight_shape: tuple[int, ...]) -> Mapping[str, Callable[[ConvRule], Any]]:
    """ONNX's words for the refusals of :meth:`npconv.ops.DeformSpec.of` (ConvSpec's rules keep
    :data:`npconv.onnx_words.ONNX_WORDS`); ``weight_shape`` names the kernel in them."""
    kh, kw = weight_shape[2:]

    def rank(e: ConvRule) -> str:
        name = _NAMES.get(e.numbers["name"], e.numbers["name"])
        return f"{OP}: {name} must be 4-D (N, channels, H, W), got {name} of shape {list(e.numbers['shape'])}"

    def batch(e: ConvRule) -> str:
        n = e.numbers
        return f"{OP}: {n['name']}.shape[0]={n['batch']} must be X's batch N={n['input_batch']}"

    def offset_channels(e: ConvRule) -> str:
        c, g = e.numbers["channels"], e.numbers["offset_groups"]
        return (f"{OP}: offset has {c} channels; the rule is offset.shape[1] == offset_group * kH * kW * 2 = "
                f"{g} * {kh} * {kw} * 2 = {g * kh * kw * 2}, with offset_group={g} and W of shape {list(weight_shape)}")

    def offset_groups(e: ConvRule) -> str:
        c, g = e.numbers["in_channels"], e.numbers["offset_groups"]
        return f"{OP}: X has C={c} channels, which must be divisible by offset_group={g} ({c} % {g} = {c % g})"

    def mask_channels(e: ConvRule) -> str:
        n = e.numbers
        return (f"{OP}: mask has {n['channels']} channels; the rule is mask.shape[1] == offset_group * kH * kW = "
                f"{n['offset_groups']} * {kh} * {kw} = {n['expected']}")

    def size(e: ConvRule) -> str:
        shape, out = list(e.numbers["shape"]), list(e.numbers["out_size"])
        return (f"{OP}: {e.param}'s spatial shape {shape[2:]} must be the output's [oH, oW] = {out}, "
                f"floor((in + pad_begin + pad_end - ((k - 1) * dilation + 1)) / stride) + 1 per axis "
                f"({e.param} of shape {shape})")
    return {**ONNX_WORDS, "deform_rank": rank, "deform_batch": batch, "deform_offset_channels": offset_channels,
            "deform_offset_groups": offset_groups, "deform_mask_channels": mask_channels,
            "deform_offset_size": size, "deform_mask_size": size}


# ---- a DeformConv node as npconv calls (npconv.convert.onnx_node_to_call) -----------------------

@dataclass(frozen=True)
class DeformConvCall:
    """One ONNX DeformConv node as an npconv call: ``call(X, W, offset, B, mask)``.

    ``padding`` holds ONNX's per-side pads ((top, bottom), (left, right)), which the engine
    takes as they are (the call is :func:`npconv.onnx.deform_conv`'s).  ``npconv.ops.deform_conv2d``
    and ``npconv.nn.DeformConv2d`` pad symmetrically (as torchvision): :attr:`kwargs` are their
    arguments where the two sides agree; where they differ, pad X with zeros by
    :attr:`front_pads` first and pass :attr:`kwargs` (the same samples, since a corner outside
    the image counts zero anyway).  :meth:`to_module` refuses such pads.

    ``group``/``offset_group``: the node's, checked against the operands (deform_conv2d infers
    them); ``kernel_shape``: from the node or weight_shape when known, checked against W.
    """

    stride: tuple[int, ...]
    padding: Pads
    dilation: tuple[int, ...]
    groups: int = 1
    offset_groups: int = 1
    kernel_shape: tuple[int, ...] | None = None
    function: str = "deform_conv2d"

    @property
    def front_pads(self) -> Pads | None:
        """Zeros (before, after) per spatial axis to add to X first; None when the pads are symmetric."""
        if all(lo == hi for lo, hi in self.padding):
            return None
        return tuple((lo - min(lo, hi), hi - min(lo, hi)) for lo, hi in self.padding)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``npconv.ops.deform_conv2d`` (and ``npconv.nn.DeformConv2d``)."""
        return dict(stride=self.stride, padding=tuple(min(lo, hi) for lo, hi in self.padding), dilation=self.dilation)

    def __call__(self, X: npt.ArrayLike, W: npt.ArrayLike, offset: npt.ArrayLike, B: npt.ArrayLike | None = None,
                 mask: npt.ArrayLike | None = None) -> np.ndarray:
        """The node on its inputs, in ONNX's order; ONNX's rules first, in ONNX's words."""
        x, w, off, b, m = _read(X, W, offset, B, mask, self.kernel_shape)
        pads = [lo for lo, _ in self.padding] + [hi for _, hi in self.padding]
        spec = deform_spec(x, w, off, b, m, dilations=self.dilation, group=self.groups,
                           offset_group=self.offset_groups, pads=pads, strides=self.stride)
        return ops.deform_conv(x, off, w, b, m, spec)

    def to_module(self, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None) -> nn.DeformConv2d:
        """An ``npconv.nn.DeformConv2d`` holding ``weight`` and ``bias``; ``forward(X, offset, mask)``."""
        if self.front_pads is not None:
            raise ValueError(f"{OP}: pads ((top, bottom), (left, right)) = {self.padding} differ between the sides; "
                             f"npconv.nn.DeformConv2d pads symmetrically (as torchvision): pad X by front_pads="
                             f"{self.front_pads} first and use padding={self.kwargs['padding']}, or call the "
                             f"DeformConvCall itself")
        w = np.asarray(weight)
        if self.kernel_shape is not None and tuple(w.shape[2:]) != self.kernel_shape:
            raise ValueError(f"{OP}: kernel_shape={list(self.kernel_shape)} must match W's spatial shape "
                             f"{list(w.shape[2:])} (W of shape {list(w.shape)})")
        module = nn.DeformConv2d(w.shape[1] * self.groups, w.shape[0], w.shape[2:], groups=self.groups,
                                 bias=bias is not None, dtype=w.dtype if w.dtype == np.float64 else np.float32,
                                 **self.kwargs)
        module.load_state_dict({"weight": w} if bias is None else {"weight": w, "bias": np.asarray(bias)})
        return module


def deform_node_call(attributes: Mapping[str, Any], n: int, kernel: tuple[int, ...] | None,
                     in_spatial: tuple[int, ...] | None, common: Mapping[str, Any]) -> DeformConvCall:
    """A DeformConv node's attributes as a :class:`DeformConvCall` (``common``: stride, dilation,
    groups and kernel_shape as ``npconv.convert.onnx`` reads them for every node)."""
    if n != 2:
        raise ValueError(f"{OP}: npconv converts the 2-D operator; the node has {n} spatial axes "
                         f"(kernel_shape={None if kernel is None else list(kernel)})")
    offset_group = attributes.get("offset_group", 1)
    _check_offset_group(offset_group)
    pairs = pads_attribute(OP, "NOTSET", attributes.get("pads"), n)
    assert pairs is not None  # NOTSET: always the pairs
    return DeformConvCall(padding=pairs, offset_groups=int(offset_group), **common)
