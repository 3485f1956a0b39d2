"""Containers that compose forward and backward: Sequential (layers in order), Residual
(y = after(body(x) + shortcut(x))) and Concat (branches side by side), so ResNets,
MobileNets and Inception-style blocks train without a hand-written backward."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..arrays import as_channels_last, is_channels_last
from .conv_dask import is_dask_array
from .module import Module

__all__ = ["Sequential", "Residual", "Concat"]


def _register(owner: Module, modules: Mapping[str, Module] | Sequence[Module]) -> tuple[str, ...]:
    """Register ``modules`` as children of ``owner`` (a mapping under its names, a sequence as
    '0', '1', ...); the names, in order."""
    items = modules.items() if isinstance(modules, Mapping) else ((str(i), m) for i, m in enumerate(modules))
    names = []
    for name, module in items:
        if not isinstance(module, Module):
            raise TypeError(f"{type(owner).__name__}: {name!r} is of type {type(module).__name__}, not an npconv.nn.Module")
        _refuse_a_second_place(owner, name, module)
        setattr(owner, name, module)
        names.append(name)
    return tuple(names)


def _refuse_a_second_place(owner: Module, name: str, module: Module) -> None:
    """A module keeps what its last forward saw for its backward, so one instance run in two
    places of a container would send the first place's gradient through the second's input
    (and an optimizer would step its parameters twice): refused, naming both places."""
    placed = {id(m): where for where, m in owner.named_modules()}
    for inner, m in module.named_modules():
        if id(m) in placed:
            here = ".".join(part for part in (name, inner) if part)
            raise ValueError(f"{type(owner).__name__}: module {here!r} ({type(m).__name__}) is already at "
                             f"{placed[id(m)] or 'the container itself'!r}; a module can run in one place only "
                             f"(its backward reads its last forward): give each place its own instance")


def _run(owner: Module, names: tuple[str, ...], x: Any) -> Any:
    for name in names:
        x = owner._modules[name](x)
    return x


def _run_backward(owner: Module, names: tuple[str, ...], grad: Any) -> Any:
    for name in reversed(names):
        grad = owner._modules[name].backward(grad)
    return grad


class Sequential(Module):
    """Modules run in order; backward runs their backwards in reverse.

    As ``torch.nn.Sequential``: the modules are given in order (children ``'0'``, ``'1'``, ...)
    or as one ``OrderedDict`` of name to module (children under those names, so a
    torchvision-style model keys its state dict ``'conv1.weight'``).  The activations keep
    the input's memory layout from layer to layer, as in PyTorch (a channels-last input stays
    channels-last); ``memory_format='channels_last'`` converts a channels-first input once at
    the network's input and back at its output instead.

    Parameters
    ----------
    *modules : Module, or one mapping of str to Module
        The layers.
    memory_format : {None, 'channels_last'}, default None
        An npconv extension.  None: the input's layout throughout (measured faster for
        ResNet-18, ResNet-50, MobileNetV2 and ConvNeXt-T in evaluation and for a ResNet-18
        training step on 2 cores: Winograd and im2col read channels-first tiles faster).
        'channels_last': a batched channels-first input to a network that starts with a 2-D
        or 3-D convolution runs channels-last between layers; the output and the input
        gradient are C-contiguous again.

    Raises
    ------
    ValueError
        ``memory_format`` other than None or 'channels_last'.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())
    >>> y = net(np.ones((4, 1, 5, 5), np.float32))
    >>> y.shape, net.backward(np.ones_like(y)).shape, len(net)
    ((4, 18), (4, 1, 5, 5), 3)
    """

    def __init__(self, *modules: Module | Mapping[str, Module], memory_format: str | None = None) -> None:
        super().__init__()
        if memory_format not in (None, "channels_last"):
            raise ValueError(f"Sequential: memory_format must be None or 'channels_last', got {memory_format!r}")
        self.memory_format = memory_format
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            _register(self, modules[0])
        else:
            _register(self, modules)  # type: ignore[arg-type]  # a mapping only alone

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, input: Any) -> Any:
        """Run every module in order.

        Parameters
        ----------
        input : array_like
            The first module's input.

        Returns
        -------
        numpy.ndarray
            The last module's output.
        """
        x, convert = self._to_engine_layout(input)
        x = _run(self, tuple(self._modules), x)
        self._converted = convert
        return np.ascontiguousarray(x) if convert else x

    def backward(self, grad_output: Any) -> Any:
        """Run every module's backward, last module first.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output of the last :meth:`forward`.

        Returns
        -------
        numpy.ndarray
            d loss / d input; every parameter's gradient is added into its ``grad``.
        """
        converted = getattr(self, "_converted", False)
        grad = as_channels_last(np.asarray(grad_output)) if converted and np.ndim(grad_output) > 2 else grad_output
        grad = _run_backward(self, tuple(self._modules), grad)
        return np.ascontiguousarray(grad) if converted else grad

    def _to_engine_layout(self, input: Any) -> tuple[Any, bool]:
        """The engine's layout between layers: a batched channels-first input to a network that
        starts with a convolution (perhaps inside nested Sequentials) becomes channels-last once
        here (each convolution then reads and answers channels-last memory, npconv.core.forward)
        and channels-first again only at the output.  Returns (input to run, whether converted)."""
        if self.memory_format != "channels_last":
            return input, False
        first: Any = self
        while isinstance(first, Sequential):
            first = next(iter(first._modules.values()), None)
        n = getattr(first, "_n", None)
        if is_dask_array(input):  # a Dask array stays lazy: each layer takes it as it is
            return input, False
        x = np.asarray(input) if n is not None else input
        if n is None or x.ndim != n + 2 or n == 1 or not x.flags.c_contiguous or x.dtype.kind != "f":
            return x, False
        return as_channels_last(x), True


class Residual(Module):
    """y = after(body(x) + shortcut(x)): a residual block whose backward is composed for you.

    An npconv extension (PyTorch writes such blocks by hand).  ``body`` and ``shortcut`` may be
    given as mappings of name to module, which are registered under those names on the block
    itself and run in order, so the block's state dict keys are a torchvision block's
    (``conv1.weight``, ``bn1.running_mean``, ``downsample.0.weight``).

    Parameters
    ----------
    body : Module or mapping of str to Module
        The residual branch (a module becomes child ``'body'``).
    shortcut : Module or mapping of str to Module, optional
        The skip branch; None (the default) is the identity (a module becomes child ``'shortcut'``).
    after : Module, optional
        Applied to the sum (ResNet's ReLU); child ``'after'``.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> block = nn.Residual({"conv1": nn.Conv2d(2, 2, 3, padding=1)}, after=nn.ReLU())
    >>> y = block(np.ones((1, 2, 4, 4), np.float32))
    >>> y.shape, block.backward(np.ones_like(y)).shape, list(block.state_dict())
    ((1, 2, 4, 4), (1, 2, 4, 4), ['conv1.weight', 'conv1.bias'])
    """

    def __init__(self, body: Module | Mapping[str, Module], shortcut: Module | Mapping[str, Module] | None = None,
                 after: Module | None = None) -> None:
        super().__init__()
        self._body = _register(self, body if isinstance(body, Mapping) else {"body": body})
        parts = {} if shortcut is None else shortcut if isinstance(shortcut, Mapping) else {"shortcut": shortcut}
        self._shortcut = _register(self, parts)
        self._after = _register(self, {} if after is None else {"after": after})

    def forward(self, input: Any) -> Any:
        """after(body(input) + shortcut(input)).

        Parameters
        ----------
        input : array_like
            The block's input.

        Returns
        -------
        numpy.ndarray
            The block's output.
        """
        total = np.add(_run(self, self._body, input), _run(self, self._shortcut, input))
        return _run(self, self._after, total)

    def backward(self, grad_output: Any) -> Any:
        """The body's and the shortcut's input gradients, summed.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output of the last :meth:`forward`.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        grad = _run_backward(self, self._after, grad_output)
        return np.add(_run_backward(self, self._body, grad), _run_backward(self, self._shortcut, grad))


class Concat(Module):
    """Branches run on the same input, their outputs concatenated along ``dim`` (Inception-style).

    An npconv extension; the backward splits the gradient and sums the branches' input
    gradients.  Channels-last inputs give a channels-last output.

    Parameters
    ----------
    branches : sequence of Module, or mapping of str to Module
        The branches (children ``'0'``, ``'1'``, ... or under the mapping's names).
    dim : int, default 1
        The axis joined (the channels).

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> mixed = nn.Concat([nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 3, padding=1)])
    >>> y = mixed(np.ones((1, 3, 5, 5), np.float32))
    >>> y.shape, mixed.backward(np.ones_like(y)).shape
    ((1, 6, 5, 5), (1, 3, 5, 5))
    """

    def __init__(self, branches: Sequence[Module] | Mapping[str, Module], dim: int = 1) -> None:
        super().__init__()
        self._branches = _register(self, branches)
        if not self._branches:
            raise ValueError("Concat: branches must hold at least one module (got none)")
        self.dim = dim

    def forward(self, input: Any) -> Any:
        """Every branch on ``input``, joined along ``dim``.

        Parameters
        ----------
        input : array_like
            The input every branch takes.

        Returns
        -------
        numpy.ndarray
            The concatenation.
        """
        parts = [np.asarray(self._modules[name](input)) for name in self._branches]
        axis = self.dim % parts[0].ndim
        self._sizes = [part.shape[axis] for part in parts]
        out = _like_layout(parts[0], axis, sum(self._sizes), np.result_type(*parts))
        np.concatenate(parts, axis=axis, out=out)
        return out

    def backward(self, grad_output: Any) -> Any:
        """Each branch's backward on its slice of the gradient, summed.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output of the last :meth:`forward`.

        Returns
        -------
        numpy.ndarray
            d loss / d input.
        """
        grad = np.asarray(grad_output)
        axis = self.dim % grad.ndim
        pieces = np.split(grad, np.cumsum(self._sizes)[:-1], axis=axis)
        total = None
        for name, piece in zip(self._branches, pieces):
            part = self._modules[name].backward(piece)
            total = part if total is None else np.add(total, part)
        return total

    def extra_repr(self) -> str:
        """``'dim=1'``."""
        return f"dim={self.dim}"


def _like_layout(part: np.ndarray, axis: int, size: int, dtype: np.dtype) -> np.ndarray:
    """An empty array of ``dtype`` for the concatenation: ``part``'s shape with ``size`` along
    ``axis``, channels-last in memory when ``part`` is (so a channels-last network stays so)."""
    shape = part.shape[:axis] + (size,) + part.shape[axis + 1:]
    if part.ndim > 2 and axis == 1 and is_channels_last(part) and not part.flags.c_contiguous:
        return np.moveaxis(np.empty(shape[:1] + shape[2:] + shape[1:2], dtype), -1, 1)
    return np.empty(shape, dtype)
