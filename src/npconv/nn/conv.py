"""torch.nn's convolution modules: Conv1d/2d/3d, ConvTranspose1d/2d/3d and their Lazy forms
(Unfold and Fold: :mod:`npconv.nn.fold`, imported here too).  One base class owns
validation, parameters and the backward; the classes only fix the number of spatial dims
and the argument order (their docstrings: :mod:`npconv.nn.conv_docs`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import core, grad
from ..arrays import SUPPORTED_COMPLEX, as_array, compute_dtypes, real_dtype
from ..random import generator
from ..spec import ConvSpec, check_groups, check_input_rank, weight_shape
from ..spec_errors import ConvRule, ConvRuleError, Words, worded
from .conv_dask import backward_refusal, dask_forward, is_dask_array, module_input
from .conv_docs import conv_doc, lazy_doc
from .fold import Fold, Unfold
from .module import Module, Parameter, accumulate_grad

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d", "Unfold", "Fold"]  # Unfold and Fold live in npconv.nn.fold

DTYPES = (np.float32, np.float64)


def check_module_dtype(dtype: npt.DTypeLike | None, device: str | None, complex_ok: bool = False) -> np.dtype:
    """A module's parameter dtype: float32 (the default) or float64 (or complex where ``complex_ok``), on the CPU.

    Parameters
    ----------
    dtype : data-type or None
        The requested dtype; None means float32, as in PyTorch.
    device : str or None
        ``'cpu'`` or None.
    complex_ok : bool, default False
        Whether the module takes complex64 and complex128 (PyTorch's conv modules do).

    Returns
    -------
    numpy.dtype

    Raises
    ------
    ValueError
        A device other than the CPU.
    TypeError
        A dtype the module does not take; the message names those it takes.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device={device!r}: npconv runs on the CPU only (device='cpu' or None)")
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.type not in DTYPES + (SUPPORTED_COMPLEX if complex_ok else ()):
        raise TypeError(f"dtype must be float32 or float64{' (or complex64, complex128)' * complex_ok}, got {dtype}")
    return dtype


def _groups_refused(error: ConvRule) -> ConvRuleError:
    """torch.nn's constructors say a non-int groups is a ValueError, as a zero one is."""
    value = error.numbers.get("value", (error.numbers.get("values") or ("?",))[0])
    return ConvRuleError(f"{error.op}: groups must be a positive integer, got groups={value!r}", rule=error.rule,
                         param="groups", op=error.op, numbers=error.numbers, nearest="groups=1")


MODULE_WORDS: Words = {"groups_type": _groups_refused,
                       "positive": lambda e: _groups_refused(e) if e.param == "groups" else e}


class ConvNd(Module):
    """Shared by every convolution module; ``_n`` spatial dims, ``transposed`` or not.

    It owns validation, parameters, the forward and the backward; :class:`Conv2d` and the
    others only fix the number of spatial dims and their constructor's argument order.
    Other faces read a module's validated parameters through :attr:`spec`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size, stride, padding, dilation, groups, bias, padding_mode, output_padding, device, dtype
        As :class:`Conv2d` and :class:`ConvTranspose2d` document them (all required here, in
        this order).
    """

    _n = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...], padding: int | str | tuple[int, ...],
                 dilation: int | tuple[int, ...], groups: int, bias: bool, padding_mode: str,
                 output_padding: int | tuple[int, ...] = 0, device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        with worded(MODULE_WORDS):
            check_groups(name, groups)
        self._spec = ConvSpec.build(kernel_size, stride, padding, dilation, groups, padding_mode,
                                    self.transposed, output_padding, ndim=self._n, op=name)
        self._spec.check_channels(in_channels, out_channels)
        self._dtype = check_module_dtype(dtype, device, complex_ok=True)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = (self._spec.kernel_size, self._spec.stride,
                                                        self._spec.dilation)
        self.padding: str | tuple[Any, ...] = (padding if isinstance(padding, str)
                                               else _padding_attribute(self._spec.padding))
        self.output_padding, self.groups, self.padding_mode = self._spec.output_padding, groups, padding_mode
        self._input: np.ndarray | None = None
        self._create_parameters(bias)

    def _create_parameters(self, bias: bool) -> None:
        shape = weight_shape(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.transposed)
        self.weight = Parameter(np.empty(shape, self._dtype))
        self.bias = Parameter(np.empty(self.out_channels, self._dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight and bias again, with PyTorch's initialisation.

        weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight.shape[1] *
        prod(kernel_size) (``kaiming_uniform_`` with a = sqrt(5)), from npconv's generator
        (``npconv.manual_seed`` seeds it).  A complex module draws its real and imaginary parts
        independently from that same U(-bound, bound), as torch's ``uniform_`` fills a complex
        tensor (its real view), with the same real fan_in.
        """
        fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight[...] = _uniform(bound, self.weight)
        if self.bias is not None:
            self.bias[...] = _uniform(bound, self.bias)

    @property
    def spec(self) -> ConvSpec:
        """The module's validated :class:`npconv.spec.ConvSpec` (read-only)."""
        return self._spec

    # ---- forward / backward --------------------------------------------------------
    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """Convolve ``input`` with the module's weight and add its bias.

        Parameters
        ----------
        input : array_like or dask.array.Array
            ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, real or complex.
            A Dask array gives a lazy Dask array (:func:`npconv.dask.conv`; inference only).

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(N, C_out, *out_spatial)`` (unbatched: without N).

        Raises
        ------
        ValueError
            An input whose rank, channels or size the module cannot take; the message gives
            the rule and the numbers.
        """
        return self._run(self._spec, input)

    def _run(self, spec: ConvSpec, input: npt.ArrayLike) -> np.ndarray:
        if is_dask_array(input):
            return dask_forward(self, spec, input)
        self._dask_forward = False
        x = as_array(input, "input", spec.op)
        self._input, self._run_spec = x, spec
        return core.apply(spec, x, self.weight, self.bias)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last forward's input; adds ``weight.grad`` and ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input, in the last input's shape.

        Raises
        ------
        RuntimeError
            Called before any forward, or after a forward on a Dask array.
        ValueError
            ``grad_output`` not in the last output's shape.
        """
        if self._input is None:
            raise backward_refusal(self)
        spec, x = self._run_spec, self._input
        batched = check_input_rank(spec.op, spec.ndim, x.shape)
        gy = as_array(grad_output, "grad_output", spec.op)
        xb, gyb = (x, gy) if batched else (x[None], gy[None])
        compute, result = compute_dtypes(xb, gyb, self.weight)
        xb, gyb = xb.astype(compute, copy=False), gyb.astype(compute, copy=False)
        w = np.asarray(self.weight, dtype=compute)
        expected = (xb.shape[0], self.out_channels) + spec.out_spatial(xb.shape[2:])
        if gyb.shape != expected:
            raise ValueError(f"{spec.op}.backward: grad_output has shape {list(gy.shape)}, the output "
                             f"had shape {list(expected if batched else expected[1:])}")
        accumulate_grad(self.weight, _real_if(self.weight, grad.weight_grad(spec, xb, gyb, self.kernel_size)))
        accumulate_grad(self.bias, _real_if(self.bias, grad.bias_grad(gyb)))
        gx = _real_if(x, grad.input_grad(spec, xb.shape[2:], w, gyb))  # real x: real dL/dx
        gx = gx.astype(result if np.iscomplexobj(x) else real_dtype(result), copy=False)
        return gx if batched else gx[0]

    def _repr_html_(self) -> str:
        """Jupyter: the layer's spec as a table, with its channels and parameter count."""
        params = sum(int(np.size(p)) for p in (self.weight, self.bias) if p is not None)
        extra = (f"<tr><th style='text-align:left'>channels</th><td style='text-align:left'>"
                 f"{self.in_channels} &rarr; {self.out_channels}, {params:,} parameters</td></tr>")
        return self._spec._repr_html_().replace("<table>", "<table>" + extra, 1)

    def extra_repr(self) -> str:
        """PyTorch's repr fields: channels, kernel and stride, then the settings not at their default.

        Returns
        -------
        str
            For example ``'2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)'``.
        """
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str) or any(_flatten(self.padding)):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None and not self.__dict__.get("_wants_bias", False):
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


def _uniform(bound: float, like: np.ndarray) -> np.ndarray:
    """U(-bound, bound) in ``like``'s shape; complex: its real view's (re, im parts), as torch's uniform_."""
    draws = generator().uniform(-bound, bound, like.shape + (2,) * np.iscomplexobj(like))  # complex: (..., re/im)
    return draws if draws.ndim == like.ndim else draws[..., 0] + 1j * draws[..., 1]


def _real_if(operand: np.ndarray | None, gradient: np.ndarray) -> np.ndarray:
    """A real operand's gradient is the complex one's real part: torch autograd's dL/dRe(z) + i dL/dIm(z)."""
    real = operand is not None and not np.iscomplexobj(operand) and np.iscomplexobj(gradient)
    return gradient.real if real else gradient


def _padding_attribute(pairs: tuple[tuple[int, int], ...]) -> tuple[Any, ...]:
    """(p, p) pairs shown as PyTorch shows them (a tuple of ints); uneven pairs kept."""
    return tuple(lo for lo, _ in pairs) if all(lo == hi for lo, hi in pairs) else pairs


def _flatten(padding: tuple[Any, ...]) -> list[int]:
    return [v for p in padding for v in (p if isinstance(p, tuple) else (p,))]


class _ConvTransposeNd(ConvNd):
    transposed = True

    def forward(self, input: npt.ArrayLike, output_size: Sequence[int] | None = None) -> np.ndarray:
        """Transposed convolution of ``input``, optionally to a chosen output size.

        Parameters
        ----------
        input : array_like or dask.array.Array
            ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; a Dask array gives a
            lazy Dask array (inference only), as :meth:`ConvNd.forward`.
        output_size : sequence of int, optional
            The output's spatial size (or its full shape): picks output_padding within
            [min, min + stride - 1] per dim, as PyTorch does.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(N, C_out, *out_spatial)`` (unbatched: without N).

        Raises
        ------
        ValueError
            An ``output_size`` of the wrong length or outside the reachable range (the message
            gives the range and its rule), or an input the module cannot take.
        """
        if output_size is None:
            return self._run(self._spec, input)
        x = module_input(input, self._spec.op)
        padding = self._output_padding(x, output_size)
        return self._run(dataclasses.replace(self._spec, output_padding=padding), x)

    def _output_padding(self, x: np.ndarray, output_size: Sequence[int]) -> tuple[int, ...]:
        n = self._n
        batched = check_input_rank(self._spec.op, n, x.shape)
        non_spatial = 2 if batched else 1
        size = tuple(int(v) for v in output_size)
        if len(size) == n + non_spatial:
            size = size[non_spatial:]
        if len(size) != n:
            raise ValueError(f"ConvTranspose{n}D: for {x.ndim}D input, output_size must have {n} or "
                             f"{n + non_spatial} elements (got {len(size)})")
        in_spatial = x.shape[non_spatial:]
        ranges = self._spec.transposed_out_range(in_spatial)
        low, high = [r[0] for r in ranges], [r[1] for r in ranges]
        if any(not lo <= s <= hi for s, lo, hi in zip(size, low, high)):
            raise ValueError(f"requested an output size of {size}, but valid sizes range from {low} to "
                             f"{high} (for an input of {tuple(in_spatial)}); rule: min = (in - 1) * stride "
                             f"- 2 * padding + dilation * (kernel_size - 1) + 1, max = min + stride - 1")
        return tuple(s - lo for s, lo in zip(size, low))


class _Conv(ConvNd):
    """PyTorch's Conv{1,2,3}d constructor order."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] = 1, padding: int | str | tuple[int, ...] = 0,
                 dilation: int | tuple[int, ...] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)


class _ConvTranspose(_ConvTransposeNd):
    """PyTorch's ConvTranspose{1,2,3}d constructor order."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] = 1, padding: int | tuple[int, ...] = 0,
                 output_padding: int | tuple[int, ...] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, ...] = 1, padding_mode: str = "zeros", device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)


