"""The differential oracle of the fuzz suite: one convolution case, run through npconv and
through PyTorch (autograd for the gradients), compared by the suite's tolerance rules.

PyTorch is the oracle wherever it can say the case.  npconv's extensions (``'same'`` at
stride > 1, ``'same_lower'``, ``'causal'``, per-side pairs, padding modes on the functional
form, per-side crops of transposed convolutions) are said to PyTorch with explicit pads: the
pads are computed here, independently of npconv's spec code, and applied with
``torch.nn.functional.pad`` (or cropped off a transposed output) around a padding-free
PyTorch convolution.  Both the fuzz tests and the saved regressions call :func:`check_case`
(refusals: tests/fuzz_refusals.py).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF

import npconv
import npconv.functional as NF
import npconv.grad as G
import npconv.nn as NN
from npconv import select

TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "complex128": 1e-12, "complex64": 1e-5}
ENTRIES = ("functional", "conv", "module")


@dataclass(frozen=True)
class Case:
    """One convolution and how npconv is asked for it.

    ``stride``, ``dilation``, ``padding`` and ``output_padding`` are kept exactly as drawn (an
    int, a tuple, a string or per-side pairs), so the argument parsing is fuzzed too.
    ``batch=None`` is an unbatched input.  ``x_channels``, ``bias_size`` and ``rank_delta``
    only differ from their defaults in refusal cases (a wrong input or bias for the weight).
    """

    n: int
    transposed: bool
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple
    spatial: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    output_padding: object = 0
    padding_mode: str = "zeros"
    batch: int | None = 1
    bias: bool = True
    dtype: str = "float64"
    entry: str = "functional"
    algorithm: str | None = None
    seed: int = 0
    x_channels: int | None = None
    bias_size: int | None = None
    rank_delta: int = 0

    # ---- shapes ------------------------------------------------------------------------
    @property
    def weight_shape(self) -> tuple:
        per_group = max(self.groups, 1)  # groups <= 0 only in refusal cases
        if self.transposed:
            return (self.in_channels, self.out_channels // per_group) + tuple(self.kernel)
        return (self.out_channels, self.in_channels // per_group) + tuple(self.kernel)

    @property
    def input_shape(self) -> tuple:
        channels = self.in_channels if self.x_channels is None else self.x_channels
        shape = (channels,) + tuple(self.spatial)
        shape = shape if self.batch is None else (self.batch,) + shape
        if self.rank_delta > 0:
            return (1,) * self.rank_delta + shape
        return shape[-self.rank_delta:]


# ---- the case's pads, computed independently of npconv.spec ----------------------------

def per_dim(value, n: int) -> tuple:
    """An int or a length-1/length-n sequence as an n-tuple (PyTorch's rule)."""
    if isinstance(value, int):
        return (value,) * n
    return tuple(value) * n if len(value) == 1 else tuple(value)


def explicit_pads(case: Case, spatial=None) -> tuple:
    """(lo, hi) per dim for this case: TensorFlow/ONNX SAME_UPPER for 'same' at any stride
    (PyTorch's 'same' at stride 1), the odd pad before for 'same_lower', all before for 'causal'."""
    n, spatial = case.n, tuple(case.spatial if spatial is None else spatial)
    stride, dilation = per_dim(case.stride, n), per_dim(case.dilation, n)
    reach = [d * (k - 1) for k, d in zip(case.kernel, dilation)]
    padding = case.padding
    if padding == "valid":
        return ((0, 0),) * n
    if padding == "causal":
        return tuple((r, 0) for r in reach)
    if padding in ("same", "same_lower"):
        pads = []
        for size, s, r in zip(spatial, stride, reach):
            total = max((-(-size // s) - 1) * s + r + 1 - size, 0)
            small, large = total // 2, total - total // 2
            pads.append((large, small) if padding == "same_lower" else (small, large))
        return tuple(pads)
    entries = per_dim(padding, n)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in entries)


def torch_padding(case: Case):
    """The padding as PyTorch's own functions take it, or None where PyTorch cannot say it."""
    padding, n = case.padding, case.n
    if isinstance(padding, str):
        stride_one = max(per_dim(case.stride, n)) == 1
        return padding if not case.transposed and (padding == "valid" or (padding == "same" and stride_one)) else None
    if isinstance(padding, int):
        return padding
    if all(isinstance(p, int) for p in padding) and len(padding) in (1, n):
        return per_dim(padding, n)
    return None


# ---- PyTorch -----------------------------------------------------------------------------

def torch_forward(case: Case, tx, tw, tb):
    """PyTorch's output for batched tensors (differentiable, so autograd gives the gradients)."""
    if case.transposed:
        return _torch_transposed(case, tx, tw, tb)
    return _torch_conv(case, tx, tw, tb)


def _torch_conv(case, tx, tw, tb):
    conv = getattr(TF, f"conv{case.n}d")
    stride, dilation = per_dim(case.stride, case.n), per_dim(case.dilation, case.n)
    padding = torch_padding(case)
    if padding is not None and case.padding_mode == "zeros":
        return conv(tx, tw, tb, stride, padding, dilation, case.groups)
    mode = "constant" if case.padding_mode == "zeros" else case.padding_mode
    flat = [side for lo_hi in reversed(explicit_pads(case)) for side in lo_hi]  # F.pad: last dim first
    return conv(TF.pad(tx, flat, mode=mode), tw, tb, stride, 0, dilation, case.groups)


def _torch_transposed(case, tx, tw, tb):
    conv = getattr(TF, f"conv_transpose{case.n}d")
    n = case.n
    stride, dilation, output_padding = (per_dim(v, n) for v in (case.stride, case.dilation, case.output_padding))
    padding = torch_padding(case)
    if padding is not None:
        return conv(tx, tw, tb, stride, padding, output_padding, case.groups, dilation)
    # per-side crops: the whole transposed output, output_padding's rows (only the bias
    # reaches them) appended, then lo cropped before and hi after in each dim
    full = conv(tx, tw, None, stride, 0, 0, case.groups, dilation)
    full = TF.pad(full, [side for op in reversed(output_padding) for side in (0, op)])
    crop = tuple(slice(lo, size - hi) for (lo, hi), size in zip(explicit_pads(case), full.shape[2:]))
    out = full[(slice(None), slice(None)) + crop]
    return out if tb is None else out + tb.reshape((-1,) + (1,) * n)


def torch_module(case: Case):
    """The torch.nn module for this case, or None where torch.nn cannot say it."""
    padding = torch_padding(case)
    if padding is None:
        return None
    return new_torch_module(case, padding)


def new_torch_module(case: Case, padding):
    name = f"ConvTranspose{case.n}d" if case.transposed else f"Conv{case.n}d"
    spelled = {key: _spelled_out(value, case.n) for key, value in
               (("stride", case.stride), ("padding", padding), ("dilation", case.dilation))}
    kwargs = dict(spelled, groups=case.groups, bias=case.bias, padding_mode=case.padding_mode,
                  dtype=getattr(torch, case.dtype))
    if case.transposed:
        kwargs["output_padding"] = _spelled_out(case.output_padding, case.n)
    return getattr(torch.nn, name)(case.in_channels, case.out_channels, case.kernel, **kwargs)


def _spelled_out(value, n: int):
    """A 1-tuple as an n-tuple for torch.nn's modules: their _ntuple passes sequences through
    unchanged and later zips them against the kernel, so (1,) pads or dilates one dim only
    (functional and npconv read it as every dim); any other spelling is left as it is."""
    return value * n if isinstance(value, tuple) and len(value) == 1 else value


@dataclass
class Results:
    """Forward output and gradients (grad_bias None without a bias)."""

    output: np.ndarray
    grad_input: np.ndarray
    grad_weight: np.ndarray
    grad_bias: np.ndarray | None


def torch_results(case: Case, x, w, b, gy_seed: int) -> tuple[Results, np.ndarray]:
    """PyTorch's results and the random grad_output they were computed with."""
    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    tb = None if b is None else torch.from_numpy(b.copy()).requires_grad_()
    module = torch_module(case) if case.entry == "module" else None
    batched_x = tx if case.batch is not None else tx.unsqueeze(0)
    if module is not None:
        with torch.no_grad():
            module.weight.copy_(tw)
            if tb is not None:
                module.bias.copy_(tb)
        y = module(batched_x)
    else:
        y = torch_forward(case, batched_x, tw, tb)
    y = y if case.batch is not None else y.squeeze(0)
    gy = normal(np.random.default_rng(gy_seed), tuple(y.shape), case.dtype)
    y.backward(torch.from_numpy(gy))
    weight_grad, bias_grad = (tw.grad, None if tb is None else tb.grad) if module is None else \
        (module.weight.grad, None if tb is None else module.bias.grad)
    return Results(_numpy(y), _numpy(tx.grad, x.shape), _numpy(weight_grad, w.shape),
                   None if b is None else _numpy(bias_grad, b.shape)), gy


def _numpy(tensor, shape=None) -> np.ndarray:
    """A tensor as an array; a gradient nothing flowed into (an empty batch) as zeros."""
    if tensor is None:
        return np.zeros(shape)
    return tensor.detach().numpy()


# ---- npconv ------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet_torch():
    """'same' with an even kernel: PyTorch warns that it copies the input, which is no news here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
        yield


@contextlib.contextmanager
def forced(algorithm: str | None):
    """Force an algorithm wherever it applies, and always hand the choice back to the planner."""
    select.set_algorithm(algorithm)
    try:
        yield
    finally:
        select.set_algorithm(None)


def npconv_forward(case: Case, x, w, b):
    """npconv's output through the case's entry point; the module too (for its backward)."""
    if case.entry == "module":
        module = npconv_module(case, w, b)
        return module(x), module
    if case.entry == "conv":
        return npconv.conv(x, w, b, **general_kwargs(case)), None
    if case.transposed:
        fn = getattr(NF, f"conv_transpose{case.n}d")
        return fn(x, w, b, case.stride, case.padding, case.output_padding, case.groups, case.dilation), None
    fn = getattr(NF, f"conv{case.n}d")
    mode = {} if case.padding_mode == "zeros" else {"padding_mode": case.padding_mode}  # the default too
    return fn(x, w, b, case.stride, case.padding, case.dilation, case.groups, **mode), None


def npconv_module(case: Case, w, b):
    name = f"ConvTranspose{case.n}d" if case.transposed else f"Conv{case.n}d"
    kwargs = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups,
                  bias=case.bias, padding_mode=case.padding_mode, dtype=getattr(np, case.dtype))
    if case.transposed:
        kwargs["output_padding"] = case.output_padding
    kernel = case.kernel[0] if len(set(case.kernel)) == 1 and case.seed % 2 else case.kernel  # int or tuple
    module = getattr(NN, name)(case.in_channels, case.out_channels, kernel, **kwargs)
    module.load_state_dict({"weight": w, **({} if b is None else {"bias": b})})
    return module


def general_kwargs(case: Case) -> dict:
    kwargs = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    if case.transposed:
        return dict(kwargs, transposed=True, output_padding=case.output_padding)
    return dict(kwargs, padding_mode=case.padding_mode)


def npconv_results(case: Case, x, w, b, gy) -> Results:
    """Forward and every gradient: the functional entry checks the torch.nn.grad-style per-dim
    functions, the primitive's entry the general ones, the module its backward."""
    y, module = npconv_forward(case, x, w, b)
    if module is not None:
        grad_input = module.backward(gy)
        return Results(y, grad_input, module.weight.grad, None if b is None else module.bias.grad)
    if case.entry == "conv":
        kwargs = general_kwargs(case)
        grad_input = G.conv_input(x.shape, w, gy, **kwargs)
        grad_weight = G.conv_weight(x, w.shape, gy, **kwargs)
    else:
        grad_input, grad_weight = _per_dim_grads(case, x, w, gy)
    grad_bias = None if b is None else G.conv_bias(gy, batched=case.batch is not None)
    return Results(y, grad_input, grad_weight, grad_bias)


def _per_dim_grads(case, x, w, gy):
    kind = f"conv_transpose{case.n}d" if case.transposed else f"conv{case.n}d"
    grad_input, grad_weight = getattr(G, f"{kind}_input"), getattr(G, f"{kind}_weight")
    if case.transposed:
        args = (case.stride, case.padding, case.output_padding, case.groups, case.dilation)
        return grad_input(x.shape, w, gy, *args), grad_weight(x, w.shape, gy, *args)
    args = (case.stride, case.padding, case.dilation, case.groups)
    mode = dict(padding_mode=case.padding_mode)
    return grad_input(x.shape, w, gy, *args, **mode), grad_weight(x, w.shape, gy, *args, **mode)


# ---- comparing ---------------------------------------------------------------------------

def operands(case: Case):
    """Standard normal input, weight and bias (finite, moderate: the transforms' territory)."""
    rng = np.random.default_rng(case.seed)
    x = normal(rng, case.input_shape, case.dtype)
    w = normal(rng, case.weight_shape, case.dtype)
    size = case.out_channels if case.bias_size is None else case.bias_size
    b = normal(rng, size, case.dtype) if case.bias else None
    return x, w, b


def normal(rng, shape, dtype: str) -> np.ndarray:
    """Standard normal values; complex: both parts standard normal."""
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def assert_close(what: str, got, want, dtype: str) -> None:
    """Same dtype and shape, max |err| <= tol * max(max |ref|, 1).  The floor of 1 is the size
    of one product of standard normal operands: an output that cancels to near zero still
    carries the rounding of terms of that size, so it cannot be held to its own magnitude."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if want.size == 0:
        return
    scale = max(float(np.abs(want).max()), 1.0)
    err = float(np.abs(got.astype(np.complex128) - want).max()) / scale
    assert err <= TOLERANCE[dtype], f"{what}: relative error {err:.3e} > {TOLERANCE[dtype]:.0e}"


def check_case(case: Case) -> None:
    """npconv's forward and gradients equal PyTorch's for one valid case."""
    x, w, b = operands(case)
    with quiet_torch():
        want, gy = torch_results(case, x, w, b, gy_seed=case.seed + 1)
    with forced(case.algorithm):
        got = npconv_results(case, x, w, b, gy)
    for field in ("output", "grad_input", "grad_weight", "grad_bias"):
        if getattr(want, field) is not None:
            assert_close(field, getattr(got, field), getattr(want, field), case.dtype)
