"""Inference fusion: fold each BatchNorm into the convolution before it, and run the activation
after a convolution in place on the convolution's fresh output.

:func:`fuse` returns a fused copy in evaluation mode (the model given is never modified):

* A ``BatchNorm{n}d`` with running statistics right after a ``Conv{n}d`` or
  ``ConvTranspose{n}d`` in the same container's run order (consecutive children of a
  :class:`~npconv.nn.Sequential`, or consecutive entries of a :class:`~npconv.nn.Residual`'s
  body or shortcut mapping) is folded into that convolution, computed in float64:
  ``w' = w * s`` per output channel and ``b' = (b - running_mean) * s + beta`` with
  ``s = gamma / sqrt(running_var + eps)``.  Its place is taken by an
  :class:`~npconv.nn.Identity`, so the other children keep their names.
* An elementwise activation (ReLU, ReLU6, SiLU, Hardswish, Hardsigmoid, Sigmoid, Tanh) right
  after a convolution (folded or not) makes a :class:`ConvActivation`: a two-module
  Sequential (children ``'0'``, the convolution, and ``'1'``, the activation, as
  ``torch.ao.nn.intrinsic.ConvReLU2d`` holds them) that applies the activation in place on
  the convolution's output, saving one full-size array and one pass.  The activation's place
  is taken by an Identity.  GELU is left as it is (its exact form needs a full-size temporary
  anyway).

Folding uses the running statistics, so the fused copy always computes the evaluation-mode
function, whatever mode the model is in (``torch.ao.quantization.fuse_modules`` refuses a
model in training mode instead).  A BatchNorm with ``track_running_stats=False`` (it
normalises by batch statistics in evaluation too), one after anything but a convolution of its
rank, or one after a convolution that is shared (the same module, weight or bias in more than
one place of the model) stays as it is.

The copy is for inference: a :class:`ConvActivation`'s backward raises RuntimeError (a folded
convolution on its own keeps the plain backward, the gradient of the fused function).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from .activation import Hardsigmoid, Hardswish, Identity, ReLU6, Sigmoid, SiLU, Tanh
from .containers import Residual, Sequential
from .conv import ConvNd
from .layers import ReLU
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = ["fuse", "ConvActivation"]

_BATCH_NORM_RANK: dict[type, int] = {BatchNorm1d: 1, BatchNorm2d: 2, BatchNorm3d: 3}


def _relu(y: np.ndarray) -> None:
    np.maximum(y, 0, out=y)


def _relu6(y: np.ndarray) -> None:
    np.maximum(y, 0, out=y)
    np.minimum(y, 6, out=y)


def _sigmoid(y: np.ndarray) -> None:
    expit(y, out=y)


def _tanh(y: np.ndarray) -> None:
    np.tanh(y, out=y)


def _silu(y: np.ndarray) -> None:
    y *= expit(y)


def _hardswish(y: np.ndarray) -> None:
    gate = y + 3  # x * min(max(x + 3, 0), 6) / 6, in PyTorch's order of operations
    np.maximum(gate, 0, out=gate)
    np.minimum(gate, 6, out=gate)
    y *= gate
    y /= 6


def _hardsigmoid(y: np.ndarray) -> None:
    y += 3
    np.maximum(y, 0, out=y)
    np.minimum(y, 6, out=y)
    y /= 6


IN_PLACE: dict[type, Callable[[np.ndarray], None]] = {
    ReLU: _relu, ReLU6: _relu6, Sigmoid: _sigmoid, Tanh: _tanh, SiLU: _silu, Hardswish: _hardswish,
    Hardsigmoid: _hardsigmoid}
"""The activations :func:`fuse` merges into a convolution, each with its in-place kernel."""


class ConvActivation(Sequential):
    """A convolution whose activation runs in place on its output: what :func:`fuse` makes.

    A Sequential of two children, ``'0'`` the convolution and ``'1'`` the activation (the
    layout of ``torch.ao.nn.intrinsic.ConvReLU2d``), so its repr and state dict keys read as
    that pair; the forward writes the activation into the convolution's fresh output instead
    of allocating a second array.  Inference only: :meth:`backward` raises.

    Parameters
    ----------
    conv : ConvNd
        Any real convolution module (Conv1d/2d/3d, ConvTranspose1d/2d/3d).
    activation : Module
        One of the activations with an in-place kernel (``IN_PLACE``: ReLU, ReLU6, SiLU,
        Hardswish, Hardsigmoid, Sigmoid, Tanh).

    Raises
    ------
    TypeError
        ``conv`` is not a convolution module, or ``activation`` has no in-place kernel.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> from npconv.nn.fuse import ConvActivation
    >>> conv = nn.Conv1d(1, 1, 2, bias=False)
    >>> conv.weight[...] = 1
    >>> fused = ConvActivation(conv, nn.ReLU())
    >>> fused(np.array([[[1.0, -3.0, 1.0]]], np.float32))
    array([[[0., 0.]]], dtype=float32)
    >>> print(fused)
    ConvActivation(
      (0): Conv1d(1, 1, kernel_size=(2,), stride=(1,), bias=False)
      (1): ReLU()
    )
    """

    def __init__(self, conv: ConvNd, activation: Module) -> None:
        if not isinstance(conv, ConvNd):
            raise TypeError(f"ConvActivation: conv must be an npconv convolution module, got {type(conv).__name__}")
        if type(activation) not in IN_PLACE:
            names = ", ".join(kind.__name__ for kind in IN_PLACE)
            raise TypeError(f"ConvActivation: activation must be one of {names}, got {type(activation).__name__}")
        super().__init__(conv, activation)

    def forward(self, input: Any) -> Any:
        """The convolution of ``input``, then the activation written into that output.

        Parameters
        ----------
        input : array_like or dask.array.Array
            The convolution's input.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            activation(conv(input)), in the convolution output's dtype and memory layout.
        """
        conv, activation = self._modules["0"], self._modules["1"]
        y = conv(input)
        if not _writable_float(y) or np.may_share_memory(y, input):
            return activation(y)  # a Dask array, or an output the kernel may not overwrite
        IN_PLACE[type(activation)](y)
        return y

    def backward(self, grad_output: Any) -> Any:
        """Refused: a fused model is for inference.

        Parameters
        ----------
        grad_output : array_like
            Ignored.

        Returns
        -------
        numpy.ndarray
            Never returns.

        Raises
        ------
        RuntimeError
            Always: the activation overwrote what its backward would need.
        """
        raise RuntimeError("ConvActivation.backward: a model made by npconv.nn.fuse is for inference only "
                           "(the activation ran in place and BatchNorm statistics are folded into the "
                           "convolution); train the original model and fuse it again")


def _writable_float(y: Any) -> bool:
    return isinstance(y, np.ndarray) and y.dtype.type in (np.float32, np.float64) and y.flags.writeable


def fuse(model: Module, activations: bool = True) -> Module:
    """An evaluation-mode copy of ``model`` with BatchNorms folded into the convolutions before them.

    See the module's description (:mod:`npconv.nn.fuse`) for what is folded and what stays.
    The copy computes ``model.eval()``'s function, with fewer layers and arrays; ``model``
    itself is not modified (neither its arrays nor its mode).

    Parameters
    ----------
    model : Module
        Any npconv model; containers are searched at every depth.
    activations : bool, default True
        Also merge each elementwise activation that directly follows a convolution into a
        :class:`ConvActivation` (run in place).

    Returns
    -------
    Module
        The fused copy, in evaluation mode.  Its ConvActivation modules refuse a backward, and
        its parameters and buffers are read-only (an inference copy: the engine then keeps the
        transformed weights of its layers without comparing them with the weights each call;
        to change them, change the original model and fuse it again — making a fused weight
        writable and changing it is not seen by the kept transforms).

    Raises
    ------
    TypeError
        ``model`` is not an npconv Module.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> from npconv.nn.fuse import fuse
    >>> from npconv.nn.norm import BatchNorm2d
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), BatchNorm2d(2), nn.ReLU())
    >>> model.eval()[1].running_mean[...] = [0.5, -0.5]
    >>> fused = fuse(model)
    >>> print(fused)
    Sequential(
      (0): ConvActivation(
        (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
        (1): ReLU()
      )
      (1): Identity()
      (2): Identity()
    )
    >>> x = np.random.default_rng(0).standard_normal((1, 1, 5, 5)).astype(np.float32)
    >>> bool(np.abs(fused(x) - model(x)).max() < 1e-6), fused.training
    (True, False)
    """
    if not isinstance(model, Module):
        raise TypeError(f"fuse: model must be an npconv.nn.Module, got {type(model).__name__}")
    fused = copy.deepcopy(model)
    uses = _uses(fused)
    for module in list(_walk(fused)):
        for run in _runs(module):
            _fuse_run(module, run, uses, activations)
    for param in fused.parameters():
        param.grad = None
    _freeze(fused)
    return fused.eval()


def _freeze(model: Module) -> None:
    """Make every parameter and buffer read-only, down to the array that owns its memory: the
    copy is for inference, and the engine keeps the transformed form of an unwritable weight
    (Winograd's, the FFT's spectrum) without comparing it with the weight on every call."""
    for array in [*model.parameters(), *model.buffers()]:
        owner = array
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        for view in (array, owner):
            view.flags.writeable = False


def _walk(module: Module) -> Iterator[Module]:
    """``module`` and every module below it, each once, parents before children."""
    seen: set[int] = set()
    stack = [module]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(current._modules.values()))


def _uses(model: Module) -> Counter[int]:
    """How many places hold each module and each parameter (by id) below ``model``."""
    uses: Counter[int] = Counter()
    for parent in _walk(model):
        uses.update(id(child) for child in parent._modules.values())
        uses.update(id(param) for param in parent._parameters.values() if param is not None)
    return uses


def _shared(conv: ConvNd, uses: Counter[int]) -> bool:
    """Whether ``conv`` or one of its parameters is used in more than one place (folding one
    place's BatchNorm into it would change the others)."""
    held = [conv] + [param for param in (conv.weight, conv.bias) if param is not None]
    return any(uses[id(item)] > 1 for item in held)


def _runs(module: Module) -> list[tuple[str, ...]]:
    """The child names ``module`` runs one after another on one value (its fusable runs)."""
    if isinstance(module, ConvActivation):
        return []
    if isinstance(module, Residual) and type(module).forward is Residual.forward:
        return [module._body, module._shortcut]
    if isinstance(module, Sequential) and type(module).forward is Sequential.forward:
        return [tuple(module._modules)]
    return []  # a container with a forward of its own may read a child's output elsewhere


def _fuse_run(owner: Module, names: tuple[str, ...], uses: Counter[int], activations: bool) -> None:
    """Fold and merge along one run of ``owner``'s children, replacing absorbed ones by Identity."""
    index = 0
    while index < len(names):
        conv_name = names[index]
        conv = owner._modules[conv_name]
        index += 1
        if not isinstance(conv, ConvNd) or _shared(conv, uses) or np.iscomplexobj(conv.weight):
            continue
        if index < len(names) and _foldable(conv, owner._modules[names[index]]):
            _fold(conv, owner._modules[names[index]])
            setattr(owner, names[index], Identity())
            index += 1
        if activations and index < len(names) and type(owner._modules[names[index]]) in IN_PLACE:
            setattr(owner, conv_name, ConvActivation(conv, owner._modules[names[index]]))
            setattr(owner, names[index], Identity())
            index += 1


def _foldable(conv: ConvNd, norm: Module) -> bool:
    """Whether ``norm`` is a BatchNorm of ``conv``'s rank with running statistics for its channels
    (and ``conv`` has its weight: a Lazy convolution before its first input has none)."""
    return (_BATCH_NORM_RANK.get(type(norm)) == conv._n and conv.weight is not None
            and norm.running_mean is not None and norm.running_var is not None
            and norm.num_features == conv.out_channels)


def _fold(conv: ConvNd, norm: Module) -> None:
    """Fold ``norm`` (evaluation mode) into ``conv``'s weight and bias, in float64, in place."""
    wide = np.result_type(conv.weight.dtype, np.float64)
    scale = 1.0 / np.sqrt(np.asarray(norm.running_var, np.float64) + norm.eps)
    if norm.weight is not None:
        scale = scale * np.asarray(norm.weight, np.float64)
    shift = -np.asarray(norm.running_mean, np.float64) * scale
    if norm.bias is not None:
        shift = shift + np.asarray(norm.bias, np.float64)
    bias = np.zeros(conv.out_channels, wide) if conv.bias is None else np.asarray(conv.bias, wide)
    conv.weight[...] = _scaled_weight(conv, np.asarray(conv.weight, wide), scale)
    conv.bias = Parameter(bias * scale + shift, dtype=conv.weight.dtype)


def _scaled_weight(conv: ConvNd, weight: npt.NDArray[Any], scale: np.ndarray) -> np.ndarray:
    """``weight`` times ``scale`` per output channel: dim 0 of a convolution's weight
    ``(C_out, C_in/groups, *k)``; for a transposed one ``(C_in, C_out/groups, *k)``, output
    channel ``g * C_out/groups + j`` is column j of group g's rows."""
    spatial = (1,) * (weight.ndim - 2)
    if not conv.transposed:
        return weight * scale.reshape((-1, 1) + spatial)
    groups = conv.groups
    grouped = weight.reshape((groups, weight.shape[0] // groups) + weight.shape[1:])
    per_group = scale.reshape((groups, 1, -1) + spatial)
    return (grouped * per_group).reshape(weight.shape)
