"""Helpers the test modules share: the parity grids and their PyTorch oracles, and the rule
for optional oracles (skipped without them, except under CI, where their absence fails).

Test modules import from here (or from conftest), never from one another.
"""

import importlib
import math
import os
import shutil
from types import ModuleType
from typing import NoReturn

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

# ---- the parity grids (test_torch_parity, test_grad_parity, test_algorithms) -----------------
SPATIAL = {1: (11,), 2: (7, 6), 3: (5, 4, 5)}
CHANNELS = {"dense": (3, 4, 1), "grouped": (4, 6, 2), "depthwise": (4, 4, 4), "depthwise-x2": (3, 6, 3)}
DTYPES = {"f32": np.float32, "f64": np.float64}

CONV_GEOMETRIES = {
    "k3": dict(k=3),
    "k3-s2": dict(k=3, stride=2),
    "k2-p1-d2": dict(k=2, padding=1, dilation=2),
    "k3-same": dict(k=3, padding="same"),
    "k4-same-d2": dict(k=4, padding="same", dilation=2),
    "k3-valid-s3": dict(k=3, padding="valid", stride=3),
    "k3-pairs-s2": dict(k=3, padding=((2, 0), (0, 1), (1, 2)), stride=2),
    "k3-same-s2": dict(k=3, padding="same", stride=2),
    "k3-p1-reflect": dict(k=3, padding=1, padding_mode="reflect"),
    "k3-p2-replicate-s2": dict(k=3, padding=2, padding_mode="replicate", stride=2),
    "k2-circular-d2": dict(k=2, padding=(1, 2, 1), padding_mode="circular", dilation=2),
    "k3-same-reflect": dict(k=3, padding="same", padding_mode="reflect"),
    "mixed": dict(k=(3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 2), dilation=(2, 1, 1)),
    "k3-same-s213-circular": dict(k=3, padding="same", stride=(2, 1, 3), padding_mode="circular"),
    "k1": dict(k=1),
    "k1-s2": dict(k=1, stride=2, dilation=3),
}
TRANSPOSED_GEOMETRIES = {
    "k3": dict(k=3),
    "k3-s2": dict(k=3, stride=2),
    "k4-s2-p1": dict(k=4, stride=2, padding=1),
    "k3-s2-p1-op1": dict(k=3, stride=2, padding=1, output_padding=1),
    "k3-d2-op1": dict(k=3, dilation=2, output_padding=1),
    "k2-s3-op2": dict(k=2, stride=3, output_padding=2),
    "mixed": dict(k=(3, 2, 1), stride=(2, 1, 3), padding=(1, 0, 0), dilation=(1, 2, 1),
                  output_padding=(1, 1, 2)),
    "pairs": dict(k=3, stride=2, padding=((1, 0), (0, 2), (2, 1))),
}


def first_n(value, n):
    """A geometry entry for n spatial dims: a tuple's first n items, anything else as it is."""
    return tuple(value[:n]) if isinstance(value, tuple) else value


def per_dim(value, n):
    """A geometry entry as an n-tuple (an int repeated n times)."""
    return first_n(value, n) if isinstance(value, tuple) else (value,) * n


def parity_grid(geometries):
    """pytest.mark.parametrize arguments for every (dims, channels, geometry, dtype) of the grid:
    ``index,case`` with ids like ``2d-grouped-k3-s2-f32`` (the index seeds the operands)."""
    cases = list(enumerate((n, channels, geometry, dtype) for n in SPATIAL for channels in CHANNELS
                           for geometry in geometries for dtype in DTYPES))
    return dict(argnames="index,case", argvalues=cases,
                ids=[f"{n}d-{c}-{g}-{d}" for _, (n, c, g, d) in cases])


