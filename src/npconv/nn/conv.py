"""torch.nn's convolution modules: Conv1d/2d/3d, ConvTranspose1d/2d/3d, their Lazy forms,
Unfold and Fold.  One base class owns validation, parameters and the backward; the
classes only fix the number of spatial dims and the argument order."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import core, functional, grad
from ..arrays import as_real_array, compute_dtypes
from ..random import generator
from ..spec import ConvSpec, check_groups, check_input_rank, is_int, ntuple, weight_shape
from ..spec_errors import ConvRuleError, worded
from .module import Module, Parameter, accumulate_grad

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d", "Unfold", "Fold"]

DTYPES = (np.float32, np.float64)


def check_module_dtype(dtype, device) -> np.dtype:
    if device not in (None, "cpu"):
        raise ValueError(f"device={device!r}: npconv runs on the CPU only (device='cpu' or None)")
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.type not in DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _groups_refused(error) -> ConvRuleError:
    """torch.nn's constructors say a non-int groups is a ValueError, as a zero one is."""
    value = error.numbers.get("value", (error.numbers.get("values") or ("?",))[0])
    return ConvRuleError(f"{error.op}: groups must be a positive integer, got groups={value!r}", rule=error.rule,
                         param="groups", op=error.op, numbers=error.numbers, nearest="groups=1")


MODULE_WORDS = {"groups_type": _groups_refused, "positive": lambda e: _groups_refused(e) if e.param == "groups" else e}


class ConvNd(Module):
    """Shared by every convolution module; ``_n`` spatial dims, ``transposed`` or not.

    Other faces read a module's validated parameters through :attr:`spec`."""

    _n = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, output_padding=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        with worded(MODULE_WORDS):
            check_groups(name, groups)
        self._spec = ConvSpec.build(kernel_size, stride, padding, dilation, groups, padding_mode,
                                    self.transposed, output_padding, ndim=self._n, op=name)
        self._spec.check_channels(in_channels, out_channels)
        self._dtype = check_module_dtype(dtype, device)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = (self._spec.kernel_size, self._spec.stride,
                                                        self._spec.dilation)
        self.padding = padding if isinstance(padding, str) else _padding_attribute(self._spec.padding)
        self.output_padding, self.groups, self.padding_mode = self._spec.output_padding, groups, padding_mode
        self._input = None
        self._create_parameters(bias)

    def _create_parameters(self, bias: bool) -> None:
        shape = weight_shape(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.transposed)
        self.weight = Parameter(np.empty(shape, self._dtype))
        self.bias = Parameter(np.empty(self.out_channels, self._dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        fan_in = weight.shape[1] * prod(kernel_size) (kaiming_uniform with a=sqrt(5))."""
        fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight[...] = generator().uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias[...] = generator().uniform(-bound, bound, self.bias.shape)

    @property
    def spec(self) -> ConvSpec:
        """The module's validated :class:`npconv.spec.ConvSpec` (read-only)."""
        return self._spec

    # ---- forward / backward --------------------------------------------------------
    def forward(self, input):
        return self._run(self._spec, input)

    def _run(self, spec, input):
        x = as_real_array(input, "input", spec.op)
        self._input, self._run_spec = x, spec
        return core.apply(spec, x, self.weight, self.bias)

    def backward(self, grad_output):
        """Gradient w.r.t. the last forward's input; adds weight.grad and bias.grad."""
        if self._input is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        spec, x = self._run_spec, self._input
        batched = check_input_rank(spec.op, spec.ndim, x.shape)
        gy = as_real_array(grad_output, "grad_output", spec.op)
        xb, gyb = (x, gy) if batched else (x[None], gy[None])
        compute, result = compute_dtypes(xb, gyb, self.weight)
        xb, gyb = xb.astype(compute, copy=False), gyb.astype(compute, copy=False)
        w = np.asarray(self.weight, dtype=compute)
        expected = (xb.shape[0], self.out_channels) + spec.out_spatial(xb.shape[2:])
        if gyb.shape != expected:
            raise ValueError(f"{spec.op}.backward: grad_output has shape {list(gy.shape)}, the output "
                             f"had shape {list(expected if batched else expected[1:])}")
        accumulate_grad(self.weight, grad.weight_grad(spec, xb, gyb, self.kernel_size))
        accumulate_grad(self.bias, grad.bias_grad(gyb))
        gx = grad.input_grad(spec, xb.shape[2:], w, gyb).astype(result, copy=False)
        return gx if batched else gx[0]

    def _repr_html_(self) -> str:
        """Jupyter: the layer's spec as a table, with its channels and parameter count."""
        params = sum(int(np.size(p)) for p in (self.weight, self.bias) if p is not None)
        extra = (f"<tr><th style='text-align:left'>channels</th><td style='text-align:left'>"
                 f"{self.in_channels} &rarr; {self.out_channels}, {params:,} parameters</td></tr>")
        return self._spec._repr_html_().replace("<table>", "<table>" + extra, 1)

    def extra_repr(self) -> str:
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


def _padding_attribute(pairs):
    """(p, p) pairs shown as PyTorch shows them (a tuple of ints); uneven pairs kept."""
    return tuple(lo for lo, _ in pairs) if all(lo == hi for lo, hi in pairs) else pairs


def _flatten(padding):
    return [v for p in padding for v in (p if isinstance(p, tuple) else (p,))]


class _ConvTransposeNd(ConvNd):
    transposed = True

    def forward(self, input, output_size=None):
        """``output_size`` picks output_padding within [min, min + stride - 1] per dim."""
        if output_size is None:
            return self._run(self._spec, input)
        x = as_real_array(input, "input", self._spec.op)
        padding = self._output_padding(x, output_size)
        return self._run(dataclasses.replace(self._spec, output_padding=padding), x)

    def _output_padding(self, x, output_size) -> tuple[int, ...]:
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


def _conv_class(n: int, transposed: bool):
    base = _ConvTransposeNd if transposed else ConvNd
    name = f"ConvTranspose{n}d" if transposed else f"Conv{n}d"

    if transposed:
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                     groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
            base.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                          bias, padding_mode, output_padding, device, dtype)
    else:
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                     groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
            base.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                          bias, padding_mode, 0, device, dtype)
    weight = "(in_channels, out_channels/groups, *k)" if transposed else "(out_channels, in_channels/groups, *k)"
    doc = (f"``torch.nn.{name}`` on NumPy: same constructor, attributes, init and repr; weight {weight}.")
    return type(name, (base,), {"__init__": __init__, "__doc__": doc, "_n": n, "__module__": __name__})


