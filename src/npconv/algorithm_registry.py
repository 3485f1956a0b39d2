"""The registered algorithms: each one's name, the rule that says where it applies, and its entry
points (:class:`Algorithm`), in :data:`ALGORITHMS`; :mod:`npconv.select` chooses among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .algorithms import (depthwise, depthwise_jit, direct_jit, fft, fft_grad, im2col_gemm, pointwise, polyphase,
                         separable_passes, winograd)
from .spec import ConvSpec

Shape = Sequence[int]


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: its name, the rule that says where it applies, its entry points.

    ``applies(spec, x_shape, w_shape)`` is the correctness rule; ``forward(x, w, spec, pads,
    out_spatial)`` computes; ``min_workspace(spec, x_shape, w_shape, itemsize)`` is the least
    scratch it runs in.  The weight-gradient fields are None where it has no weight gradient.
    """

    name: str
    applies: Callable
    forward: Callable
    weight_grad: Callable | None = None
    weight_grad_applies: Callable | None = None
    # (spec, x_shape, w_shape, itemsize) -> the least scratch bytes it can run in (its smallest chunk)
    min_workspace: Callable | None = None
    weight_grad_min_workspace: Callable | None = None
    # mixes many inputs into each transformed value: a NaN or inf spreads and extreme values
    # overflow, so it only gets operands npconv.numerics.transform_safe accepts
    transforms: bool = False
    # (spec, x, w) -> bool: where its gain depends on the values (a weight's rank), the planner
    # takes it only where this accepts the operands; forcing or autotuning needs only `applies`
    worthwhile: Callable | None = None
    # computes complex operands in complex arithmetic, and that measured faster than three real
    # convolutions of the parts (npconv.complex_forms); the others get the parts.  One complex
    # GEMM against three real ones, same algorithm forced (bench/complex.py's measurements):
    # im2col_gemm 1.2-1.5x, pointwise 1.5-2.4x, gemm_col2im 1.6-2.6x, depthwise_direct 1.6-1.8x
    complex_native: bool = False


def _any_forward(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> bool:
    """Every forward (not transposed) convolution: im2col + GEMM's domain."""
    return not spec.transposed


def _any_transposed(spec: ConvSpec, x_shape: Shape, w_shape: Shape) -> bool:
    """Every transposed convolution: GEMM + col2im's domain."""
    return spec.transposed


ALGORITHMS = {a.name: a for a in (
    Algorithm("im2col_gemm", _any_forward, im2col_gemm.forward, im2col_gemm.weight_grad,
              min_workspace=im2col_gemm.min_workspace, weight_grad_min_workspace=im2col_gemm.weight_grad_min_workspace,
              complex_native=True),
    Algorithm("gemm_col2im", _any_transposed, im2col_gemm.forward_transposed,
              min_workspace=im2col_gemm.transposed_min_workspace, complex_native=True),
    Algorithm("pointwise", pointwise.applies, pointwise.forward, pointwise.weight_grad,
              min_workspace=pointwise.min_workspace, weight_grad_min_workspace=pointwise.weight_grad_min_workspace,
              complex_native=True),
    Algorithm("depthwise_direct", depthwise.applies, depthwise.forward, depthwise.weight_grad,
              min_workspace=depthwise.min_workspace, weight_grad_min_workspace=depthwise.weight_grad_min_workspace,
              complex_native=True),
    Algorithm("depthwise_jit", depthwise_jit.applies, depthwise_jit.forward, depthwise_jit.weight_grad,
              min_workspace=depthwise_jit.min_workspace,
              weight_grad_min_workspace=depthwise_jit.weight_grad_min_workspace),
    Algorithm("fft", fft.applies, fft.forward, fft_grad.weight_grad, fft_grad.weight_grad_applies, transforms=True,
              min_workspace=fft.min_workspace, weight_grad_min_workspace=fft_grad.weight_grad_min_workspace,
              complex_native=True),
    Algorithm("winograd_f2", winograd.applies, winograd.forward_f2, transforms=True,
              min_workspace=winograd.min_workspace_f2),
    Algorithm("winograd_f4", winograd.applies_f4, winograd.forward_f4, transforms=True,
              min_workspace=winograd.min_workspace_f4),
    Algorithm("direct_jit", direct_jit.applies, direct_jit.forward, direct_jit.weight_grad,
              min_workspace=direct_jit.min_workspace, weight_grad_min_workspace=direct_jit.weight_grad_min_workspace),
    Algorithm("polyphase", polyphase.applies, polyphase.forward, min_workspace=polyphase.min_workspace),
    Algorithm("separable_passes", separable_passes.applies, separable_passes.forward, transforms=True,
              min_workspace=separable_passes.min_workspace, worthwhile=separable_passes.worthwhile),
)}
# what runs without Numba (the fallback, and the second oracle of the compiled kernels)
NUMPY_ALGORITHMS = ("im2col_gemm", "gemm_col2im", "pointwise", "depthwise_direct", "fft", "winograd_f2",
                    "winograd_f4", "polyphase", "separable_passes")