def grid_operands(n, channels, geometry, dtype, transposed, index):
    """Random (x, w, b, groups, params) for one grid case, seeded by ``index``; the bias is
    None at odd indices; params are the geometry's keyword arguments cut to n dims."""
    c_in, c_out, groups = CHANNELS[channels]
    kernel = per_dim(geometry["k"], n)
    rng = np.random.default_rng(index)
    w_shape = (c_in, c_out // groups) if transposed else (c_out, c_in // groups)
    x = rng.standard_normal((2, c_in) + SPATIAL[n]).astype(dtype)
    w = rng.standard_normal(w_shape + kernel).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if index % 2 == 0 else None
    params = {key: first_n(value, n) for key, value in geometry.items() if key != "k"}
    return x, w, b, groups, params


def documented_pads(padding, n, kernel, stride, dilation, spatial):
    """(lo, hi) pads by the documented rules, written out independently of npconv's spec."""
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        pads = []
        for i, k, s, d in zip(spatial, kernel, stride, dilation):
            out = math.ceil(i / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - i, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(padding, int):
        return [(padding, padding)] * n
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


# ---- PyTorch, the oracle --------------------------------------------------------------------
def torch_conv(x, w, b, groups, params, n):
    """PyTorch's conv of a grid case; npconv's extensions (per-side pads, 'same' at stride > 1,
    padding modes) through F.pad with :func:`documented_pads`, then an unpadded conv."""
    conv = getattr(TF, f"conv{n}d")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    mode = params.get("padding_mode", "zeros")
    padding = params.get("padding", 0)
    stride = per_dim(params.get("stride", 1), n)
    dilation = per_dim(params.get("dilation", 1), n)
    native = mode == "zeros" and not (padding == "same" and max(stride) > 1) and not (
        isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding))
    if native:
        return conv(tx, tw, tb, stride, padding, dilation, groups)
    pads = documented_pads(padding, n, w.shape[2:], stride, dilation, x.shape[2:])
    flat = [p for pair in reversed(pads) for p in pair]
    padded = TF.pad(tx, flat, mode="constant" if mode == "zeros" else mode)
    return conv(padded, tw, tb, stride, 0, dilation, groups)


def torch_conv_transpose(x, w, b, groups, params, n):
    """PyTorch's transposed conv of a grid case; per-side pad pairs crop its full scatter."""
    conv_t = getattr(TF, f"conv_transpose{n}d")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    padding = params.get("padding", 0)
    stride, dilation = params.get("stride", 1), params.get("dilation", 1)
    output_padding = params.get("output_padding", 0)
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):  # per-side pairs: crop
        full = conv_t(tx, tw, tb, stride, 0, output_padding, groups, dilation)
        crop = tuple(slice(lo, full.shape[2 + d] - hi) for d, (lo, hi) in enumerate(padding))
        return full[(slice(None), slice(None)) + crop]
    return conv_t(tx, tw, tb, stride, padding, output_padding, groups, dilation)


def torch_gradients(oracle, x, w, b, groups, params, n, seed):
    """(gy, dx, dw, db): torch's gradients of <oracle(x, w, b), gy> for a random gy (db is None
    without a bias); ``oracle`` takes tensors, see :func:`tensor_oracle`."""
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    y = oracle(tx, tw, tb, groups, params, n)
    gy = np.random.default_rng(seed).standard_normal(tuple(y.shape)).astype(x.dtype)
    y.backward(torch.from_numpy(gy))
    return gy, tx.grad, tw.grad, None if b is None else tb.grad


def tensor_oracle(torch_fn):
    """:func:`torch_conv` or :func:`torch_conv_transpose` taking (grad-tracking) tensors
    instead of arrays."""
    def oracle(tx, tw, tb, groups, params, n):
        with _TensorPassthrough():
            return torch_fn(tx, tw, tb, groups, params, n)
    return oracle


class _TensorPassthrough:
    """Let torch.from_numpy accept tensors unchanged while an oracle builds its graph."""

    def __enter__(self):
        self._original = torch.from_numpy
        torch.from_numpy = lambda a: a if isinstance(a, torch.Tensor) else self._original(a)

    def __exit__(self, *exc):
        torch.from_numpy = self._original


# ---- optional oracles ---------------------------------------------------------------------
def on_ci() -> bool:
    """Whether the CI variable is set (to anything but '', '0', 'false', 'no' or 'off')."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def oracle_missing(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail with it under CI (where every optional oracle is installed).
    Works in a test, a fixture, or at a test module's top level."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: optional oracles must be installed)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module_name: str, why: str) -> ModuleType:
    """The module ``module_name`` (e.g. "PIL.Image"), imported; where it cannot be imported,
    :func:`oracle_missing` ("<why> needs <module_name>") skips, or fails under CI."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        problem = error  # reported outside the handler: no "during handling" chain in the report
    oracle_missing(f"{why} needs {module_name} ({problem})")


def require_executable(name: str, why: str) -> str:
    """The path of the program ``name`` (an absolute path, or a command looked up on PATH);
    where it is missing or not executable, :func:`oracle_missing` skips, or fails under CI."""
    path = name if os.path.isabs(name) else shutil.which(name)
    if path is None or not (os.path.isfile(path) and os.access(path, os.X_OK)):
        oracle_missing(f"{why} needs the program {name}")
    return path


def onnx_node_case_data(case):
    """An onnx backend node case as (model, [(inputs, outputs), ...]): in memory (onnx >= 1.19) or
    read from its model_dir on disk."""
    if case.model_dir is None:
        return case.model, case.data_sets
    import glob
    import os

    import onnx
    from onnx import numpy_helper
    model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
    sets = []
    for folder in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set_*"))):
        read = [[numpy_helper.to_array(onnx.load_tensor(f)) for f in
                 sorted(glob.glob(os.path.join(folder, f"{kind}_*.pb")))] for kind in ("input", "output")]
        sets.append(tuple(read))
    return model, sets


def onnx_node_cases(name_part, op_type):
    """The onnx package's backend node cases of one operator ({name: case}), generated in memory:
    those whose name holds ``name_part`` or whose graph has an ``op_type`` node."""
    import warnings

    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():  # generating other operators' data warns about overflows
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return {c.name: c for c in cases if name_part in c.name
            or (c.model is not None and any(n.op_type == op_type for n in c.model.graph.node))}