class Conv1d(_Conv):
    __doc__ = conv_doc(1, False)
    _n = 1


class Conv2d(_Conv):
    __doc__ = conv_doc(2, False)
    _n = 2


class Conv3d(_Conv):
    __doc__ = conv_doc(3, False)
    _n = 3


class ConvTranspose1d(_ConvTranspose):
    __doc__ = conv_doc(1, True)
    _n = 1


class ConvTranspose2d(_ConvTranspose):
    __doc__ = conv_doc(2, True)
    _n = 2


class ConvTranspose3d(_ConvTranspose):
    __doc__ = conv_doc(3, True)
    _n = 3


class _LazyMixin(ConvNd):
    """in_channels comes from the first input (dim 1 batched, dim 0 unbatched); the module then
    becomes the plain class, as PyTorch's lazy modules do."""

    cls_to_become: type[ConvNd] = ConvNd

    def _create_parameters(self, bias: bool) -> None:
        if self.in_channels == 0:  # not yet known: parameters wait for the first input
            self._parameters["weight"] = self._parameters["bias"] = None
            object.__setattr__(self, "_wants_bias", bias)
            return
        super()._create_parameters(bias)

    def forward(self, input: npt.ArrayLike, *args: Any, **kwargs: Any) -> np.ndarray:
        """Infer ``in_channels`` from ``input``, create the parameters, become the plain class
        and run its forward (same arguments and result).

        Raises
        ------
        ValueError
            An input whose channels ``groups`` does not divide, or of the wrong rank.
        """
        x = module_input(input, type(self).__name__)
        batched = check_input_rank(type(self).__name__, self._n, x.shape)
        self.in_channels = x.shape[1] if batched else x.shape[0]
        if self.in_channels % self.groups:
            raise ValueError(f"{type(self).__name__}: in_channels must be divisible by groups: the input "
                             f"has {self.in_channels} channels, groups={self.groups}")
        object.__setattr__(self, "__class__", self.cls_to_become)  # become the plain class
        self._create_parameters(self._wants_bias)
        return self.forward(x, *args, **kwargs)


