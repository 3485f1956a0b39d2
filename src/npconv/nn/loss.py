"""Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss`` (class-index targets)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..arrays import as_real_array
from .module import Module

__all__ = ["CrossEntropyLoss", "log_softmax"]


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(logits)) along ``axis``, computed stably (the maximum subtracted first).

    Parameters
    ----------
    logits : numpy.ndarray
        Unnormalised scores.
    axis : int, default -1
        The classes' axis.

    Returns
    -------
    numpy.ndarray
        Same shape; ``exp`` of it sums to 1 along ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> np.exp(log_softmax(np.array([0.0, np.log(3.0)])))
    array([0.25, 0.75])
    """
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class CrossEntropyLoss(Module):
    """Softmax cross-entropy with class-index targets, as ``torch.nn.CrossEntropyLoss``.

    loss_i = -w[t_i] * log softmax(x_i)[t_i], mixed with label smoothing eps as
    (1 - eps) * loss_i + eps / C * sum_c -w[c] * log softmax(x_i)[c]; the mean divides by the
    targets' summed weights.

    Parameters
    ----------
    weight : array_like, optional
        A weight per class, ``(C,)`` (default: all 1).
    ignore_index : int, default -100
        Targets equal to it add nothing to the loss or to the mean's denominator.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Weighted mean, sum, or the per-element losses in the target's shape.
    label_smoothing : float, default 0.0
        eps in [0, 1].

    Raises
    ------
    ValueError
        An unknown reduction or a label_smoothing outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> loss = CrossEntropyLoss()
    >>> value = loss(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([0, 1]))
    >>> round(float(value), 4), loss.backward().tolist()
    (0.6931, [[-0.25, 0.25], [0.25, -0.25]])
    """

    def __init__(self, weight: npt.ArrayLike | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
        self.class_weight = None if weight is None else np.asarray(weight)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input: npt.ArrayLike, target: npt.ArrayLike) -> Any:
        """The loss of ``input`` logits for the ``target`` class indices.

        Parameters
        ----------
        input : array_like
            Logits ``(N, C)``, ``(N, C, *d)`` or unbatched ``(C,)``.
        target : array_like
            Class indices ``(N,)``, ``(N, *d)`` or ``()``, in [0, C) or ``ignore_index``.

        Returns
        -------
        numpy.floating or numpy.ndarray
            A scalar, or the per-element losses in the target's shape (``reduction='none'``).

        Raises
        ------
        ValueError
            A target outside [0, C) that is not ``ignore_index``.
        """
        logits = as_real_array(input, "input", "CrossEntropyLoss",
                               why="PyTorch's log_softmax has no complex kernel (a loss must be real)")
        logits, labels = self._flatten(logits, np.asarray(target))
        n_classes = logits.shape[1]
        keep = labels != self.ignore_index
        safe = np.where(keep, labels, 0)
        if np.any((safe < 0) | (safe >= n_classes)):
            raise ValueError(f"CrossEntropyLoss: target values must be in [0, {n_classes}) or ignore_index")
        w = np.ones(n_classes, logits.dtype) if self.class_weight is None else self.class_weight.astype(logits.dtype)
        logp = log_softmax(logits, axis=1)
        sample_w = np.where(keep, w[safe], 0)
        nll = -sample_w * logp[np.arange(len(safe)), safe]
        smooth = -np.where(keep, (logp * w).sum(axis=1), 0)
        eps = self.label_smoothing
        losses = (1 - eps) * nll + eps / n_classes * smooth
        denominator = sample_w.sum() if self.reduction == "mean" else 1.0
        self._saved = (logp, safe, keep, w, sample_w, denominator)
        if self.reduction == "none":
            return losses.reshape(self._target_shape)
        return losses.sum() / denominator

    def _flatten(self, logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, C, *d) logits and (N, *d) targets -> (M, C) and (M,); (C,) with () unbatched."""
        self._target_shape, self._input_shape = labels.shape, logits.shape
        if logits.ndim == 1:
            return logits[None], labels.reshape(1)
        moved = np.moveaxis(logits, 1, -1)
        return moved.reshape(-1, logits.shape[1]), labels.reshape(-1)

    def backward(self, grad_output: npt.ArrayLike = 1.0) -> np.ndarray:
        """d loss / d logits of the last forward.

        Parameters
        ----------
        grad_output : array_like, default 1.0
            d final / d loss: a scalar, or the per-element gradients for ``reduction='none'``.

        Returns
        -------
        numpy.ndarray
            In the last input's shape.
        """
        logp, safe, keep, w, sample_w, denominator = self._saved
        p = np.exp(logp)
        onehot = np.zeros_like(p)
        onehot[np.arange(len(safe)), safe] = 1
        eps, n_classes = self.label_smoothing, logp.shape[1]
        grad_nll = sample_w[:, None] * (p - onehot)
        grad_smooth = np.where(keep[:, None], p * w.sum() - w, 0)
        grad = (1 - eps) * grad_nll + eps / n_classes * grad_smooth
        scale = np.asarray(grad_output, dtype=p.dtype)
        scale = scale.reshape(-1, 1) if self.reduction == "none" else scale / denominator
        grad = grad * scale
        if len(self._input_shape) == 1:
            return grad[0]
        shape = self._input_shape
        return np.moveaxis(grad.reshape((shape[0],) + shape[2:] + (shape[1],)), -1, 1)

    def extra_repr(self) -> str:
        """Empty, as PyTorch shows this loss."""
        return ""
