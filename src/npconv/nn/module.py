"""Module: the base of every layer, as torch.nn.Module with an explicit backward.

Every module has ``forward(input)`` (also ``module(input)``) and ``backward(grad_output)``,
which returns the gradient with respect to the last forward's input and adds parameter
gradients into ``param.grad``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .parameter import IncompatibleKeys, Parameter, accumulate_grad

__all__ = ["Module", "Parameter", "IncompatibleKeys", "accumulate_grad"]


class Module:
    """Base class of every npconv layer, as ``torch.nn.Module`` with an explicit backward.

    Parameters and sub-modules are registered by attribute assignment: assigning a
    :class:`Parameter` registers a parameter, assigning a :class:`Module` a child.
    ``module(input)`` runs :meth:`forward`; :meth:`backward` takes the gradient of the loss
    with respect to the last forward's output and returns it with respect to the input,
    adding the parameters' gradients into ``param.grad``.

    Attributes
    ----------
    training : bool
        True in training mode (the default), False after :meth:`eval`.

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.factor = nn.Parameter(np.array(2.0))
    ...     def forward(self, x):
    ...         self.x = x
    ...         return self.factor * x
    >>> layer = Scale()
    >>> layer(np.array([1.0, 3.0])), [name for name, _ in layer.named_parameters()]
    (array([2., 6.]), ['factor'])
    """

    _parameters: OrderedDict[str, Parameter | None]
    _buffers: OrderedDict[str, np.ndarray | None]
    _modules: OrderedDict[str, Module]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def register_buffer(self, name: str, tensor: npt.ArrayLike | None, persistent: bool = True) -> None:
        """Register a state array that is not a parameter (BatchNorm's ``running_mean``), as torch.

        Buffers are read as attributes, assigned like them (``self.running_mean = new``), kept
        in :meth:`state_dict` when ``persistent`` and loaded by :meth:`load_state_dict`.

        Parameters
        ----------
        name : str
            The attribute name.
        tensor : array_like or None
            The initial value (None: registered but absent, as torch allows).
        persistent : bool, default True
            Whether the buffer is part of the state dict.

        Raises
        ------
        KeyError
            ``name`` is already a parameter or a child module, or contains a dot.
        """
        if "." in name or name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists or is not a valid buffer name")
        self.__dict__.pop(name, None)
        self._buffers[name] = None if tensor is None else np.asarray(tensor)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    # ---- registration --------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params, modules = self.__dict__.get("_parameters"), self.__dict__.get("_modules")
        if params is None or modules is None:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = None if value is None else np.asarray(value)
        elif isinstance(value, Parameter) or (name in params and value is None):
            self.__dict__.pop(name, None)
            params[name] = value
        elif name in params:
            raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                            f"(npconv.nn.Parameter or None expected)")
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry, {})
            if name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- running -------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run :meth:`forward` (``module(x)`` is ``module.forward(x)``)."""
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The module's computation; every subclass defines it.

        Raises
        ------
        NotImplementedError
            On the base class.
        """
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, grad_output: Any) -> Any:
        """Gradient with respect to the last forward's input, given it w.r.t. its output.

        Parameters
        ----------
        grad_output : array_like
            d loss / d output of the last :meth:`forward`, in the output's shape.

        Returns
        -------
        numpy.ndarray
            d loss / d input.  Parameter gradients are added into ``param.grad``.

        Raises
        ------
        NotImplementedError
            On the base class.
        """
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and its children.

        Parameters
        ----------
        mode : bool, default True
            True for training (Dropout active), False for evaluation.

        Returns
        -------
        Module
            This module.
        """
        object.__setattr__(self, "training", mode)
        for child in self._modules.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``self.train(False)``.

        Returns
        -------
        Module
            This module.
        """
        return self.train(False)

    # ---- parameters ----------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (``'0.weight'``), own ones first.

        Parameters
        ----------
        prefix : str, default ''
            Prepended to every name.

        Yields
        ------
        tuple of (str, Parameter)
            Name and parameter; a parameter set to None (``bias=False``) is skipped, and one
            held in several places (tied weights) comes once, at its first place (as torch's).
        """
        seen: set[int] = set()
        for name, param in self._every_parameter(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _every_parameter(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for child_name, child in self._modules.items():
            yield from child._every_parameter(f"{prefix}{child_name}.")

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, in :meth:`named_parameters` order.

        Yields
        ------
        Parameter
            Each learnable array (what an optimizer updates).
        """
        for _, param in self.named_parameters():
            yield param

    def children(self) -> Iterator[Module]:
        """The direct sub-modules, in assignment order.

        Returns
        -------
        iterator of Module
            The children (not their children).
        """
        return iter(self._modules.values())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their names, in assignment order.

        Returns
        -------
        iterator of (str, Module)
            Name and child.
        """
        return iter(self._modules.items())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and every descendant with its dotted name, depth first.

        Parameters
        ----------
        prefix : str, default ''
            The name given to this module; children are ``prefix.child``.

        Yields
        ------
        tuple of (str, Module)
            Name and module, parents before their children.
        """
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, in :meth:`named_modules` order.

        Yields
        ------
        Module
            Each module once per place it is registered.
        """
        for _, module in self.named_modules():
            yield module

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Every buffer (``running_mean``...) with its dotted name, own ones first.

        Parameters
        ----------
        prefix : str, default ''
            Prepended to every name.

        Yields
        ------
        tuple of (str, numpy.ndarray)
            Name and array; a buffer set to None is skipped.
        """
        for name, buffer in self._buffers.items():
            if buffer is not None:
                yield prefix + name, buffer
        for child_name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}{child_name}.")

    def buffers(self) -> Iterator[np.ndarray]:
        """Every buffer, in :meth:`named_buffers` order.

        Yields
        ------
        numpy.ndarray
            Each buffer.
        """
        for _, buffer in self.named_buffers():
            yield buffer

    def apply(self, fn: Any) -> Module:
        """Call ``fn`` on every descendant and then on this module (torch's order).

        Parameters
        ----------
        fn : callable
            Takes a Module; its return value is ignored.

        Returns
        -------
        Module
            This module.
        """
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient.

        Parameters
        ----------
        set_to_none : bool, default True
            Set ``grad`` to None (as PyTorch 2 does); False fills existing gradients with zeros.
        """
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(dotted name, array) in torch's state-dict order: per module, its parameters, then its
        persistent buffers, then its children."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent:
                yield prefix + name, buffer
        for child_name, child in self._modules.items():
            yield from child._state_items(f"{prefix}{child_name}.")

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and persistent buffer as plain arrays, keyed as PyTorch keys them.

        Returns
        -------
        collections.OrderedDict of str to numpy.ndarray
            ``{'weight': ..., 'bias': ...}``, dotted names for children (``'0.weight'``), a
            BatchNorm's ``running_mean``, ``running_var`` and ``num_batches_tracked`` after its
            parameters (torch's order).
        """
        return OrderedDict((name, np.array(value, order="C")) for name, value in self._state_items())

    def load_state_dict(self, state_dict: Mapping[str, npt.ArrayLike], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters and buffers, checking keys and shapes first.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Arrays keyed as :meth:`state_dict` keys them (a PyTorch ``state_dict`` converted
            to NumPy works).
        strict : bool, default True
            Refuse missing or unexpected keys; False loads the keys that match.

        Returns
        -------
        IncompatibleKeys
            The missing and unexpected keys.

        Raises
        ------
        ValueError
            Missing or unexpected keys (when ``strict``), or an array whose shape differs from
            its parameter's; nothing is copied then.
        """
        own = dict(self._state_items())
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                             f"missing keys {missing}, unexpected keys {unexpected}")
        for key, array in own.items():
            if key in state_dict:
                value = np.asarray(state_dict[key])
                if value.shape != array.shape:
                    raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: size "
                                     f"mismatch for {key}: copying a param with shape {list(value.shape)} "
                                     f"from checkpoint, the shape in current model is {list(array.shape)}.")
        for key, array in own.items():
            if key in state_dict:
                array[...] = np.asarray(state_dict[key], dtype=array.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ---- text ----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The settings shown inside the module's repr (empty on the base class).

        Returns
        -------
        str
            For example ``'3, 8, kernel_size=(3, 3), stride=(1, 1)'`` for a Conv2d.
        """
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + _indent(repr(child)) for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")
