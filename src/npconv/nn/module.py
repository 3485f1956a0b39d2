"""Module, Parameter and Sequential: torch.nn's containers, with an explicit backward.

Every module has ``forward(input)`` (also ``module(input)``) and ``backward(grad_output)``,
which returns the gradient with respect to the last forward's input and adds parameter
gradients into ``param.grad``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..arrays import as_channels_last
from .conv_dask import is_dask_array

__all__ = ["Module", "Parameter", "Sequential", "IncompatibleKeys", "accumulate_grad"]


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (as ``torch.nn``'s result).

    Attributes
    ----------
    missing_keys : list of str
        Parameters of the module that the state dict had no entry for.
    unexpected_keys : list of str
        Entries of the state dict that name no parameter of the module.
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


class Parameter(np.ndarray):
    """A learnable array: an ndarray that carries ``.grad`` (None until a backward).

    Arithmetic on a parameter gives plain arrays; in-place updates keep the parameter.

    Parameters
    ----------
    data : array_like
        The initial values; always copied.
    dtype : data-type, optional
        The parameter's dtype (default: that of ``data``).

    Attributes
    ----------
    grad : numpy.ndarray or None
        The gradient summed by the backward passes since the last ``zero_grad`` (None before).
    constraint : callable or None
        Set by ``npconv.keras`` layers: a projection the optimizers apply after each step.

    Examples
    --------
    >>> w = Parameter([1.0, 2.0])
    >>> w.grad is None, type(w * 2).__name__
    (True, 'ndarray')
    """

    grad: np.ndarray | None
    constraint: Any

    def __new__(cls, data: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> Parameter:
        param = np.array(data, dtype=dtype, copy=True).view(cls)
        param.grad = None
        return param

    def __array_finalize__(self, obj: object) -> None:
        self.grad = None

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        if array is self:  # in-place update: stay a parameter
            return self
        if return_scalar:
            return array[()]
        return array.view(np.ndarray)

    def __reduce__(self) -> Any:  # never pickled as a subclass: weight files hold plain arrays
        raise TypeError("npconv parameters are not pickled; save a state_dict with npconv.save")


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
    _modules: OrderedDict[str, Module]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration --------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params, modules = self.__dict__.get("_parameters"), self.__dict__.get("_modules")
        if params is None or modules is None:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if isinstance(value, Parameter) or (name in params and value is None):
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
        for registry in ("_parameters", "_modules"):
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
            Name and parameter; a parameter set to None (``bias=False``) is skipped.
        """
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for child_name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}{child_name}.")

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

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter as plain arrays, keyed as PyTorch keys them.

        Returns
        -------
        collections.OrderedDict of str to numpy.ndarray
            ``{'weight': ..., 'bias': ...}``, dotted names for children (``'0.weight'``).
        """
        return OrderedDict((name, np.array(param, order="C")) for name, param in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, npt.ArrayLike], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters, checking keys and shapes first.

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
        own = dict(self.named_parameters())
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                             f"missing keys {missing}, unexpected keys {unexpected}")
        for key, param in own.items():
            if key in state_dict:
                value = np.asarray(state_dict[key])
                if value.shape != param.shape:
                    raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: size "
                                     f"mismatch for {key}: copying a param with shape {list(value.shape)} "
                                     f"from checkpoint, the shape in current model is {list(param.shape)}.")
        for key, param in own.items():
            if key in state_dict:
                param[...] = np.asarray(state_dict[key], dtype=param.dtype)
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


class Sequential(Module):
    """Modules run in order; backward runs their backwards in reverse.

    Between layers a batched channels-first input to a network that starts with a 2-D or
    3-D convolution is kept channels-last in memory (the engine's fast layout); the output
    and the input gradient are C-contiguous again.

    Parameters
    ----------
    *modules : Module
        The layers, registered as children ``'0'``, ``'1'``, ...

    Examples
    --------
    >>> import numpy as np
    >>> from npconv import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())
    >>> y = net(np.ones((4, 1, 5, 5), np.float32))
    >>> y.shape, net.backward(np.ones_like(y)).shape, len(net)
    ((4, 18), (4, 1, 5, 5), 3)
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for index, module in enumerate(modules):
            setattr(self, str(index), module)

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
        for module in self._modules.values():
            x = module(x)
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
        grad = as_channels_last(np.asarray(grad_output)) if getattr(self, "_converted", False) else grad_output
        for module in reversed(self._modules.values()):
            grad = module.backward(grad)
        return np.ascontiguousarray(grad) if getattr(self, "_converted", False) else grad

    def _to_engine_layout(self, input: Any) -> tuple[Any, bool]:
        """The engine's layout between layers: a batched channels-first input to a network that
        starts with a convolution becomes channels-last once here (each convolution then reads
        and answers channels-last memory, npconv.core.forward) and channels-first again only
        at the output.  Returns (input to run, whether it was converted)."""
        first = next(iter(self._modules.values()), None)
        n = getattr(first, "_n", None)
        if is_dask_array(input):  # a Dask array stays lazy: each layer takes it as it is
            return input, False
        x = np.asarray(input) if n is not None else input
        if n is None or x.ndim != n + 2 or n == 1 or not x.flags.c_contiguous or x.dtype.kind != "f":
            return x, False
        return as_channels_last(x), True


def accumulate_grad(param: Parameter | None, grad: npt.ArrayLike) -> None:
    """``param.grad += grad`` (created on first use), in the parameter's dtype.

    Parameters
    ----------
    param : Parameter or None
        The parameter; None (a missing bias) does nothing.
    grad : array_like
        The gradient to add, in the parameter's shape.
    """
    if param is None:
        return
    grad = np.asarray(grad, dtype=param.dtype)
    param.grad = grad.copy() if param.grad is None else param.grad + grad
