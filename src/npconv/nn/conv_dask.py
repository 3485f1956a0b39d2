"""The convolution modules' Dask face: ``module(x)`` on a ``dask.array.Array`` builds a lazy
:func:`npconv.dask.conv` graph with the module's settings, weight and bias (inference only:
nothing is kept for a backward, which then says so).  Dask is imported only when the input
already is one of its arrays, so a NumPy-only install never needs it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arrays import as_array
from ..spec import ConvSpec, check_input_rank, check_operands

if TYPE_CHECKING:
    from .conv import ConvNd

__all__ = ["is_dask_array", "module_input", "dask_forward", "backward_refusal"]


def is_dask_array(value: Any) -> bool:
    """True if ``value`` is a ``dask.array.Array`` (never imports dask).

    Parameters
    ----------
    value : object
        Anything a module's forward was given.

    Returns
    -------
    bool
        False whenever ``dask.array`` has not been imported: no Dask array can exist then.
    """
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def module_input(value: Any, op: str) -> Any:
    """A forward's input as the module reads it: a Dask array as it is, anything else as
    :func:`npconv.arrays.as_array` makes it (an ndarray of a supported real or complex dtype).

    Parameters
    ----------
    value : array_like or dask.array.Array
        The forward's input.
    op : str
        The module's name, for messages.

    Returns
    -------
    numpy.ndarray or dask.array.Array

    Raises
    ------
    TypeError
        A (non-Dask) input that is not an array of real or complex numbers.
    """
    return value if is_dask_array(value) else as_array(value, "input", op)


def dask_forward(conv_module: ConvNd, spec: ConvSpec, input: Any) -> Any:
    """The module's forward on a Dask array: a lazy :func:`npconv.dask.conv` with ``spec``.

    Parameters
    ----------
    conv_module : ConvNd
        The module whose weight and bias are used; its backward cache is cleared.
    spec : ConvSpec
        The settings the NumPy path would use (a transposed module's ``output_size`` already
        turned into its output_padding).
    input : dask.array.Array
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.

    Returns
    -------
    dask.array.Array
        Lazy; ``.compute()`` equals the module's NumPy forward on the computed input.

    Raises
    ------
    ValueError, TypeError
        As the NumPy forward (same words), before any graph is built.
    """
    from .. import dask as npconv_dask  # the optional extra: imported only for a Dask input

    # the NumPy path's checks on the shapes and dtype alone, so refusals name the module as there
    as_array(np.empty(0, input.dtype), "input", spec.op)
    batched = check_input_rank(spec.op, spec.ndim, input.shape)
    shape = tuple(input.shape) if batched else (1,) + tuple(input.shape)
    bias_shape = None if conv_module.bias is None else conv_module.bias.shape
    check_operands(spec, shape, conv_module.weight.shape, bias_shape)
    spec.out_spatial(shape[2:])
    # forget any earlier NumPy forward first: a backward must not pair this output with an old input
    object.__setattr__(conv_module, "_input", None)
    object.__setattr__(conv_module, "_dask_forward", True)
    # plain-array copies: the graph holds the weights as they are now (later training steps
    # do not change it), and a Parameter (which refuses pickling) never reaches a worker
    weight = np.array(conv_module.weight, copy=True)
    bias = None if conv_module.bias is None else np.array(conv_module.bias, copy=True)
    return npconv_dask.conv(input, weight, bias, stride=spec.stride, padding=spec.same_rule or spec.padding,
                            dilation=spec.dilation, groups=spec.groups, padding_mode=spec.padding_mode,
                            transposed=spec.transposed, output_padding=spec.output_padding)


def backward_refusal(conv_module: ConvNd) -> RuntimeError:
    """The error for a backward with no NumPy forward to differentiate.

    Parameters
    ----------
    conv_module : ConvNd
        The module whose backward was called.

    Returns
    -------
    RuntimeError
        Says the last forward was a Dask (inference-only) call, or that none ran yet.
    """
    name = type(conv_module).__name__
    if conv_module.__dict__.get("_dask_forward", False):
        return RuntimeError(f"{name}.backward: the last forward was given a Dask array, which is inference "
                            f"only (nothing is kept for a backward); run the forward on a NumPy array to "
                            f"train")
    return RuntimeError(f"{name}.backward called before forward")
