"""torch.nn's Unfold and Fold: sliding blocks as columns, and columns summed back
(``npconv.functional.unfold`` / ``fold``, each the other's backward)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import functional
from ..spec import ntuple
from .module import Module

__all__ = ["Unfold", "Fold"]


class Unfold(Module):
    """Sliding blocks as columns, as ``torch.nn.Unfold`` (``functional.unfold``); 1-, 2- and 3-D.

    Input ``(N, C, *spatial)``; output ``(N, C * prod(kernel_size), L)`` with L the number of
    blocks (the product of a convolution's output sizes for the same settings).

    Parameters
    ----------
    kernel_size : int or tuple of int
        The block's size.
    dilation : int or tuple of int, default 1
        Spacing between a block's elements.
    padding : int or tuple of int, default 0
        Zeros added on both sides of each spatial dim.
    stride : int or tuple of int, default 1
        Step between blocks.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> m = nn.Unfold(kernel_size=2)
    >>> cols = m(np.ones((1, 3, 4, 5), np.float32))
    >>> cols.shape, m.backward(np.ones_like(cols)).shape
    ((1, 12, 12), (1, 3, 4, 5))
    """

    def __init__(self, kernel_size: int | tuple[int, ...], dilation: int | tuple[int, ...] = 1,
                 padding: int | tuple[int, ...] = 0, stride: int | tuple[int, ...] = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride
        self._input_shape: tuple[int, ...] | None = None

    def _params(self) -> dict[str, Any]:
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The blocks of ``input`` as columns.

        Parameters
        ----------
        input : array_like
            ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.

        Returns
        -------
        numpy.ndarray
            ``(N, C * prod(kernel_size), L)`` (unbatched: without N).

        Raises
        ------
        ValueError
            Settings or an input size that give no block; the message names the rule.
        """
        cols = functional.unfold(input, **self._params())
        self._input_shape = np.shape(input)
        return cols

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input: the columns summed back (``functional.fold``).

        Parameters
        ----------
        grad_output : array_like
            d loss / d columns, in the last output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input, in the last input's shape.

        Raises
        ------
        RuntimeError
            Called before any forward.
        """
        if self._input_shape is None:
            raise RuntimeError("Unfold.backward called before forward")
        n = functional.spatial_dims(*self._params().values())
        return functional.fold(grad_output, self._input_shape[-n:], **self._params())

    def extra_repr(self) -> str:
        """The four settings, as PyTorch shows them."""
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """Sum sliding blocks back into an array, as ``torch.nn.Fold`` (``functional.fold``); 1-, 2- and 3-D.

    The adjoint of :class:`Unfold`: input ``(N, C * prod(kernel_size), L)``, output
    ``(N, C, *output_size)``; where blocks overlap their values are added.

    Parameters
    ----------
    output_size : int or tuple of int
        The spatial size of the output.
    kernel_size : int or tuple of int
        The block's size.
    dilation : int or tuple of int, default 1
        Spacing between a block's elements.
    padding : int or tuple of int, default 0
        Zeros that were added on both sides (removed from the result).
    stride : int or tuple of int, default 1
        Step between blocks.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> m = nn.Fold(output_size=(3, 3), kernel_size=2)
    >>> m(np.ones((1, 4, 4)))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """

    def __init__(self, output_size: int | tuple[int, ...], kernel_size: int | tuple[int, ...],
                 dilation: int | tuple[int, ...] = 1, padding: int | tuple[int, ...] = 0,
                 stride: int | tuple[int, ...] = 1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: npt.ArrayLike) -> np.ndarray:
        """The columns of ``input`` summed into an array of ``output_size``.

        Parameters
        ----------
        input : array_like
            ``(N, C * prod(kernel_size), L)`` or unbatched ``(C * prod(kernel_size), L)``.

        Returns
        -------
        numpy.ndarray
            ``(N, C, *output_size)`` (unbatched: without N).

        Raises
        ------
        ValueError
            A column count that the settings and ``output_size`` do not give.
        """
        return functional.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def backward(self, grad_output: npt.ArrayLike) -> np.ndarray:
        """Gradient w.r.t. the last input: the output gradient's blocks (``functional.unfold``).

        Parameters
        ----------
        grad_output : array_like
            d loss / d output, ``(N, C, *output_size)``.

        Returns
        -------
        numpy.ndarray
            d loss / d input, ``(N, C * prod(kernel_size), L)``.
        """
        n = functional.spatial_dims(self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
        return functional.unfold(grad_output, ntuple(self.kernel_size, n, "kernel_size", "Fold"),
                                 self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        """The five settings, as PyTorch shows them."""
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
