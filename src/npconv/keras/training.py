"""What Keras's layers add for training: per-weight initializer, regularizer and constraint,
the activity regularizer, and ``losses``.

Each layer kind declares its weights as a table of :class:`WeightOptions` (Keras's weight
order, the bias last); the constructor arguments named there become the layer's attributes,
exactly as Keras names them.

>>> import numpy as np, npconv.keras as K
>>> layer = K.Conv1D(2, 3, kernel_regularizer="l2", bias_initializer="ones")
>>> [option.regularizer for option in layer.weight_options], layer.bias_initializer.get_config()
(['kernel_regularizer', 'bias_regularizer'], {})
>>> _ = layer(np.ones((1, 5, 1), np.float32)); len(layer.losses)
1
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn.module import Parameter, accumulate_grad
from . import activations, constraints, initializers, regularizers


@dataclass(frozen=True)
class WeightOptions:
    """One Keras weight and the names of the constructor arguments (and attributes) that set
    it up.

    Attributes
    ----------
    weight : str
        The weight's attribute, and its name in Keras's weight list (``'kernel'``).
    initializer, regularizer, constraint : str
        The constructor arguments (``'kernel_initializer'``, ...).
    """

    weight: str  # the weight's attribute, and its name in Keras's weight list
    initializer: str
    regularizer: str
    constraint: str


KERNEL = WeightOptions("kernel", "kernel_initializer", "kernel_regularizer", "kernel_constraint")
BIAS = WeightOptions("bias", "bias_initializer", "bias_regularizer", "bias_constraint")
# DepthwiseConv keeps its one kernel as `kernel` but names its options `depthwise_*`
DEPTHWISE_KERNEL = WeightOptions("kernel", "depthwise_initializer", "depthwise_regularizer", "depthwise_constraint")
SEPARABLE_DEPTHWISE = WeightOptions("depthwise_kernel", "depthwise_initializer", "depthwise_regularizer",
                                    "depthwise_constraint")
SEPARABLE_POINTWISE = WeightOptions("pointwise_kernel", "pointwise_initializer", "pointwise_regularizer",
                                    "pointwise_constraint")


class TrainingHooks:
    """Regularizers, constraints and losses for a layer whose class sets ``weight_options``."""

    weight_options: tuple[WeightOptions, ...] = (KERNEL, BIAS)
    # set by the layer (npconv.keras.base.KerasConv)
    trainable: bool
    activity_regularizer: Any
    _activity_losses: list[float]
    _parameters: OrderedDict[str, Parameter | None]

    def _take_weight_options(self, arguments: Mapping[str, Any]) -> None:
        """Each weight's initializer, regularizer and constraint from the constructor's arguments."""
        for option in self.weight_options:
            setattr(self, option.initializer, initializers.get(arguments[option.initializer]))
            setattr(self, option.regularizer, regularizers.get(arguments[option.regularizer]))
            setattr(self, option.constraint, constraints.get(arguments[option.constraint]))

    def _option_serializers(self) -> dict[str, Callable[[Any], Any]]:
        """Config key -> Keras's serialize for every object-valued constructor argument."""
        serializers: dict[str, Callable[[Any], Any]] = {"activation": activations.serialize,
                                                        "activity_regularizer": regularizers.serialize}
        for option in self.weight_options:
            serializers.update({option.initializer: initializers.serialize,
                                option.regularizer: regularizers.serialize,
                                option.constraint: constraints.serialize})
        return serializers

    # ---- the activity penalty, per call -------------------------------------------------
    def _record_activity_penalty(self, out: np.ndarray) -> None:
        """Keras's activity loss of this call: the penalty of the output over its batch size."""
        self._activity_losses = [] if self.activity_regularizer is None else \
            [regularizers.penalty(self.activity_regularizer, out) / out.shape[0]]

    def _with_activity_penalty_grad(self, grad_output: np.ndarray, out: np.ndarray) -> np.ndarray:
        """grad_output plus the gradient of the activity penalty (when the layer has one)."""
        if self.activity_regularizer is None:
            return grad_output
        return grad_output + regularizers.penalty_grad(self.activity_regularizer, out) / out.shape[0]

    # ---- the weight penalties -----------------------------------------------------------
    def _regularized_weights(self) -> Iterator[tuple[Any, Any]]:
        """(weight, its regularizer) for each trainable weight that has one, in Keras's order."""
        if not self.trainable:
            return
        for option in self.weight_options:
            regularizer = getattr(self, option.regularizer)
            if regularizer is not None and self._parameters.get(option.weight) is not None:
                yield self._parameters[option.weight], regularizer

    def _add_penalty_grads(self) -> None:
        for param, regularizer in self._regularized_weights():
            accumulate_grad(param, regularizers.penalty_grad(regularizer, np.asarray(param)))

    @property
    def losses(self) -> list[float]:
        """The activity penalty of the last call (divided by its batch size), then each trainable
        weight's penalty, as floats (Keras's order)."""
        penalties = [regularizers.penalty(reg, np.asarray(param)) for param, reg in self._regularized_weights()]
        return list(self._activity_losses) + penalties
