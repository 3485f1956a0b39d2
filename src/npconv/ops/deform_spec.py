"""The shape rules of a deformable convolution: a plain conv's geometry plus the offset and mask.

A deformable conv has the geometry of the plain conv of the same weight (its
:class:`npconv.ConvSpec` decides the output size, channels, groups and bias), and two more
operands whose shapes follow from it: the offset ``(N, 2*G*kh*kw, oh, ow)`` and the mask
``(N, G*kh*kw, oh, ow)``, ``G`` the offset groups.  :class:`DeformSpec` checks both and keeps
the numbers the kernels need.  Refusals are :class:`npconv.ConvRuleError` with these rules
(besides ConvSpec's own):

=========================  ================================================================
rule                       numbers
=========================  ================================================================
``deform_rank``            name, shape
``deform_batch``           name, batch, input_batch
``deform_groups``          in_channels, weight_channels
``deform_offset_channels`` channels, taps, offset_groups
``deform_offset_groups``   in_channels, offset_groups
``deform_mask_channels``   channels, expected, offset_groups, taps
``deform_offset_size``     shape, out_size
``deform_mask_size``       shape, out_size
=========================  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, cast

from ..spec import ConvSpec, check_operands
from ..spec_errors import ConvRuleError

__all__ = ["DeformSpec", "Padding"]

Pair = tuple[int, int]
Padding = int | Sequence[int] | Sequence[Sequence[int]]


def _refuse(op: str, rule: str, param: str, message: str, **numbers: object) -> ConvRuleError:
    return ConvRuleError(f"{op}: {message}", rule=rule, param=param, op=op, numbers=numbers)


def _check_ranks(op: str, shapes: dict[str, Sequence[int] | None]) -> None:
    for name, shape in shapes.items():
        if shape is not None and len(shape) != 4:
            raise _refuse(op, "deform_rank", name, f"{name} must be a 4-D array (N, C, H, W), "
                          f"got {len(shape)}-D shape {tuple(shape)}", name=name, shape=tuple(shape))


def _inferred_groups(op: str, in_channels: int, weight_shape: Sequence[int], groups: int | None) -> int:
    """Weight groups: C_in // weight.shape[1] (torchvision's rule), checked against ``groups`` if given."""
    per_group = weight_shape[1]
    if groups is None and (per_group < 1 or in_channels < per_group or in_channels % per_group):
        raise _refuse(op, "deform_groups", "weight",
                      f"the input's {in_channels} channels are not a multiple of weight.shape[1]={per_group} "
                      f"(the channels per weight group); weight {tuple(weight_shape)}",
                      in_channels=in_channels, weight_channels=per_group)
    return in_channels // per_group if groups is None else groups


def _offset_groups(op: str, offset_channels: int, taps: int, in_channels: int, given: int | None) -> int:
    """Offset groups: offset.shape[1] // (2*kh*kw), which must divide C_in."""
    if offset_channels < 2 * taps or offset_channels % (2 * taps) or (
            given is not None and offset_channels != 2 * taps * given):
        wanted = "2*kh*kw*offset_groups" + ("" if given is None else f" = {2 * taps * given}")
        raise _refuse(op, "deform_offset_channels", "offset",
                      f"offset.shape[1] must be {wanted} (a positive multiple of 2*kh*kw = {2 * taps}: "
                      f"a (dy, dx) pair per tap and offset group), got {offset_channels}",
                      channels=offset_channels, taps=taps, offset_groups=given)
    groups = offset_channels // (2 * taps)
    if in_channels % groups:
        raise _refuse(op, "deform_offset_groups", "offset",
                      f"the input's {in_channels} channels must divide into the {groups} offset groups "
                      f"that offset.shape[1]={offset_channels} = 2*{taps}*{groups} implies",
                      in_channels=in_channels, offset_groups=groups)
    return groups


def _check_follower(op: str, name: str, shape: Sequence[int], batch: int, out_size: Pair) -> None:
    """The offset or mask: the input's batch and the output's spatial size."""
    if shape[0] != batch:
        raise _refuse(op, "deform_batch", name, f"{name}.shape[0] must be the input's batch {batch}, "
                      f"got {shape[0]} ({name} {tuple(shape)})", name=name, batch=shape[0], input_batch=batch)
    if tuple(shape[2:]) != out_size:
        raise _refuse(op, f"deform_{name}_size", name,
                      f"{name}'s spatial size must be the output's {out_size[0]}x{out_size[1]}, "
                      f"got {shape[2]}x{shape[3]} ({name} {tuple(shape)})", shape=tuple(shape), out_size=out_size)


