"""BatchNorm1d, BatchNorm2d and BatchNorm3d as ``torch.nn``'s, with an explicit backward.

Statistics are summed in float64 whatever the input's dtype; outputs and gradients come back
in the input's dtype and memory layout (reductions name their axes, so a channels-last input
stays channels-last).  The helpers here are shared with :mod:`npconv.nn.norm`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import compiled
from ..arrays import as_real_array
from .conv import check_module_dtype
from .module import Module, Parameter, accumulate_grad

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]

Axes = tuple[int, ...]
REAL_ONLY = "npconv's normalisation layers take real numbers only"


def check_count(value: int, name: str, op: str) -> None:
    """Refuse a size argument that is not a non-negative int (``num_features=-1``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{op}: {name} must be a non-negative integer, got {value!r}")


def normalize(x: np.ndarray, axes: Axes, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - mean) / sqrt(var + eps)`` over ``axes``, in x's dtype and layout, with the float64
    mean and biased variance (keepdims)."""
    mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)
    centered = np.subtract(x, mean, dtype=np.float64)
    var = np.square(centered).mean(axis=axes, keepdims=True)
    xhat = np.multiply(centered, 1.0 / np.sqrt(var + eps), out=centered)
    return xhat.astype(x.dtype, copy=False), mean, var


def input_grad(g: np.ndarray, xhat: np.ndarray, scale: np.ndarray, mean_g: np.ndarray,
               mean_gx: np.ndarray) -> np.ndarray:
    """``scale * (g - mean(g) - xhat * mean(g * xhat))``: the gradient through a normalisation
    over batch statistics, with the (float64, keepdims) coefficients cast to g's dtype."""
    dtype = g.dtype
    return g * scale.astype(dtype) - (scale * mean_g).astype(dtype) - xhat * (scale * mean_gx).astype(dtype)


def verify_batch_size(size: list[int], torch_size: bool = True) -> None:
    """PyTorch's refusal of a normalisation over a single value (``F._verify_batch_size``); the
    size is shown as torch shows it (``torch.Size([1, 3])``, or a list for GroupNorm)."""
    if size[0] * int(np.prod(size[2:], dtype=np.int64)) == 1:
        shown = f"torch.Size({size})" if torch_size else str(size)
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {shown}")


def _compiled(x: np.ndarray) -> bool:
    """Whether the compiled batch-statistics kernels take ``x``: Numba present, a C-contiguous
    float32/float64 map of 4,096 elements or more (channels-last maps keep the NumPy path)."""
    return (compiled.available() and x.dtype in (np.float32, np.float64) and x.size >= 4096
            and x.flags.c_contiguous and x.ndim >= 2)


class _BatchNorm(Module):
    """The N-d batch normalisation behind BatchNorm1d/2d/3d (``_ranks``: the input ranks taken)."""

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: str | None = None, dtype: npt.DTypeLike | None = None,
                 *, bias: bool = True) -> None:
        super().__init__()
        check_count(num_features, "num_features", type(self).__name__)
        dtype = check_module_dtype(dtype, device)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine and bias else None
        tracked = track_running_stats
        self.register_buffer("running_mean", np.zeros(num_features, dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(num_features, dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch counted (when stats are tracked)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        """:meth:`reset_running_stats`, weight 1 and bias 0."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight[...] = 1
        if self.bias is not None:
            self.bias[...] = 0

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """Normalise each channel (dim 1) by batch statistics (training) or running ones (eval).

        Parameters
        ----------
        input : array_like
            ``(N, C, *)`` of the rank the class takes; any strides (the layout is kept).

        Returns
        -------
        numpy.ndarray
            The same shape, dtype and memory layout.  In training mode with tracked stats the
            running mean and (unbiased) variance are updated and ``num_batches_tracked`` grows by 1.

        Raises
        ------
        ValueError
            A wrong rank or channel count, a single value per channel when batch statistics
            are used, or a non-positive ``eps`` in training (PyTorch's words).
        TypeError
            A complex or non-numeric input.
        """
        name = type(self).__name__
        x = as_real_array(input, "input", name, why=REAL_ONLY)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        self._check_input(x, use_batch)
        self._axes: Axes = (0,) + tuple(range(2, x.ndim))
        if use_batch and _compiled(x):
            return self._compiled_batch_forward(x)
        if use_batch:
            xhat, mean, var = normalize(x, self._axes, self.eps)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, x.size // max(x.shape[1], 1))
        else:
            mean = self._per_channel(np.asarray(self.running_mean, np.float64), x.ndim)
            var = self._per_channel(np.asarray(self.running_var, np.float64), x.ndim)
        invstd = 1.0 / np.sqrt(var + self.eps)
        if not use_batch:
            xhat = (x - mean.astype(x.dtype)) * invstd.astype(x.dtype)
        self._xhat, self._invstd, self._batch_stats = xhat, invstd, use_batch
        return self._affine(xhat)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input; adds ``weight.grad`` and ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input: through the batch statistics when the forward used them, through
            the fixed affine map of the running statistics otherwise.
        """
        xhat = self._xhat
        gy = np.asarray(grad_output, dtype=xhat.dtype)
        if self._batch_stats and _compiled(xhat) and gy.flags.c_contiguous:
            return self._compiled_batch_backward(gy)
        sum_gy = gy.sum(axis=self._axes, dtype=np.float64, keepdims=True)
        sum_gyx = np.multiply(gy, xhat).sum(axis=self._axes, dtype=np.float64, keepdims=True)
        accumulate_grad(self.weight, sum_gyx.reshape(-1))
        accumulate_grad(self.bias, sum_gy.reshape(-1))
        weight = 1.0 if self.weight is None else self._per_channel(np.asarray(self.weight, np.float64), gy.ndim)
        scale = weight * self._invstd
        if not self._batch_stats:
            return gy * scale.astype(gy.dtype)
        count = max(gy.size // max(gy.shape[1], 1), 1)
        return input_grad(gy, xhat, scale, sum_gy / count, sum_gyx / count)

    def _compiled_batch_forward(self, x: np.ndarray) -> np.ndarray:
        """Batch statistics, x-hat and the output in one compiled kernel (C-contiguous maps)."""
        channels = x.shape[1]
        weight = np.ones(channels, x.dtype) if self.weight is None else np.asarray(self.weight, x.dtype)
        bias = np.zeros(channels, x.dtype) if self.bias is None else np.asarray(self.bias, x.dtype)
        out, xhat = np.empty_like(x), np.empty_like(x)
        mean, var = np.empty(channels), np.empty(channels)
        view = (x.shape[0], channels, -1)
        compiled.kernels("norm_jit_kernels").batch_norm_train(
            x.reshape(view), weight, bias, float(self.eps), out.reshape(view), xhat.reshape(view), mean, var)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean, var, x.size // max(channels, 1))
        self._xhat, self._batch_stats = xhat, True
        self._invstd = self._per_channel(1.0 / np.sqrt(var + self.eps), x.ndim)
        return out

    def _compiled_batch_backward(self, gy: np.ndarray) -> np.ndarray:
        """The gradient through batch statistics in one compiled kernel; adds the parameters' grads."""
        channels = gy.shape[1]
        weight = np.ones(channels) if self.weight is None else np.asarray(self.weight, np.float64)
        scale = (weight * self._invstd.reshape(-1)).astype(gy.dtype)
        grad, sum_g, sum_gx = np.empty_like(gy), np.empty(channels), np.empty(channels)
        view = (gy.shape[0], channels, -1)
        compiled.kernels("norm_jit_kernels").batch_norm_backward(
            gy.reshape(view), self._xhat.reshape(view), scale, grad.reshape(view), sum_g, sum_gx)
        accumulate_grad(self.weight, sum_gx)
        accumulate_grad(self.bias, sum_g)
        return grad

    def extra_repr(self) -> str:
        """``'3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True'``, as PyTorch."""
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def _check_input(self, x: np.ndarray, use_batch: bool) -> None:
        if x.ndim not in self._ranks:
            wanted = " or ".join(f"{rank}D" for rank in self._ranks)
            raise ValueError(f"expected {wanted} input (got {x.ndim}D input)")
        channels = x.shape[1]
        uses_running = self.running_mean is not None and (not self.training or self.track_running_stats)
        if channels != self.num_features and (uses_running or self.weight is not None):
            which = "running_mean" if uses_running else "weight"
            raise ValueError(f"{which} should contain {channels} elements not {self.num_features}")
        if use_batch:
            verify_batch_size(list(x.shape))
        if use_batch and self.eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {self.eps}")
        if self.eps < 0.0:
            raise ValueError(f"batch_norm eps must be non-negative, but got {self.eps}")

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var.reshape(-1) * (count / (count - 1))
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean.reshape(-1)
        self.running_var[...] = (1 - factor) * self.running_var + factor * unbiased

    def _affine(self, xhat: np.ndarray) -> np.ndarray:
        y = xhat
        if self.weight is not None:
            y = y * self._per_channel(np.asarray(self.weight, xhat.dtype), xhat.ndim)
        if self.bias is not None:
            y = y + self._per_channel(np.asarray(self.bias, xhat.dtype), xhat.ndim)
        return y if y is not xhat else xhat.copy()

    @staticmethod
    def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
        return values.reshape((1, -1) + (1,) * (ndim - 2))


_BN_DOC = """Batch normalisation over dim 1 of {shape} input, as ``torch.nn.{name}``.

    Parameters
    ----------
    num_features : int
        C, the number of channels.
    eps : float, default 1e-5
        Added to the variance before its square root.
    momentum : float or None, default 0.1
        Weight of the new batch in the running statistics; None for the cumulative average
        (1 / ``num_batches_tracked``).
    affine : bool, default True
        Learn a per-channel ``weight`` (ones) and ``bias`` (zeros).
    track_running_stats : bool, default True
        Keep the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
        ``num_batches_tracked`` (int64 0); when False they are None and batch statistics are
        used in evaluation too.
    device : {{'cpu', None}}, default None
        Accepted for PyTorch compatibility; npconv runs on the CPU.
    dtype : {{numpy.float32, numpy.float64, None}}, default None
        The parameters' and running statistics' dtype (float32 when None).
    bias : bool, default True (keyword only)
        Learn a bias (with ``affine``).

    Examples
    --------
    >>> import numpy as np
    >>> bn = {name}(2)
    >>> y = bn(np.arange({size}, dtype=np.float64).reshape({example}))
    >>> y.round(4)[:, 0].ravel(), bn.running_mean, int(bn.num_batches_tracked)
    {output}
    >>> bn.backward(np.ones_like(y)).shape, bn.bias.grad
    ({example}, array([{grad}, {grad}], dtype=float32))
    """


class BatchNorm1d(_BatchNorm):
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    _ranks = (5,)


BatchNorm1d.__doc__ = _BN_DOC.format(
    name="BatchNorm1d", shape="``(N, C)`` or ``(N, C, L)``", size=4, example="(2, 2)", grad="2.",
    output="(array([-1.,  1.]), array([0.1, 0.2], dtype=float32), 1)")
BatchNorm2d.__doc__ = _BN_DOC.format(
    name="BatchNorm2d", shape="``(N, C, H, W)``", size=8, example="(2, 2, 1, 2)", grad="4.",
    output="(array([-1.2127, -0.7276,  0.7276,  1.2127]), array([0.25, 0.45], dtype=float32), 1)")
BatchNorm3d.__doc__ = _BN_DOC.format(
    name="BatchNorm3d", shape="``(N, C, D, H, W)``", size=8, example="(2, 2, 1, 1, 2)", grad="4.",
    output="(array([-1.2127, -0.7276,  0.7276,  1.2127]), array([0.25, 0.45], dtype=float32), 1)")