class _LazyConv(_LazyMixin):
    def __init__(self, out_channels: int, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding: int | str | tuple[int, ...] = 0, dilation: int | tuple[int, ...] = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        ConvNd.__init__(self, 0, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                        0, device, dtype)


class _LazyConvTranspose(_LazyMixin):
    def __init__(self, out_channels: int, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding: int | tuple[int, ...] = 0, output_padding: int | tuple[int, ...] = 0, groups: int = 1,
                 bias: bool = True, dilation: int | tuple[int, ...] = 1, padding_mode: str = "zeros",
                 device: str | None = None, dtype: npt.DTypeLike | None = None) -> None:
        ConvNd.__init__(self, 0, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                        output_padding, device, dtype)


class LazyConv1d(_LazyConv, Conv1d):
    __doc__ = lazy_doc(Conv1d)
    cls_to_become = Conv1d


class LazyConv2d(_LazyConv, Conv2d):
    __doc__ = lazy_doc(Conv2d)
    cls_to_become = Conv2d


class LazyConv3d(_LazyConv, Conv3d):
    __doc__ = lazy_doc(Conv3d)
    cls_to_become = Conv3d


class LazyConvTranspose1d(_LazyConvTranspose, ConvTranspose1d):
    __doc__ = lazy_doc(ConvTranspose1d)
    cls_to_become = ConvTranspose1d


class LazyConvTranspose2d(_LazyConvTranspose, ConvTranspose2d):
    __doc__ = lazy_doc(ConvTranspose2d)
    cls_to_become = ConvTranspose2d


class LazyConvTranspose3d(_LazyConvTranspose, ConvTranspose3d):
    __doc__ = lazy_doc(ConvTranspose3d)
    cls_to_become = ConvTranspose3d
