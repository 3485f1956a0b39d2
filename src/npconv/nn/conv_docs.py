"""The docstrings of the convolution modules (:mod:`npconv.nn.conv`), written once for every
number of spatial dims: the constructor's parameters, the attributes and a runnable example."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conv import ConvNd

_SHARED_PARAMETERS = """\
in_channels : int
        Channels of the input (C_in).
    out_channels : int
        Channels the module produces (C_out).
    kernel_size : int or tuple of int
        The kernel's spatial size (an int is used for every dim).
    stride : int or tuple of int, default 1
        Step between windows."""

_CONV_PADDING = """\
padding : int, tuple of int or str, default 0
        Zeros (or ``padding_mode`` values) added on both sides of each spatial dim, or
        ``'valid'`` (none) or ``'same'`` (output size = input size; stride 1)."""

_TRANSPOSED_PADDING = """\
padding : int or tuple of int, default 0
        ``dilation * (kernel_size - 1) - padding`` zeros are implicitly added on both sides
        of the input (so ``padding`` removes that many positions from each side of the output).
    output_padding : int or tuple of int, default 0
        Positions added on one side of the output, to pick among the sizes a strided input
        could have come from (each below stride or dilation)."""

_COMMON_TAIL = """\
groups : int, default 1
        Channel groups: input and output channels split into ``groups`` independent
        convolutions (``groups = in_channels`` is depthwise).
    bias : bool, default True
        Add a learnable bias per output channel."""

_DILATION = """\
dilation : int or tuple of int, default 1
        Spacing between kernel elements."""

_TAIL = """\
padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        How the padding is filled (``'zeros'`` only for transposed modules).
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility; npconv runs on the CPU.
    dtype : {numpy.float32, numpy.float64, numpy.complex64, numpy.complex128, None}, default None
        The parameters' dtype (float32 when None)."""


def _join_parameters(parts: list[str]) -> str:
    """Docstring blocks (each starting unindented) as one Parameters section."""
    return "\n    ".join(parts)


def conv_doc(n: int, transposed: bool) -> str:
    """The docstring of Conv{n}d / ConvTranspose{n}d: constructor, attributes and an example."""
    name = f"ConvTranspose{n}d" if transposed else f"Conv{n}d"
    spatial = ", ".join(f"L{i}" for i in range(n)) if n > 1 else "L"
    if transposed:
        weight = "(in_channels, out_channels / groups, *kernel_size)"
        rule = "out = (in - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1"
        order = [_SHARED_PARAMETERS, _TRANSPOSED_PADDING, _COMMON_TAIL, _DILATION, _TAIL]
        made, size_in, size_out = f"nn.{name}(2, 4, 3, stride=2)", "4", "9"
        summary = (f"A {n}-D transposed convolution (the gradient of Conv{n}d with respect to its input), "
                   f"as ``torch.nn.{name}``.")
    else:
        weight = "(out_channels, in_channels / groups, *kernel_size)"
        rule = "out = floor((in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1"
        order = [_SHARED_PARAMETERS, _CONV_PADDING, _DILATION, _COMMON_TAIL, _TAIL]
        made, size_in, size_out = f"nn.{name}(2, 4, 3, padding=1)", "5", "5"
        summary = (f"A {n}-D convolution (a cross-correlation, as in PyTorch) over an input of "
                   f"several channels, as ``torch.nn.{name}``.")
    shape_in, shape_out = (f"(1, 2, {', '.join([size_in] * n)})", f"(1, 4, {', '.join([size_out] * n)})")
    return f"""{summary}

    Same constructor, attributes, initialisation and repr as PyTorch's.  Input
    ``(N, C_in, {spatial})`` or unbatched ``(C_in, {spatial})``; output size per spatial dim::

        {rule}

    :meth:`backward` returns the input's gradient and adds ``weight.grad`` and ``bias.grad``.

    Parameters
    ----------
    {_join_parameters(order)}

    Attributes
    ----------
    weight : Parameter
        ``{weight}``, drawn from U(-b, b),
        b = 1 / sqrt(weight.shape[1] * prod(kernel_size)) (PyTorch's initialisation).
    bias : Parameter or None
        ``(out_channels,)``, drawn from the same range; None when ``bias=False``.
    spec : npconv.spec.ConvSpec
        The validated settings (kernel, stride, per-side pads, dilation, groups).

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> m = {made}
    >>> y = m(np.ones({shape_in}, np.float32))
    >>> y.shape, m.backward(np.ones_like(y)).shape, m.weight.grad.shape == m.weight.shape
    ({shape_out}, {shape_in}, True)
    """


def lazy_doc(plain: type[ConvNd]) -> str:
    """The docstring of Lazy{plain}: the plain class's, without in_channels."""
    name, n = plain.__name__, plain._n
    x_shape = f"(1, 3, {', '.join(['5'] * n)})"
    return f"""``torch.nn.Lazy{name}``: a :class:`{name}` whose ``in_channels`` is read from the first input.

    Until that first call the module has no weight (``weight`` and ``bias`` are None); the call
    creates them, turns the module into a plain :class:`{name}` and runs it.

    Parameters
    ----------
    out_channels, kernel_size, stride, padding, ...
        As :class:`{name}` takes them, in its order without ``in_channels``.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> m = nn.Lazy{name}(4, 3)
    >>> m.weight is None
    True
    >>> _ = m(np.ones({x_shape}, np.float32))
    >>> type(m).__name__, m.in_channels, m.weight.shape[:2]
    ('{name}', 3, {(4, 3) if not plain.transposed else (3, 4)})
    """