Conv1d, Conv2d, Conv3d = (_conv_class(n, False) for n in (1, 2, 3))
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = (_conv_class(n, True) for n in (1, 2, 3))


class _LazyMixin:
    """in_channels comes from the first input (dim 1 batched, dim 0 unbatched); the module then
    becomes the plain class, as PyTorch's lazy modules do."""

    cls_to_become: type = None

    def _create_parameters(self, bias: bool) -> None:
        if self.in_channels == 0:  # not yet known: parameters wait for the first input
            self._parameters["weight"] = self._parameters["bias"] = None
            object.__setattr__(self, "_wants_bias", bias)
            return
        super()._create_parameters(bias)

    def forward(self, input, *args, **kwargs):
        x = as_real_array(input, "input", type(self).__name__)
        batched = check_input_rank(type(self).__name__, self._n, x.shape)
        self.in_channels = x.shape[1] if batched else x.shape[0]
        if self.in_channels % self.groups:
            raise ValueError(f"{type(self).__name__}: in_channels must be divisible by groups: the input "
                             f"has {self.in_channels} channels, groups={self.groups}")
        self.__class__ = self.cls_to_become
        self._create_parameters(self._wants_bias)
        return self.forward(x, *args, **kwargs)


def _lazy_class(plain):
    n, transposed = plain._n, plain.transposed

    if transposed:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                     bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
            plain.__init__(self, 0, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                           dilation, padding_mode, device, dtype)
    else:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                     padding_mode="zeros", device=None, dtype=None):
            plain.__init__(self, 0, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                           padding_mode, device, dtype)
    return type(f"Lazy{plain.__name__}", (_LazyMixin, plain),
                {"__init__": __init__, "cls_to_become": plain, "__module__": __name__, "_n": n,
                 "__doc__": f"``torch.nn.Lazy{plain.__name__}``: in_channels inferred from the first input."})


LazyConv1d, LazyConv2d, LazyConv3d = (_lazy_class(c) for c in (Conv1d, Conv2d, Conv3d))
LazyConvTranspose1d, LazyConvTranspose2d, LazyConvTranspose3d = (
    _lazy_class(c) for c in (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d))


class Unfold(Module):
    """Sliding blocks as columns (``functional.unfold``); 1-, 2- and 3-D."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride
        self._input_shape = None

    def _params(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def forward(self, input):
        cols = functional.unfold(input, **self._params())
        self._input_shape = np.shape(input)
        return cols

    def backward(self, grad_output):
        n = functional.spatial_dims(*self._params().values())
        return functional.fold(grad_output, self._input_shape[-n:], **self._params())

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """Sum sliding blocks back into an array (``functional.fold``); 1-, 2- and 3-D."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        return functional.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def backward(self, grad_output):
        n = functional.spatial_dims(self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
        return functional.unfold(grad_output, ntuple(self.kernel_size, n, "kernel_size", "Fold"),
                                 self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
