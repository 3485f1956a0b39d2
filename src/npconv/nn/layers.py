"""The companions a CNN needs, in the same style: forward, and backward that returns the
input gradient and adds parameter gradients.  Pooling (:mod:`npconv.nn.pooling`, imported
here too) uses the convolution's window gathering (im2col) and its adjoint (col2im)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..arrays import as_real_array
from ..random import generator
from .activation import masked_gradient
from .conv import check_module_dtype
from .conv_dask import is_dask_array
from .module import Module, Parameter, accumulate_grad
from .pooling import AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d, PoolNd

__all__ = ["ReLU", "Flatten", "Linear", "Dropout", "MaxPool1d", "MaxPool2d", "MaxPool3d",
           "AvgPool1d", "AvgPool2d", "AvgPool3d"]  # PoolNd: also importable from here


class ReLU(Module):
    """max(x, 0) elementwise, as ``torch.nn.ReLU``.

    Parameters
    ----------
    inplace : bool, default False
        Write the result into the input array (which must then be a float ndarray).

    Examples
    --------
    >>> import numpy as np
    >>> relu = ReLU()
    >>> relu(np.array([-1.0, 2.0])), relu.backward(np.array([5.0, 5.0]))
    (array([0., 2.]), array([0., 5.]))
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """max(input, 0).

        Parameters
        ----------
        input : array_like
            Any shape.

        Returns
        -------
        numpy.ndarray
            The same shape (the input itself when ``inplace``).

        Raises
        ------
        TypeError
            A complex input (complex numbers have no order; torch's ReLU refuses them too).
        """
        self._lazy = is_dask_array(input)
        x: np.ndarray = input if self._lazy else np.asarray(input)  # type: ignore[assignment]  # dask.Array
        if x.dtype.kind == "c":  # the dtype policy's words for it
            as_real_array(np.empty(0, x.dtype), "input", "ReLU", why="complex numbers have no order "
                          "(torch's ReLU refuses them: clamp is not supported for complex types)")
        if self._lazy:  # inference on a Dask array: lazy, nothing kept for a backward
            return np.maximum(x, 0)
        self._mask = x > 0
        return np.maximum(x, 0, out=x if self.inplace else None)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` where the last input was positive, 0 elsewhere.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.

        Raises
        ------
        RuntimeError
            The last forward was given a Dask array (inference only).
        """
        if getattr(self, "_lazy", False):
            raise RuntimeError("ReLU.backward: the last forward was given a Dask array, which is inference only; "
                               "run the forward on a NumPy array to train")
        return masked_gradient(np.asarray(grad_output), self._mask)

    def extra_repr(self) -> str:
        """``'inplace=True'`` when set, else empty (as PyTorch shows it)."""
        return "inplace=True" if self.inplace else ""


class Flatten(Module):
    """Dims ``start_dim`` to ``end_dim`` merged into one, as ``torch.nn.Flatten``.

    Parameters
    ----------
    start_dim : int, default 1
        The first dim merged (the batch dim 0 is kept by default).
    end_dim : int, default -1
        The last dim merged (negative counts from the end).

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``input`` reshaped with dims start_dim..end_dim merged.

        Parameters
        ----------
        input : array_like
            Any shape with at least ``start_dim + 1`` dims.

        Returns
        -------
        numpy.ndarray
            A view where possible.
        """
        x = np.asarray(input)
        self._shape = x.shape
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` in the last input's shape.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        return np.reshape(grad_output, self._shape)

    def extra_repr(self) -> str:
        """``'start_dim=1, end_dim=-1'``, as PyTorch shows it."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Linear(Module):
    """y = x @ W.T + b, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features : int
        Size of the input's last dim.
    out_features : int
        Size of the output's last dim.
    bias : bool, default True
        Add a learnable bias.
    device : {'cpu', None}, default None
        Accepted for PyTorch compatibility; npconv runs on the CPU.
    dtype : {numpy.float32, numpy.float64, None}, default None
        The parameters' dtype (float32 when None).

    Attributes
    ----------
    weight : Parameter
        ``(out_features, in_features)``, drawn from U(-b, b), b = 1 / sqrt(in_features)
        (PyTorch's initialisation).
    bias : Parameter or None
        ``(out_features,)``, from the same range; None when ``bias=False``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Linear(3, 2)
    >>> y = layer(np.ones((4, 3), np.float32))
    >>> y.shape, layer.backward(np.ones_like(y)).shape, layer.weight.grad.shape
    ((4, 2), (4, 3), (2, 3))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        super().__init__()
        dtype = check_module_dtype(dtype, device)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.bias = Parameter(np.empty(out_features, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight and bias again from U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
        self.weight[...] = generator().uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias[...] = generator().uniform(-bound, bound, self.bias.shape)

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """input @ weight.T + bias.

        Parameters
        ----------
        input : array_like
            ``(*, in_features)``, float32 or float64.

        Returns
        -------
        numpy.ndarray
            ``(*, out_features)``.
        """
        self._input = as_real_array(input, "input", "Linear", why="npconv's Linear takes real numbers only "
                                    "(torch's Linear takes complex; npconv's does not yet)")
        y = _rows(self._input, self.in_features) @ np.asarray(self.weight).T  # one GEMM, not one per row block
        if self.bias is not None:
            y += self.bias
        return y.reshape(self._input.shape[:-1] + (self.out_features,))

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input; adds ``weight.grad`` and ``bias.grad``.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, ``(*, out_features)``.

        Returns
        -------
        numpy.ndarray
            d loss / d input, ``(*, in_features)``.
        """
        gy = np.asarray(grad_output)
        flat_x = _rows(self._input, self.in_features)
        flat_gy = _rows(gy, self.out_features)
        accumulate_grad(self.weight, flat_gy.T @ flat_x)
        accumulate_grad(self.bias, flat_gy.sum(axis=0))
        return (flat_gy @ np.asarray(self.weight)).reshape(gy.shape[:-1] + (self.in_features,))

    def extra_repr(self) -> str:
        """``'in_features=3, out_features=2, bias=True'``, as PyTorch shows it."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _rows(array: np.ndarray, features: int) -> np.ndarray:
    """``(*, features)`` as a 2-D ``(rows, features)`` matrix for one GEMM (a view when the rows lie
    evenly in memory, as a channels-last activation permuted to (N, H, W, C) does)."""
    return array.reshape(-1, features) if array.ndim != 2 else array


class Dropout(Module):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p).

    As ``torch.nn.Dropout``; in evaluation mode (:meth:`Module.eval`) it passes its input
    through.  The mask is drawn from npconv's generator (``npconv.manual_seed``).

    Parameters
    ----------
    p : float, default 0.5
        Probability of zeroing an element, in [0, 1].
    inplace : bool, default False
        Accepted for PyTorch compatibility (shown in the repr); the result is a new array.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> drop = Dropout(0.5)
    >>> y = drop(np.ones(1000))
    >>> sorted(set(y.tolist())), drop.eval()(np.ones(3))
    ([0.0, 2.0], array([1., 1., 1.]))
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """``input`` with a random mask applied (training) or unchanged (evaluation, p = 0).

        Parameters
        ----------
        input : array_like
            Any shape.

        Returns
        -------
        numpy.ndarray
            The same shape and dtype.
        """
        x = np.asarray(input)
        if not self.training or self.p == 0:
            self._scale = None
            return x
        keep = generator().random(x.shape) >= self.p
        self._scale = keep / (1 - self.p) if self.p < 1 else np.zeros(x.shape)
        return (x * self._scale).astype(x.dtype, copy=False)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """``grad_output`` times the last forward's mask and scale.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        gy = np.asarray(grad_output)
        return gy if self._scale is None else (gy * self._scale).astype(gy.dtype, copy=False)

    def extra_repr(self) -> str:
        """``'p=0.5, inplace=False'``, as PyTorch shows it."""
        return f"p={self.p}, inplace={self.inplace}"
