"""The companions a CNN needs, in the same style: forward, and backward that returns the
input gradient and adds parameter gradients.  Pooling uses the convolution's window
gathering (im2col) and its adjoint (col2im)."""

from __future__ import annotations

import math

import numpy as np

from ..arrays import as_real_array
from ..random import generator
from ..spec import check_input_rank, ntuple
from ..windows import col2im, im2col
from .conv import check_module_dtype
from .module import Module, Parameter, accumulate_grad

__all__ = ["ReLU", "Flatten", "Linear", "Dropout", "MaxPool1d", "MaxPool2d", "MaxPool3d",
           "AvgPool1d", "AvgPool2d", "AvgPool3d"]


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        x = np.asarray(input)
        self._mask = x > 0
        return np.maximum(x, 0, out=x if self.inplace else None)

    def backward(self, grad_output):
        return np.where(self._mask, grad_output, 0).astype(np.result_type(grad_output), copy=False)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        x = np.asarray(input)
        self._shape = x.shape
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, grad_output):
        return np.reshape(grad_output, self._shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Linear(Module):
    """y = x @ W.T + b; W (out_features, in_features), PyTorch's init U(+-1/sqrt(in_features))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        dtype = check_module_dtype(dtype, device)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.bias = Parameter(np.empty(out_features, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
        self.weight[...] = generator().uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias[...] = generator().uniform(-bound, bound, self.bias.shape)

    def forward(self, input):
        self._input = as_real_array(input, "input", "Linear")
        y = self._input @ np.asarray(self.weight).T
        return y if self.bias is None else y + self.bias

    def backward(self, grad_output):
        gy = np.asarray(grad_output)
        flat_x = self._input.reshape(-1, self.in_features)
        flat_gy = gy.reshape(-1, self.out_features)
        accumulate_grad(self.weight, flat_gy.T @ flat_x)
        accumulate_grad(self.bias, flat_gy.sum(axis=0))
        return gy @ np.asarray(self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Dropout(Module):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        x = np.asarray(input)
        if not self.training or self.p == 0:
            self._scale = None
            return x
        keep = generator().random(x.shape) >= self.p
        self._scale = keep / (1 - self.p) if self.p < 1 else np.zeros(x.shape)
        return (x * self._scale).astype(x.dtype, copy=False)

    def backward(self, grad_output):
        gy = np.asarray(grad_output)
        return gy if self._scale is None else (gy * self._scale).astype(gy.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class PoolNd(Module):
    """Window geometry shared by max and average pooling (N-d, one implementation)."""

    _n = 2
    _dilated = True

    def window_geometry(self, in_spatial):
        """(kernel, stride, dilation, (lo, hi) pads, output size) for inputs of ``in_spatial``,
        refused with PyTorch's words where the window does not fit (other faces read it here)."""
        n, name = self._n, type(self).__name__
        k = ntuple(self.kernel_size, n, "kernel_size", name)
        s = ntuple(self.stride, n, "stride", name)
        p = ntuple(self.padding, n, "padding", name)
        d = ntuple(getattr(self, "dilation", 1), n, "dilation", name)
        ek = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        for pp, kk, e in zip(p, k, ek):
            if pp > e // 2:
                raise ValueError(f"{name}: pad should be at most half of effective kernel size, but got "
                                 f"pad={pp}, kernel_size={kk} and dilation={e // kk if kk else 1} "
                                 f"(rule: padding <= (dilation * (kernel_size - 1) + 1) // 2 = {e // 2})")
        out = []
        for i, pp, e, ss in zip(in_spatial, p, ek, s):
            span = i + 2 * pp - e
            o = (-(-span // ss) if self.ceil_mode else span // ss) + 1
            if self.ceil_mode and (o - 1) * ss >= i + pp:  # the last window must start inside
                o -= 1
            if span < 0 or o < 1:
                raise ValueError(f"{name}: input spatial size {tuple(in_spatial)} is too small for kernel "
                                 f"{k} with padding {p} and dilation {d}")
            out.append(o)
        pads = tuple((pp, max(pp, (o - 1) * ss + e - i - pp)) for i, pp, e, ss, o in zip(in_spatial, p, ek, s, out))
        return k, s, d, pads, tuple(out)

    def _batched(self, input):
        x = as_real_array(input, "input", type(self).__name__)
        batched = check_input_rank(type(self).__name__, self._n, x.shape)
        return (x if batched else x[None]), batched


class _MaxPoolNd(PoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        if return_indices:
            raise ValueError(f"{type(self).__name__}: return_indices=True is not supported by npconv")
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode
        self.return_indices = return_indices

    def forward(self, input):
        x, batched = self._batched(input)
        k, s, d, pads, out = self.window_geometry(x.shape[2:])
        padded = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=-np.inf)
        cols = im2col(padded, k, s, d, ((0, 0),) * self._n, out)
        cols = cols.reshape(x.shape[:2] + (math.prod(k), math.prod(out)))
        self._argmax = np.argmax(cols, axis=2)[:, :, None]  # NaN wins, as in PyTorch
        self._saved = (x.shape, k, s, d, pads, out, batched)
        y = np.take_along_axis(cols, self._argmax, axis=2).reshape(x.shape[:2] + out)
        return y if batched else y[0]

    def backward(self, grad_output):
        shape, k, s, d, pads, out, batched = self._saved
        gy = np.asarray(grad_output)
        gy = (gy if batched else gy[None]).reshape(shape[:2] + (1, math.prod(out)))
        cols = np.zeros(shape[:2] + (math.prod(k), math.prod(out)), gy.dtype)
        np.put_along_axis(cols, self._argmax, gy, axis=2)
        gx = col2im(cols.reshape(shape[:2] + k + out), shape[2:], s, d, pads)
        return gx if batched else gx[0]

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class _AvgPoolNd(PoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        if self._n == 1:  # PyTorch's AvgPool1d keeps its sizes as 1-tuples (and shows them so)
            self.kernel_size, self.stride, self.padding = (
                ntuple(v, 1, name, "AvgPool1d") for v, name in
                ((self.kernel_size, "kernel_size"), (self.stride, "stride"), (self.padding, "padding")))

    def _divisor(self, in_spatial, k, s, pads, out):
        """Elements each window averages: PyTorch counts padding (if asked) but never the
        part of a ceil_mode window that hangs past the padded input."""
        if self.divisor_override:
            return float(self.divisor_override)
        p = ntuple(self.padding, self._n, "padding", type(self).__name__)
        if self.count_include_pad:
            ones = np.ones((1, 1) + tuple(i + 2 * pp for i, pp in zip(in_spatial, p)))
            window_pads = tuple((0, hi - pp) for pp, (_, hi) in zip(p, pads))
        else:
            ones, window_pads = np.ones((1, 1) + tuple(in_spatial)), pads
        counts = im2col(ones, k, s, (1,) * self._n, window_pads, out).reshape(math.prod(k), -1).sum(axis=0)
        return counts.reshape(out)

    def forward(self, input):
        x, batched = self._batched(input)
        k, s, d, pads, out = self.window_geometry(x.shape[2:])
        cols = im2col(x, k, s, d, pads, out)
        divisor = self._divisor(x.shape[2:], k, s, pads, out)
        self._saved = (x.shape, k, s, d, pads, out, batched, divisor)
        y = (cols.reshape(x.shape[:2] + (math.prod(k),) + out).sum(axis=2) / divisor).astype(x.dtype, copy=False)
        return y if batched else y[0]

    def backward(self, grad_output):
        shape, k, s, d, pads, out, batched, divisor = self._saved
        gy = np.asarray(grad_output)
        gy = (gy if batched else gy[None]) / divisor
        cols = np.broadcast_to(gy[:, :, None], shape[:2] + (math.prod(k),) + out).reshape(shape[:2] + k + out)
        gx = col2im(np.ascontiguousarray(cols), shape[2:], s, d, pads).astype(gy.dtype, copy=False)
        return gx if batched else gx[0]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _pool_class(base, n):
    prefix = "MaxPool" if base is _MaxPoolNd else "AvgPool"
    return type(f"{prefix}{n}d", (base,), {"_n": n, "__module__": __name__,
                                             "__doc__": f"``torch.nn.{prefix}{n}d`` with forward and backward."})


MaxPool1d, MaxPool2d, MaxPool3d = (_pool_class(_MaxPoolNd, n) for n in (1, 2, 3))
AvgPool1d, AvgPool2d, AvgPool3d = (_pool_class(_AvgPoolNd, n) for n in (1, 2, 3))
