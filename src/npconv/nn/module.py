"""Module, Parameter and Sequential: torch.nn's containers, with an explicit backward.

Every module has ``forward(input)`` (also ``module(input)``) and ``backward(grad_output)``,
which returns the gradient with respect to the last forward's input and adds parameter
gradients into ``param.grad``.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from ..arrays import as_channels_last

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(np.ndarray):
    """A learnable array: an ndarray that carries ``.grad`` (None until a backward).

    Arithmetic on a parameter gives plain arrays; in-place updates keep the parameter.
    """

    def __new__(cls, data, dtype=None):
        param = np.array(data, dtype=dtype, copy=True).view(cls)
        param.grad = None
        return param

    def __array_finalize__(self, obj):
        self.grad = None

    def __array_wrap__(self, array, context=None, return_scalar=False):
        if array is self:  # in-place update: stay a parameter
            return self
        if return_scalar:
            return array[()]
        return array.view(np.ndarray)

    def __reduce__(self):  # never pickled as a subclass: weight files hold plain arrays
        raise TypeError("npconv parameters are not pickled; save a state_dict with npconv.save")


class Module:
    """Base class: parameters and sub-modules are registered by attribute assignment."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration --------------------------------------------------------------
    def __setattr__(self, name, value):
        params, modules = self.__dict__.get("_parameters"), self.__dict__.get("_modules")
        if params is None:
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

    def __getattr__(self, name):
        for registry in ("_parameters", "_modules"):
            table = self.__dict__.get(registry, {})
            if name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- running -------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def train(self, mode: bool = True):
        object.__setattr__(self, "training", mode)
        for child in self._modules.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- parameters ----------------------------------------------------------------
    def named_parameters(self, prefix: str = ""):
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for child_name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def parameters(self):
        for _, param in self.named_parameters():
            yield param

    def children(self):
        return iter(self._modules.values())

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter as plain arrays, keyed as PyTorch keys them."""
        return OrderedDict((name, np.array(param)) for name, param in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters; missing/unexpected keys and wrong shapes refused."""
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
    """Modules run in order; backward runs them in reverse."""

    def __init__(self, *modules: Module):
        super().__init__()
        for index, module in enumerate(modules):
            setattr(self, str(index), module)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, input):
        x, convert = self._to_engine_layout(input)
        for module in self._modules.values():
            x = module(x)
        self._converted = convert
        return np.ascontiguousarray(x) if convert else x

    def backward(self, grad_output):
        grad = as_channels_last(np.asarray(grad_output)) if getattr(self, "_converted", False) else grad_output
        for module in reversed(self._modules.values()):
            grad = module.backward(grad)
        return np.ascontiguousarray(grad) if getattr(self, "_converted", False) else grad

    def _to_engine_layout(self, input):
        """The engine's layout between layers: a batched channels-first input to a network that
        starts with a convolution becomes channels-last once here (each convolution then reads
        and answers channels-last memory, npconv.core.forward) and channels-first again only
        at the output.  Returns (input to run, whether it was converted)."""
        first = next(iter(self._modules.values()), None)
        n = getattr(first, "_n", None)
        x = np.asarray(input) if n is not None else input
        if n is None or x.ndim != n + 2 or n == 1 or not x.flags.c_contiguous or x.dtype.kind != "f":
            return x, False
        return as_channels_last(x), True


def accumulate_grad(param: Parameter | None, grad: np.ndarray) -> None:
    """param.grad += grad (created on first use), in the parameter's dtype."""
    if param is None:
        return
    grad = np.asarray(grad, dtype=param.dtype)
    param.grad = grad.copy() if param.grad is None else param.grad + grad
