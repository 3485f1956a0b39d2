"""Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss`` (class-index targets)."""

from __future__ import annotations

import numpy as np

from .module import Module


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class CrossEntropyLoss(Module):
    """loss_i = -w[t_i] * log softmax(x_i)[t_i], mixed with label smoothing; mean over the
    targets' weights (reduction='mean'), sum, or per element ('none')."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
        self.class_weight = None if weight is None else np.asarray(weight)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        logits, labels = self._flatten(np.asarray(input), np.asarray(target))
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

    def _flatten(self, logits, labels):
        """(N, C, *d) logits and (N, *d) targets -> (M, C) and (M,); (C,) with () unbatched."""
        self._target_shape, self._input_shape = labels.shape, logits.shape
        if logits.ndim == 1:
            return logits[None], labels.reshape(1)
        moved = np.moveaxis(logits, 1, -1)
        return moved.reshape(-1, logits.shape[1]), labels.reshape(-1)

    def backward(self, grad_output=1.0):
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
        return ""
