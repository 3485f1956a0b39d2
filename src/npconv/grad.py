"""Gradients of the convolution family, each one a convolution of the same primitive.

For ``y = conv(x, w)`` (stride s, pads, dilation d, groups G, any padding_mode):

- ``grad_input`` is the transposed convolution of ``grad_output`` with the same weight (for a
  padding mode other than zeros, the padded border's gradient is folded back onto the input:
  the adjoint of the same window gathering);
- ``grad_weight`` is a convolution of the input with ``grad_output`` as the kernel, the roles
  of stride and dilation swapped and the channels of each group treated as the batch;
- ``grad_bias`` is the sum of ``grad_output`` over the batch and spatial dims.

For a transposed convolution the first two swap: its input gradient is the plain
convolution, and its weight gradient is the conv weight gradient with input and
grad_output exchanged.

Complex operands follow torch autograd's convention: for a real loss L, the gradient of a
complex z is ``dL/dRe(z) + i dL/dIm(z)`` (the conjugate Wirtinger derivative, doubled), so
``grad_input`` convolves ``grad_output`` with ``conj(w)``, ``grad_weight`` correlates
``conj(x)`` with ``grad_output``, and ``grad_bias`` is the same sum.

The per-dim functions have ``torch.nn.grad``'s signatures::

    conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1)
    conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1)

>>> import numpy as np
>>> gy = np.ones((1, 1, 2, 2))
>>> conv2d_input((1, 1, 3, 3), np.ones((1, 1, 2, 2)), gy)[0, 0]
array([[1., 2., 1.],
       [2., 4., 2.],
       [1., 2., 1.]])
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from . import complex_forms, core, numerics, select, threads
from .arrays import as_array, compute_dtypes
from .memory import check_allocation
from .spec import ConvSpec, IntOrTuple, Padding, check_input_rank

__all__ = ["conv_input", "conv_weight", "conv_bias"] + [
    f"{kind}{n}d_{what}" for kind in ("conv", "conv_transpose") for n in (1, 2, 3) for what in ("input", "weight")]


# ---- the general N-d rules -------------------------------------------------------------

def input_grad(spec: ConvSpec, input_spatial: tuple[int, ...], w: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """d loss / d x for batched grad_output ``gy`` ``(N, C_out, *out)`` and the forward's spec:
    a transposed convolution of ``gy`` with ``w`` (a plain one for a transposed forward);
    ``conj(w)`` for a complex weight."""
    w = np.conjugate(w) if np.iscomplexobj(w) else w
    pads = spec.pads(input_spatial)
    if spec.transposed:  # the plain convolution, cropped where output_padding made extra rows
        conv_spec = spec.with_pads(pads, transposed=False, output_padding=(0,) * spec.ndim)
        gx = core.compute_batched(conv_spec, gy, w)
        return gx[(slice(None), slice(None)) + tuple(slice(0, size) for size in input_spatial)]
    out_spatial = gy.shape[2:]
    # output_padding recovers the rows the forward's floor division dropped (always < stride)
    extra = tuple(i + lo + hi - ((o - 1) * s + ek) for i, (lo, hi), o, s, ek in
                  zip(input_spatial, pads, out_spatial, spec.stride, spec.effective_kernel))
    transposed = spec.with_pads(pads, transposed=True, output_padding=extra)
    return core.compute_batched(transposed, gy, w)


def weight_grad(spec: ConvSpec, x: np.ndarray, gy: np.ndarray, kernel_size: Sequence[int]) -> np.ndarray:
    """d loss / d w: conv weight ``(C_out, C_in/G, *k)``; transposed weight ``(C_in, C_out/G, *k)``.
    Complex: the correlation of ``conj(x)`` with ``gy``."""
    if spec.transposed:  # input and grad_output exchange roles
        conv_spec = dataclasses.replace(spec, transposed=False, output_padding=(0,) * spec.ndim)
        gw = weight_grad(conv_spec, gy, _grown_to(x, conv_spec.out_spatial(gy.shape[2:])), kernel_size)
        # complex: the swapped rule conjugates gy where x must be, so its conjugate is the gradient
        return np.conjugate(gw) if np.iscomplexobj(gw) else gw
    w_shape = (gy.shape[1], x.shape[1] // spec.groups) + tuple(kernel_size)
    if x.shape[0] == 0 or 0 in gy.shape:  # an empty batch: nothing was summed
        return np.zeros(w_shape, np.result_type(x, gy))
    if np.iscomplexobj(x) or np.iscomplexobj(gy):
        return _complex_weight_grad(spec, np.conjugate(x), gy)
    algorithm = select.weight_grad_algorithm(spec, x, gy, w_shape)
    assert algorithm.weight_grad is not None  # weight_grad_algorithm picks only algorithms that have one
    with threads.limited(), numerics.quiet():
        return algorithm.weight_grad(x, gy, spec, spec.pads(x.shape[2:]))


def _complex_weight_grad(spec: ConvSpec, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The real rule's correlation of (already conjugated) ``x`` with ``gy``: whole where the
    planner's algorithm computes complex natively, else by real parts."""
    w_shape = (gy.shape[1], x.shape[1] // spec.groups) + spec.kernel_size
    native = select.complex_weight_grad_algorithm(spec, x, gy, w_shape)
    if native is not None and native.weight_grad is not None:
        dtype = np.result_type(x, gy)
        with threads.limited(), numerics.quiet():
            return native.weight_grad(x.astype(dtype, copy=False), gy.astype(dtype, copy=False), spec,
                                      spec.pads(x.shape[2:]))

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        w_shape = (b.shape[1], a.shape[1] // spec.groups) + spec.kernel_size
        algorithm = select.weight_grad_algorithm(spec, a, b, w_shape)
        assert algorithm.weight_grad is not None
        with threads.limited(), numerics.quiet():
            return algorithm.weight_grad(a, b, spec, spec.pads(a.shape[2:]))
    return complex_forms.by_parts(run, x, gy)


def _grown_to(gy: np.ndarray, out_spatial: tuple[int, ...]) -> np.ndarray:
    """gy with zeros appended up to ``out_spatial``.  A transposed conv whose output_padding
    reaches its stride (possible when dilation > stride) has a plain-conv twin with more
    outputs than the transposed input has positions; those extra outputs read only the
    output_padding rows, which no input reached, so their gradient is zero."""
    extra = tuple(o - i for o, i in zip(out_spatial, gy.shape[2:]))
    if not any(extra):
        return gy
    return np.pad(gy, ((0, 0), (0, 0)) + tuple((0, e) for e in extra))


def weight_grad_as_convolution(spec: ConvSpec, x: np.ndarray, gy: np.ndarray,
                               kernel_size: Sequence[int]) -> np.ndarray:
    """The same gradient written as one call of the primitive: a convolution of the input with
    grad_output as the kernel, stride and dilation swapped, the channels of each group as the
    batch.  Kept as the definition the fast weight gradients are tested against."""
    n, c_in, g = x.shape[0], x.shape[1], spec.groups
    c_out, out_spatial, in_spatial = gy.shape[1], gy.shape[2:], x.shape[2:]
    lead = len(in_spatial)
    # batch = channel within group, channels = (group, image), groups = G
    images = x.reshape((n, g, c_in // g) + in_spatial).transpose((2, 1, 0) + tuple(range(3, 3 + lead)))
    images = images.reshape((c_in // g, g * n) + in_spatial)
    kernels = gy.reshape((n, g, c_out // g) + out_spatial).transpose((1, 2, 0) + tuple(range(3, 3 + lead)))
    kernels = kernels.reshape((g * (c_out // g), n) + out_spatial)
    swapped = ConvSpec(tuple(out_spatial), spec.dilation, spec.pads(in_spatial), spec.stride, g,
                       spec.padding_mode, False, (0,) * lead, op=spec.op)
    gw = core.compute_batched(swapped, images, kernels)  # (C_in/G, C_out, *k'), k' >= k
    gw = gw[(slice(None), slice(None)) + tuple(slice(0, k) for k in kernel_size)]
    return np.ascontiguousarray(gw.swapaxes(0, 1))


def bias_grad(gy: np.ndarray) -> np.ndarray:
    """d loss / d bias for batched ``gy``: its sum over the batch and spatial dims."""
    return gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))


# ---- public API ------------------------------------------------------------------------

def _spec(weight_shape: Sequence[int], stride: IntOrTuple, padding: Padding, dilation: IntOrTuple, groups: int,
          padding_mode: str, transposed: bool, output_padding: IntOrTuple, n: int, op: str) -> ConvSpec:
    return ConvSpec.build(tuple(weight_shape[2:]), stride, padding, dilation, groups, padding_mode,
                          transposed, output_padding, ndim=n, op=op)


def _batched(op: str, n: int, array: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    batched = check_input_rank(op, n, array.shape)
    return (array if batched else array[None]), batched


def _check_grad_output(spec: ConvSpec, input_shape: tuple[int, ...], weight_shape: Sequence[int],
                       gy_shape: tuple[int, ...], op: str) -> None:
    out_channels = weight_shape[1] * spec.groups if spec.transposed else weight_shape[0]
    expected = (input_shape[0], out_channels) + spec.out_spatial(input_shape[2:])
    if tuple(gy_shape) != expected:
        raise ValueError(f"{op}: grad_output has shape {list(gy_shape)}, but the convolution of an "
                         f"input of shape {list(input_shape)} with this weight gives {list(expected)}")


def conv_input(input_size: Sequence[int], weight: npt.ArrayLike, grad_output: npt.ArrayLike, *,
               stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
               padding_mode: str = "zeros", transposed: bool = False,
               output_padding: IntOrTuple = 0) -> np.ndarray:
    """Gradient of the N-d primitive :func:`npconv.conv` with respect to its input.

    Parameters
    ----------
    input_size : sequence of ints
        The forward input's shape, ``(N, C_in, *in)`` or unbatched ``(C_in, *in)``.
    weight : array_like
        The forward's weight; its rank gives the number of spatial dims n.
    grad_output : array_like
        d loss / d output, of the forward output's shape (batched as ``input_size``).
    stride, padding, dilation, groups, padding_mode, transposed, output_padding
        The forward's settings (keyword-only), as :func:`npconv.conv` takes them.

    Returns
    -------
    numpy.ndarray
        d loss / d input, of shape ``input_size``.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError
        The forward's settings break a rule (as the forward would refuse them).
    ValueError
        ``input_size`` not n + 1 or n + 2 long, or ``grad_output`` not the shape the forward
        gives for ``input_size``.
    TypeError
        ``weight`` or ``grad_output`` not real or complex numbers.

    Examples
    --------
    >>> import numpy as np
    >>> conv_input((1, 1, 4), np.array([[[1., 2.]]]), np.ones((1, 1, 3)))
    array([[[1., 3., 3., 2.]]])
    """
    w = as_array(weight, "weight", "conv_input")
    n = w.ndim - 2
    op = f"conv_transpose{n}d_input" if transposed else f"conv{n}d_input"
    spec = _spec(w.shape, stride, padding, dilation, groups, padding_mode, transposed, output_padding, n, op)
    gy, batched = _batched(op, n, as_array(grad_output, "grad_output", op), "grad_output")
    given = tuple(int(v) for v in input_size)
    size = given if len(given) == n + 2 else (1,) + given if len(given) == n + 1 else None
    if size is None:
        raise ValueError(f"{op}: input_size must have {n + 1} or {n + 2} entries, got {list(input_size)}")
    if batched and size[0] != gy.shape[0]:
        raise ValueError(f"{op}: input_size {list(input_size)} and grad_output {list(gy.shape)} disagree on the batch")
    _check_grad_output(spec, (gy.shape[0],) + size[1:], w.shape, gy.shape, op)
    compute, result = compute_dtypes(gy, w)
    check_allocation(f"{op} result", (gy.shape[0],) + size[1:], compute)
    gx = input_grad(spec, size[2:], w.astype(compute, copy=False), gy.astype(compute, copy=False))
    gx = gx.astype(result, copy=False)
    return gx if batched else gx[0]


def conv_weight(input: npt.ArrayLike, weight_size: Sequence[int], grad_output: npt.ArrayLike, *,
                stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
                padding_mode: str = "zeros", transposed: bool = False,
                output_padding: IntOrTuple = 0) -> np.ndarray:
    """Gradient of the N-d primitive :func:`npconv.conv` with respect to its weight.

    Parameters
    ----------
    input : array_like
        The forward's input, ``(N, C_in, *in)`` or unbatched ``(C_in, *in)``.
    weight_size : sequence of ints
        The forward weight's shape; its length gives the number of spatial dims n.
    grad_output : array_like
        d loss / d output, of the forward output's shape.
    stride, padding, dilation, groups, padding_mode, transposed, output_padding
        The forward's settings (keyword-only), as :func:`npconv.conv` takes them.

    Returns
    -------
    numpy.ndarray
        d loss / d weight, of shape ``weight_size``, summed over the batch.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError
        The forward's settings break a rule.
    ValueError
        ``grad_output`` not the shape the forward gives.
    TypeError
        ``input`` or ``grad_output`` not real or complex numbers.

    Examples
    --------
    >>> import numpy as np
    >>> conv_weight(np.array([[[1., 2., 3., 4.]]]), (1, 1, 2), np.ones((1, 1, 3)))
    array([[[6., 9.]]])
    """
    weight_size = tuple(int(v) for v in weight_size)
    n = len(weight_size) - 2
    op = f"conv_transpose{n}d_weight" if transposed else f"conv{n}d_weight"
    spec = _spec(weight_size, stride, padding, dilation, groups, padding_mode, transposed, output_padding, n, op)
    x, batched = _batched(op, n, as_array(input, "input", op), "input")
    gy = as_array(grad_output, "grad_output", op)
    gy = gy if batched else gy[None]
    _check_grad_output(spec, x.shape, weight_size, gy.shape, op)
    compute, result = compute_dtypes(x, gy)
    check_allocation(f"{op} result", weight_size, compute)
    gw = weight_grad(spec, x.astype(compute, copy=False), gy.astype(compute, copy=False), weight_size[2:])
    return gw.astype(result, copy=False)


def conv_bias(grad_output: npt.ArrayLike, batched: bool = True) -> np.ndarray:
    """Gradient of any convolution with respect to its bias.

    Parameters
    ----------
    grad_output : array_like
        d loss / d output, ``(N, C_out, *out)``, or ``(C_out, *out)`` with ``batched=False``.
    batched : bool, default True
        Whether ``grad_output`` has the batch dim.

    Returns
    -------
    numpy.ndarray
        (C_out,): ``grad_output`` summed over the batch and spatial dims.

    Raises
    ------
    TypeError
        ``grad_output`` not real or complex numbers.

    Examples
    --------
    >>> import numpy as np
    >>> conv_bias(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    """
    gy = as_array(grad_output, "grad_output", "conv_bias")
    return bias_grad(gy if batched else gy[None])


GradFunction = Callable[..., np.ndarray]


def _per_dim(n: int, transposed: bool) -> tuple[GradFunction, GradFunction]:
    grad_input: GradFunction
    grad_weight: GradFunction
    if transposed:
        def grad_input(input_size: Sequence[int], weight: npt.ArrayLike, grad_output: npt.ArrayLike,
                       stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                       groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
            return conv_input(input_size, weight, grad_output, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, transposed=True, output_padding=output_padding)

        def grad_weight(input: npt.ArrayLike, weight_size: Sequence[int], grad_output: npt.ArrayLike,
                        stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                        groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
            return conv_weight(input, weight_size, grad_output, stride=stride, padding=padding,
                               dilation=dilation, groups=groups, transposed=True, output_padding=output_padding)
    else:
        def grad_input(input_size: Sequence[int], weight: npt.ArrayLike, grad_output: npt.ArrayLike,
                       stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
                       *, padding_mode: str = "zeros") -> np.ndarray:
            return conv_input(input_size, weight, grad_output, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, padding_mode=padding_mode)

        def grad_weight(input: npt.ArrayLike, weight_size: Sequence[int], grad_output: npt.ArrayLike,
                        stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1,
                        *, padding_mode: str = "zeros") -> np.ndarray:
            return conv_weight(input, weight_size, grad_output, stride=stride, padding=padding,
                               dilation=dilation, groups=groups, padding_mode=padding_mode)
    name = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    for function, what in ((grad_input, "input"), (grad_weight, "weight")):
        function.__name__ = function.__qualname__ = f"{name}_{what}"
        function.__doc__ = _per_dim_doc(name, what, n, transposed)
    return grad_input, grad_weight


def _per_dim_doc(name: str, what: str, n: int, transposed: bool) -> str:
    """The numpydoc page of one per-dim gradient (they differ only in n and the settings)."""
    settings = ("stride, padding, output_padding, groups, dilation" if transposed else
                "stride, padding, dilation, groups, padding_mode")
    given = ("input_size : sequence of ints\n        The forward input's shape.\n    weight : array_like"
             if what == "input" else
             "input : array_like\n        The forward's input.\n    weight_size : sequence of ints")
    signature = (f"``torch.nn.functional.{name}``'s argument order" if transposed else
                 f"``torch.nn.grad.{name}_{what}``'s signature")
    return f"""Gradient of ``{name}`` with respect to its {what}, with {signature}.

    Parameters
    ----------
    {given}
        The forward's weight{" shape" if what == "weight" else ""} ({n} spatial dims).
    grad_output : array_like
        d loss / d output, of the forward output's shape.
    {settings}
        The forward's settings, as ``npconv.functional.{name}`` takes them.

    Returns
    -------
    numpy.ndarray
        d loss / d {what}, of the forward {what}'s shape.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv_{what}`.
    """


conv1d_input, conv1d_weight = _per_dim(1, False)
conv2d_input, conv2d_weight = _per_dim(2, False)
conv3d_input, conv3d_weight = _per_dim(3, False)
conv_transpose1d_input, conv_transpose1d_weight = _per_dim(1, True)
conv_transpose2d_input, conv_transpose2d_weight = _per_dim(2, True)
conv_transpose3d_input, conv_transpose3d_weight = _per_dim(3, True)
