"""The padding that gives a wanted output size, said in PyTorch's, Keras's and ONNX's terms.

:func:`solve` picks per-side pads ``(lo, hi)`` (and ``output_padding`` for transposed layers)
from a wanted size; :func:`translate` takes pads said in one convention.  Either way the
:class:`Solution` states those exact pads in every convention: the same pads give the same
numbers, not just the same shape (Keras's ``'same'`` at stride 2 pads ``(0, 1)``, which
PyTorch's ``padding=1`` is not).

Forward, per dim: ``out = floor((in + lo + hi - ek) / stride) + 1``.  Transposed:
``out = (in - 1) * stride - lo - hi + ek + output_padding`` with ``output_padding < max(stride,
dilation)``; a transposed result only depends on ``lo`` and ``hi - output_padding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

from ..keras import geometry as keras_geometry
from ..spec import ConvSpec, IntOrTuple, Padding, Pads, ntuple, same_pads


@dataclass(frozen=True)
class Solution:
    """Pads in every convention; ``None`` where a convention has no way to say them.

    ``str(solution)`` is :meth:`text`; in Jupyter it shows as that text.

    Attributes
    ----------
    in_size, out_size : tuple of int
        Spatial sizes in and out.
    spec : ConvSpec
        The full spec, pads included.
    pads : tuple of (int, int)
        ``(lo, hi)`` per spatial dim.
    output_padding : tuple of int
        Per dim (transposed only; zeros otherwise).
    pytorch, onnx, npconv : dict
        The keyword arguments that say these pads, e.g. ``{'padding': (3,)}``; PyTorch's may
        be ``{'F.pad': ..., 'padding': 0}`` (pad first) or, transposed, ``then_crop``.
    keras : dict or None
        Keras's ``padding`` (or ``ZeroPaddingND`` then ``'valid'``); None when Keras cannot
        say them (it refuses strides and dilation together).
    """

    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    spec: ConvSpec
    pads: Pads
    output_padding: tuple[int, ...]
    pytorch: dict[str, Any]
    keras: dict[str, Any] | None
    onnx: dict[str, Any]
    npconv: dict[str, Any]

    def text(self) -> str:
        """A header line, the pads, then one line per convention."""
        s = self.spec
        kind = "conv_transpose" if s.transposed else "conv"
        lines = [f"{kind}: input {_x(self.in_size)}, kernel {_x(s.kernel_size)}, stride {_x(s.stride)}, "
                 f"dilation {_x(s.dilation)} -> output {_x(self.out_size)}",
                 f"  pads (lo, hi) per dim: {self.pads}" + (f", output_padding {self.output_padding}"
                                                            if s.transposed else "")]
        for name in ("pytorch", "keras", "onnx", "npconv"):
            value = getattr(self, name)
            lines.append(f"  {name:<8} {_kwargs(value) if value else 'no exact equivalent'}")
        return "\n".join(lines)

    __str__ = text

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(self.text())}</pre>"


def _x(values: Sequence[int]) -> str:
    return "x".join(str(v) for v in values)


def _kwargs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items())


def _per_dim(value: IntOrTuple, n: int, name: str) -> tuple[int, ...]:
    return ntuple(value, n, name, "solve")


def solve(input_size: IntOrTuple, output_size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
          dilation: IntOrTuple = 1, transposed: bool = False) -> Solution:
    """Pads (and output_padding) giving ``output_size`` from ``input_size``, symmetric if possible.

    Forward, per dim: ``out = floor((in + lo + hi - ek) / stride) + 1``.  Transposed:
    ``out = (in - 1) * stride - lo - hi + ek + output_padding`` with ``output_padding <
    max(stride, dilation)``.  Among the pads that work, the smallest, split evenly when a
    symmetric split works (as PyTorch's int padding says them), else the odd cell after.

    Parameters
    ----------
    input_size : int or sequence of int
        The spatial size in (one int: 1-D).
    output_size : int or sequence of int
        The spatial size wanted (one int for every dim, or one per dim).
    kernel_size, stride, dilation : int or sequence of int
        As the layer's (one int for every dim, or one per dim).
    transposed : bool, default False
        Solve for a transposed convolution (then ``output_padding`` too).

    Returns
    -------
    Solution
        The pads in PyTorch's, Keras's, ONNX's and npconv's terms.

    Raises
    ------
    ValueError
        A size no padding reaches (the message gives the nearest one that is reachable), or
        a size or parameter below 1.

    Examples
    --------
    >>> solve(6, 3, 3, stride=2).pytorch
    {'padding': (1,)}
    >>> solve((7, 7), (4, 4), 3, stride=2).keras
    {'padding': 'same'}
    """
    in_size = _sizes(input_size, "input_size")
    n = len(in_size)
    out_size = _per_dim(output_size, n, "output_size")
    spec = ConvSpec.build(_per_dim(kernel_size, n, "kernel_size"), stride, 0, dilation, ndim=n, op="solve")
    if transposed:
        chosen = [_transposed_dim(i, o, k, s, d) for i, o, k, s, d in
                  zip(in_size, out_size, spec.effective_kernel, spec.stride, spec.dilation)]
        pads, out_pad = tuple(c[0] for c in chosen), tuple(c[1] for c in chosen)
    else:
        pads = tuple(_forward_dim(i, o, k, s) for i, o, k, s in
                     zip(in_size, out_size, spec.effective_kernel, spec.stride))
        out_pad = (0,) * n
    return express(in_size, spec, pads, out_pad, transposed)


def _sizes(value: IntOrTuple, name: str) -> tuple[int, ...]:
    sizes = (value,) if isinstance(value, int) else tuple(value)
    if not sizes or any(not isinstance(v, int) or v < 1 for v in sizes):
        raise ValueError(f"solve: {name} must be positive ints, got {value!r}")
    return sizes


def _forward_dim(size: int, out: int, ek: int, stride: int) -> tuple[int, int]:
    """Total pad T with floor((size + T - ek) / stride) + 1 == out: T in [low, low + stride - 1]."""
    low = (out - 1) * stride + ek - size
    high = low + stride - 1
    if high < 0:
        biggest = (size - ek) // stride + 1
        raise ValueError(f"solve: output size {out} is out of reach: with no padding the output is already "
                         f"{biggest} = floor(({size} - {ek}) / {stride}) + 1, and padding only adds; "
                         f"nearest valid: output_size={biggest}")
    if out < 1:
        raise ValueError(f"solve: output_size must be >= 1, got {out}")
    total = max(low, 0)
    if total % 2 and total + 1 <= high:
        total += 1  # symmetric pads, as PyTorch's int padding says them
    return (total // 2, total - total // 2)


def _transposed_dim(size: int, out: int, ek: int, stride: int, dilation: int) -> tuple[tuple[int, int], int]:
    """(lo, hi), output_padding with (size - 1) * stride - lo - hi + ek + op == out."""
    base = out - (size - 1) * stride - ek  # = op - lo - hi
    limit = max(stride, dilation) - 1  # output_padding must stay below max(stride, dilation)
    if base > limit:
        top = (size - 1) * stride + ek + limit
        raise ValueError(f"solve: transposed output size {out} is out of reach: the largest is {top} = "
                         f"({size} - 1) * {stride} + {ek} + output_padding {limit}; nearest valid: "
                         f"output_size={top}")
    if base >= 0:
        return (0, 0), base
    p = -(base // 2)  # ceil(-base / 2): the smallest p with base + 2p >= 0
    if base + 2 * p <= limit:
        return (p, p), base + 2 * p
    return (-base // 2, -base - (-base // 2)), 0


def translate(input_size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
              dilation: IntOrTuple = 1, *, padding: Padding | None = None, keras: str | None = None,
              onnx_pads: Sequence[int] | None = None, auto_pad: str | None = None, transposed: bool = False,
              output_padding: IntOrTuple | None = 0) -> Solution:
    """Pads said one way said every other way: the same pads, so the same numbers.

    The same output size is not the same output: Keras's ``'same'`` at stride 2 pads
    ``(0, 1)``, PyTorch's ``padding=1`` pads ``(1, 1)``; this says which is which.

    Parameters
    ----------
    input_size : int or sequence of int
        The spatial size in (one int: 1-D).
    kernel_size, stride, dilation : int or sequence of int
        As the layer's.
    padding : int, tuple or str, optional
        PyTorch's (or npconv's) ``padding``: ints, per-side pairs, ``'same'``, ``'valid'``...
    keras : {'same', 'valid', 'causal'}, optional
        A Keras padding string.
    onnx_pads : sequence of int, optional
        ONNX ``pads``: every dim's begin, then every dim's end.
    auto_pad : {'VALID', 'SAME_UPPER', 'SAME_LOWER'}, optional
        ONNX ``auto_pad``.
    transposed : bool, default False
        The pads of a transposed convolution.
    output_padding : int, sequence of int or None, default 0
        Transposed only; None (Keras's default) lets Keras's rule choose it.

    Returns
    -------
    Solution
        The pads in PyTorch's, Keras's, ONNX's and npconv's terms.

    Raises
    ------
    ValueError
        Not exactly one of ``padding``, ``keras``, ``onnx_pads``, ``auto_pad``; an unknown
        string; ``onnx_pads`` of the wrong length; or a setting the convolution refuses.

    Examples
    --------
    >>> translate(6, 3, stride=2, keras="same").pytorch
    {'F.pad': (0, 1), 'padding': 0}
    """
    in_size = _sizes(input_size, "input_size")
    n = len(in_size)
    given = [v is not None for v in (padding, keras, onnx_pads, auto_pad)]
    if sum(given) != 1:
        raise ValueError("translate: give exactly one of padding=, keras=, onnx_pads=, auto_pad=")
    kernel = _per_dim(kernel_size, n, "kernel_size")
    if keras is not None:
        padding, output_padding = _keras_pads(keras, in_size, kernel, stride, dilation, transposed,
                                              output_padding)
    elif onnx_pads is not None:
        if len(onnx_pads) != 2 * n:
            raise ValueError(f"translate: onnx_pads has begins then ends, {2 * n} ints; got {list(onnx_pads)}")
        padding = tuple(zip(onnx_pads[:n], onnx_pads[n:]))
    elif auto_pad is not None:
        padding = _onnx_auto_pad(auto_pad)
    # exactly one way was given, so padding is set; output_padding is None only as Keras's
    spec = ConvSpec.build(kernel, stride, cast(Padding, padding), dilation, 1, "zeros", transposed,
                          cast(IntOrTuple, output_padding), ndim=n, op="translate")
    return express(in_size, spec, spec.pads(in_size), spec.output_padding, transposed)


def _keras_pads(keras: str, in_size: tuple[int, ...], kernel: tuple[int, ...], stride: IntOrTuple,
                dilation: IntOrTuple, transposed: bool,
                output_padding: IntOrTuple | None) -> tuple[Padding, IntOrTuple]:
    """Keras's padding string (and output_padding, None allowed as in Keras) as pads."""
    if keras not in ("same", "valid", "causal"):
        raise ValueError(f"translate: keras padding must be 'same', 'valid' or 'causal', got {keras!r}")
    if not transposed:
        return keras, output_padding or 0
    if keras == "causal":
        raise ValueError("translate: Keras's transposed layers take padding 'same' or 'valid', not 'causal'")
    spec = ConvSpec.build(kernel, stride, 0, dilation, ndim=len(in_size), op="translate")
    if output_padding is not None:
        output_padding = _per_dim(output_padding, len(in_size), "output_padding")
    return keras_geometry.transposed_pads(spec.kernel_size, spec.stride, keras, output_padding, spec.dilation)


def _onnx_auto_pad(auto_pad: str) -> str:
    names = {"VALID": "valid", "SAME_UPPER": "same", "SAME_LOWER": "same_lower"}
    if auto_pad not in names:
        raise ValueError(f"translate: auto_pad must be one of {sorted(names)} (NOTSET means: give onnx_pads), "
                         f"got {auto_pad!r}")
    return names[auto_pad]


def express(in_size: tuple[int, ...], spec: ConvSpec, pads: Pads, output_padding: tuple[int, ...],
            transposed: bool) -> Solution:
    """The same pads in PyTorch's, Keras's, ONNX's and npconv's words."""
    full = ConvSpec.build(spec.kernel_size, spec.stride, pads, spec.dilation, 1, "zeros", transposed,
                          output_padding, ndim=len(in_size), op="solve")
    out = full.out_spatial(in_size)
    begins, ends = [lo for lo, _ in pads], [hi for _, hi in pads]
    onnx: dict[str, Any] = {"pads": begins + ends}
    if transposed:
        onnx["output_padding"] = list(output_padding)
    else:
        onnx.update(_onnx_auto_pad_equivalent(in_size, full, pads))
    npconv = {"padding": pads if any(lo != hi for lo, hi in pads) else tuple(lo for lo, _ in pads)}
    if transposed:
        npconv["output_padding"] = tuple(output_padding)
    return Solution(tuple(in_size), out, full, tuple(pads), tuple(output_padding),
                    _pytorch(full, pads, output_padding, transposed, in_size),
                    _keras(full, pads, output_padding, transposed, in_size), onnx, npconv)


def _onnx_auto_pad_equivalent(in_size: tuple[int, ...], spec: ConvSpec, pads: Pads) -> dict[str, str]:
    if all(p == (0, 0) for p in pads):
        return {"auto_pad": "VALID"}
    for name, lower in (("SAME_UPPER", False), ("SAME_LOWER", True)):
        if tuple(same_pads(i, k, s, d, lower) for i, k, s, d in
                 zip(in_size, spec.kernel_size, spec.stride, spec.dilation)) == tuple(pads):
            return {"auto_pad_also": name}
    return {}


def _pytorch(spec: ConvSpec, pads: Pads, output_padding: tuple[int, ...], transposed: bool,
             in_size: tuple[int, ...]) -> dict[str, Any]:
    if all(lo == hi for lo, hi in pads):
        said: dict[str, Any] = {"padding": tuple(lo for lo, _ in pads)}
        if transposed:
            said["output_padding"] = tuple(output_padding)
        elif max(spec.stride) == 1 and tuple(pads) == tuple(same_pads(i, k, 1, d) for i, k, d in
                                                            zip(in_size, spec.kernel_size, spec.dilation)):
            said["padding_also"] = "same"
        return said
    if transposed:  # pad the scatter result less, then crop: only lo and hi - output_padding matter
        return {"padding": 0, "output_padding": tuple(output_padding), "then_crop": tuple(pads)}
    flat = tuple(v for lo, hi in reversed(pads) for v in (lo, hi))  # F.pad: last dim first
    return {"F.pad": flat, "padding": 0}


def _keras(spec: ConvSpec, pads: Pads, output_padding: tuple[int, ...], transposed: bool,
           in_size: tuple[int, ...]) -> dict[str, Any] | None:
    refused = max(spec.stride) > 1 and max(spec.dilation) > 1  # Keras refuses strides and dilation together
    if transposed:  # results match when the crops, lo and hi - output_padding, match
        found = None if refused else keras_geometry.transposed_padding_for(
            spec.kernel_size, spec.stride, spec.dilation, keras_geometry.transposed_crops(pads, output_padding))
        if found is None:
            return None
        return {"padding": found[0]} if found[1] is None else {"padding": found[0], "output_padding": found[1]}
    name = keras_geometry.padding_name(pads, spec.kernel_size, spec.stride, spec.dilation, in_size)
    if name is not None and not (name == "same" and refused):
        return {"padding": name}
    return None if refused else {f"ZeroPadding{len(in_size)}D": tuple(pads), "padding": "valid"}
