"""SGD and Adam with PyTorch's update rules (same hyper-parameters, same arithmetic order).

Complex parameters (npconv.nn's complex conv modules) are updated as torch updates them: SGD
in complex arithmetic, Adam on each entry's real and imaginary parts as two reals."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, cast

import numpy as np

if TYPE_CHECKING:
    from .nn.module import Parameter


class Optimizer:
    """The base of :class:`SGD` and :class:`Adam`: parameters, hyper-parameters, per-parameter state.

    Parameters
    ----------
    params : iterable of Parameter
        The arrays to update in place (``module.parameters()``); each carries ``.grad``.
    defaults : dict
        The hyper-parameters.

    Raises
    ------
    ValueError
        An empty parameter list.
    """

    def __init__(self, params: Iterable[Parameter], defaults: dict[str, Any]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults = defaults
        self.state: list[dict[str, Any]] = [dict() for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``: None (default) or zeros in place."""
        for param in self.params:
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def step(self) -> None:
        """Update every parameter that has a gradient, then apply its ``constraint`` if any."""
        for param, state in zip(self.params, self.state):
            if param.grad is not None:
                self._update(param, np.asarray(param.grad, dtype=param.dtype), state)
                apply_constraint(param)

    def _update(self, param: Parameter, g: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError


def apply_constraint(param: np.ndarray) -> None:
    """Project a parameter with its ``constraint`` (set by npconv.keras layers), as Keras's
    optimizers do after each update; parameters without one are left alone."""
    constraint = getattr(param, "constraint", None)
    if constraint is not None:
        param[...] = np.asarray(constraint(np.asarray(param)), dtype=param.dtype)


def real_view(array: np.ndarray) -> np.ndarray:
    """A complex array's (re, im) pairs, ``(*shape, 2)``, sharing its memory (torch's view_as_real)."""
    return array[..., None].view(array.real.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's update rule (``torch.optim.SGD``).

    ``p -= lr * g``, with momentum buffer ``b = momentum * b + (1 - dampening) * g`` (b = g at
    first), optional Nesterov (``g + momentum * b``) and weight decay (``g + weight_decay * p``).

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update.
    lr : float, default 1e-3
    momentum, dampening, weight_decay : float, default 0.0
    nesterov, maximize : bool, default False

    Raises
    ------
    ValueError
        A negative lr, momentum or weight_decay; Nesterov without momentum or with dampening;
        an empty parameter list.

    Examples
    --------
    >>> from npconv.nn import Parameter
    >>> p = Parameter(np.array([1.0, 2.0]))
    >>> p.grad = np.array([0.5, -1.0])
    >>> SGD([p], lr=0.1).step()
    >>> p
    Parameter([0.95, 2.1 ])
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"Invalid SGD hyper-parameter: lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _update(self, param: Parameter, g: np.ndarray, state: dict[str, Any]) -> None:
        h = self.defaults
        g = -g if h["maximize"] else g
        if h["weight_decay"]:
            g = g + h["weight_decay"] * param
        if h["momentum"]:
            buf = state.get("momentum_buffer")
            buf = g.copy() if buf is None else h["momentum"] * buf + (1 - h["dampening"]) * g
            state["momentum_buffer"] = buf
            g = g + h["momentum"] * buf if h["nesterov"] else buf
        param -= h["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980) as ``torch.optim.Adam`` computes it.

    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; amsgrad keeps the running
    max of v; weight decay adds ``weight_decay * p`` to the gradient (L2, not AdamW's).

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
    weight_decay : float, default 0.0
    amsgrad, maximize : bool, default False

    Raises
    ------
    ValueError
        A negative lr or eps, a beta outside [0, 1), an empty parameter list.

    Examples
    --------
    >>> from npconv.nn import Parameter
    >>> p = Parameter(np.array([1.0, 2.0]))
    >>> p.grad = np.array([0.5, -1.0])
    >>> Adam([p], lr=0.1).step()  # the first step moves each entry by lr against its gradient's sign
    >>> p
    Parameter([0.9, 2.1])
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        if lr < 0 or eps < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Invalid Adam hyper-parameter: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, param: Parameter, g: np.ndarray, state: dict[str, Any]) -> None:
        if np.iscomplexobj(param):  # torch's Adam: each complex entry as its (re, im) pair
            return self._update(cast("Parameter", real_view(param)), real_view(g), state)
        h = self.defaults
        (b1, b2), eps = h["betas"], h["eps"]
        g = -g if h["maximize"] else g
        if h["weight_decay"]:
            g = g + h["weight_decay"] * param
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(g), exp_avg_sq=np.zeros_like(g))
            if h["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(g)
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - b1) * (g - m)  # PyTorch's lerp form
        v *= b2
        v += (1 - b2) * g * g
        if h["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        bias1, bias2 = 1 - b1 ** state["step"], 1 - b2 ** state["step"]
        denom = np.sqrt(v) / math.sqrt(bias2) + eps
        param -= (h["lr"] / bias1) * m / denom