@dataclass(frozen=True)
class DeformSpec:
    """One deformable convolution's validated geometry.

    Built by :meth:`of`, never directly.  ``conv`` is the plain convolution of the same weight
    (its output size, groups and pads are the deformable conv's); the other fields are the
    numbers the kernels read.

    Examples
    --------
    >>> spec = DeformSpec.of((2, 4, 8, 8), (2, 36, 8, 8), (6, 2, 3, 3), mask_shape=(2, 18, 8, 8), padding=1)
    >>> spec.groups, spec.offset_groups, spec.out_size, spec.masked
    (2, 2, (8, 8), True)
    """

    conv: ConvSpec
    batch: int
    in_channels: int
    out_channels: int
    in_size: Pair
    out_size: Pair
    offset_groups: int
    masked: bool

    @classmethod
    def of(cls, input_shape: Sequence[int], offset_shape: Sequence[int], weight_shape: Sequence[int], *,
           mask_shape: Sequence[int] | None = None, bias_shape: Sequence[int] | None = None,
           stride: int | Sequence[int] = 1, padding: Padding = 0, dilation: int | Sequence[int] = 1,
           groups: int | None = None, offset_groups: int | None = None, op: str = "deform_conv2d") -> "DeformSpec":
        """Validate the operands' shapes and the geometry; every refusal comes before any work.

        Parameters
        ----------
        input_shape, offset_shape, weight_shape : sequence of int
            ``(N, C_in, H, W)``, ``(N, 2*G*kh*kw, oh, ow)``, ``(C_out, C_in/groups, kh, kw)``.
        mask_shape, bias_shape : sequence of int, optional
            ``(N, G*kh*kw, oh, ow)`` and ``(C_out,)``.
        stride, dilation : int or pair
        padding : int, pair, or per-side pairs ((top, bottom), (left, right))
        groups, offset_groups : int, optional
            None: inferred from the shapes (torchvision); given: checked against them (ONNX).
        op : str
            The caller's name in messages.

        Returns
        -------
        DeformSpec

        Raises
        ------
        ConvRuleError
            The rules in :mod:`npconv.ops.deform_spec`'s table, and ConvSpec's.
        """
        _check_ranks(op, {"input": input_shape, "offset": offset_shape, "weight": weight_shape, "mask": mask_shape})
        in_channels, kernel = input_shape[1], tuple(weight_shape[2:])
        weight_groups = _inferred_groups(op, in_channels, weight_shape, groups)
        conv = ConvSpec.build(kernel, stride, padding, dilation, weight_groups, op=op)
        out_channels = check_operands(conv, input_shape, weight_shape, bias_shape)
        out_size = cast(Pair, conv.out_spatial(input_shape[2:]))
        taps = conv.kernel_volume
        g = _offset_groups(op, offset_shape[1], taps, in_channels, offset_groups)
        _check_follower(op, "offset", offset_shape, input_shape[0], out_size)
        if mask_shape is not None:
            if mask_shape[1] != g * taps:
                raise _refuse(op, "deform_mask_channels", "mask",
                              f"mask.shape[1] must be offset_groups*kh*kw = {g}*{taps} = {g * taps} (one weight per "
                              f"tap and offset group), got {mask_shape[1]}",
                              channels=mask_shape[1], expected=g * taps, offset_groups=g, taps=taps)
            _check_follower(op, "mask", mask_shape, input_shape[0], out_size)
        return cls(conv, input_shape[0], in_channels, out_channels, (input_shape[2], input_shape[3]), out_size,
                   g, mask_shape is not None)

    @property
    def groups(self) -> int:
        """The weight groups."""
        return self.conv.groups

    @property
    def kernel_size(self) -> Pair:
        return cast(Pair, self.conv.kernel_size)

    @property
    def stride(self) -> Pair:
        return cast(Pair, self.conv.stride)

    @property
    def dilation(self) -> Pair:
        return cast(Pair, self.conv.dilation)

    @property
    def pads(self) -> tuple[Pair, Pair]:
        """((top, bottom), (left, right)); samples use the begin pads, the output size both."""
        return cast(tuple[Pair, Pair], self.conv.padding)

    @property
    def taps(self) -> int:
        """kh * kw."""
        return self.conv.kernel_volume

    @property
    def channels_per_offset_group(self) -> int:
        return self.in_channels // self.offset_groups

    @property
    def offset_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 2 * self.offset_groups * self.taps, *self.out_size)

    @property
    def mask_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.offset_groups * self.taps, *self.out_size)
