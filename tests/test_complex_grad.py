"""Complex gradients (issue 19): npconv.grad against torch autograd and complex finite differences.

The convention is torch autograd's: for a real loss L, the gradient of a complex z is
dL/dRe(z) + i dL/dIm(z).  With grad_output g the loss is L = Re(sum(conj(g) * y)), so
``y.backward(g)`` in torch gives that gradient.  Oracle 1: torch autograd on the forward grid's
geometries (where torch's CPU build has the complex backward: a NotImplementedError or
RuntimeError drops a case to oracle 2).  Oracle 2: central differences of L, computed with
npconv's own complex forward in complex128 (step 1e-6; L is linear in each operand, so the
difference is exact up to rounding), over a seeded subset of elements on the grid and every
element on tiny shapes.
"""

import numpy as np
import pytest
import torch

import npconv
import npconv.grad as G

from conftest import assert_matches
from helpers import (CHANNELS, CONV_GEOMETRIES, SPATIAL, TRANSPOSED_GEOMETRIES, grid_operands, tensor_oracle,
                     torch_conv, torch_conv_transpose)

COMPLEX = {"c64": np.complex64, "c128": np.complex128}
FD_TOLERANCE, FD_STEP = 1e-7, 1e-6
GRID_TRANSPOSED = dict(TRANSPOSED_GEOMETRIES, **{"k3-valid-s2-op1": dict(k=3, padding="valid", stride=2,
                                                                         output_padding=1)})


def gradient_grid(geometries, seed):
    """parametrize arguments: every (dims, geometry), the channels (dense, grouped, depthwise,
    depthwise-x2) and the complex dtype drawn by a seeded choice; ``index,case``."""
    draw = np.random.default_rng(seed)
    cases = list(enumerate((n, str(draw.choice(list(CHANNELS))), geometry, str(draw.choice(list(COMPLEX))))
                           for n in SPATIAL for geometry in geometries))
    return dict(argnames="index,case", argvalues=cases, ids=[f"{n}d-{c}-{g}-{d}" for _, (n, c, g, d) in cases])


def _random_complex(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def complex_operands(n, channels, geometry, dtype, transposed, index):
    """A grid case's (x, w, b, groups, params) with random real and imaginary parts."""
    x, w, b, groups, params = grid_operands(n, channels, geometry, np.float64, transposed, index)
    rng = np.random.default_rng(200_000 + index)
    x, w, b = [None if a is None else (a + 1j * rng.standard_normal(a.shape)).astype(dtype) for a in (x, w, b)]
    return x, w, b, groups, params


def torch_params(params, transposed):
    return dict(params, padding=0) if transposed and params.get("padding") == "valid" else params


def torch_complex_gradients(x, w, b, gy, groups, params, n, transposed):
    """torch autograd's (dx, dw, db) of y.backward(gy), or None where torch cannot."""
    oracle = tensor_oracle(torch_conv_transpose if transposed else torch_conv)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    try:
        y = oracle(tx, tw, tb, groups, torch_params(params, transposed), n)
        y.backward(torch.from_numpy(gy))
    except (NotImplementedError, RuntimeError):
        return None
    return tx.grad, tw.grad, None if tb is None else tb.grad


def forward_kwargs(params, groups, transposed):
    """npconv.conv's keyword arguments for a grid case."""
    return dict(params, groups=groups, transposed=transposed)


def finite_difference_gradient(loss, array, indices):
    """dL/dRe + i dL/dIm at ``indices`` (flat) of ``array``, by central differences of ``loss``."""
    grads = []
    for flat in indices:
        parts = []
        for unit in (1.0, 1j):
            bumped = [array.copy(), array.copy()]
            bumped[0].flat[flat] += FD_STEP * unit
            bumped[1].flat[flat] -= FD_STEP * unit
            parts.append((loss(bumped[0]) - loss(bumped[1])) / (2 * FD_STEP))
        grads.append(parts[0] + 1j * parts[1])
    return np.array(grads)


def check_finite_differences(x, w, b, gy, kwargs, grads, n_elements, seed):
    """Each of (gx, gw, gb) at ``n_elements`` seeded elements (all for n_elements=None) against
    central differences of L = Re(sum(conj(gy) * conv(x, w, b)))."""
    def loss_of(which):
        def loss(array):
            operands = [x, w, b]
            operands[which] = array
            return float(np.real(np.vdot(gy, npconv.conv(*operands, **kwargs))))
        return loss
    rng = np.random.default_rng(seed)
    for which, (operand, grad) in enumerate(zip((x, w, b), grads)):
        if operand is None:
            continue
        count = operand.size if n_elements is None else min(n_elements, operand.size)
        indices = rng.choice(operand.size, count, replace=False)
        numeric = finite_difference_gradient(loss_of(which), operand, indices)
        err = np.abs(grad.flat[indices] - numeric).max() / max(np.abs(grad).max(), 1e-300)
        assert err <= FD_TOLERANCE, f"operand {which}: finite differences differ by {err:.2e} (relative)"


def _per_dim_grads(n, transposed, x, w, gy, groups, params, batched):
    """npconv.grad's per-dim functions (torch.nn.grad's signatures), batched or not."""
    name = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    grad_input, grad_weight = getattr(G, f"{name}_input"), getattr(G, f"{name}_weight")
    xs, gys = (x, gy) if batched else (x[0], gy[0])
    settings = dict(stride=params.get("stride", 1), padding=params.get("padding", 0),
                    dilation=params.get("dilation", 1), groups=groups)
    if transposed:
        settings["output_padding"] = params.get("output_padding", 0)
    else:
        settings["padding_mode"] = params.get("padding_mode", "zeros")
    gx, gw = grad_input(xs.shape, w, gys, **settings), grad_weight(xs, w.shape, gys, **settings)
    return (gx, gw) if batched else (gx[None], gw)


def _general_grads(x, w, gy, kwargs, batched):
    """npconv.grad.conv_input / conv_weight, batched or not."""
    xs, gys = (x, gy) if batched else (x[0], gy[0])
    gx, gw = G.conv_input(xs.shape, w, gys, **kwargs), G.conv_weight(xs, w.shape, gys, **kwargs)
    return (gx if batched else gx[None]), gw


def check_case(index, case, geometries, transposed):
    n, channels, geometry, dtype_name = case
    dtype = COMPLEX[dtype_name]
    x, w, b, groups, params = complex_operands(n, channels, geometries[geometry], dtype, transposed, index)
    batched = index % 3 != 0
    x = x if batched else x[:1]
    kwargs = forward_kwargs(params, groups, transposed)
    gy = _random_complex(np.random.default_rng(index), npconv.conv(x, w, b, **kwargs).shape, dtype)
    if index % 2:
        gx, gw = _per_dim_grads(n, transposed, x, w, gy, groups, params, batched)
    else:
        gx, gw = _general_grads(x, w, gy, kwargs, batched)
    gb = None if b is None else G.conv_bias(gy if batched else gy[0], batched=batched)
    from_torch = torch_complex_gradients(x, w, b, gy, groups, params, n, transposed)
    if from_torch is not None:
        for got, want, what in zip((gx, gw, gb), from_torch, ("grad_input", "grad_weight", "grad_bias")):
            if want is not None:
                assert_matches(got, want, dtype, what)
    as128 = [None if a is None else a.astype(np.complex128) for a in (x, w, b, gy)]
    grads128 = list(_general_grads(as128[0], as128[1], as128[3], kwargs, True))
    grads128.append(None if b is None else G.conv_bias(as128[3]))
    check_finite_differences(*as128, kwargs, grads128, n_elements=2, seed=index)


@pytest.mark.parametrize(**gradient_grid(CONV_GEOMETRIES, seed=19))
def test_complex_conv_gradients_match_autograd_and_finite_differences(index, case):
    check_case(index, case, CONV_GEOMETRIES, transposed=False)


@pytest.mark.parametrize(**gradient_grid(GRID_TRANSPOSED, seed=20))
def test_complex_conv_transpose_gradients_match_autograd_and_finite_differences(index, case):
    check_case(index, case, GRID_TRANSPOSED, transposed=True)


TINY_CASES = {
    "1d-s2-p1-g2": ((1, 2, 6), (4, 1, 3), dict(stride=2, padding=1, groups=2)),
    "1d-reflect-d2": ((2, 2, 7), (2, 2, 2), dict(padding=2, dilation=2, padding_mode="reflect")),
    "2d-replicate-pairs": ((1, 1, 3, 4), (2, 1, 2, 3), dict(padding=((1, 0), (2, 1)), padding_mode="replicate")),
    "2d-circular-same-s2": ((1, 2, 3, 4), (2, 1, 3, 2), dict(padding="same", stride=2, groups=2,
                                                             padding_mode="circular")),
    "3d-p1": ((1, 1, 2, 3, 3), (1, 1, 2, 2, 2), dict(padding=1)),
    "1d-transposed-s2-op1": ((1, 2, 4), (2, 2, 3), dict(stride=2, padding=1, output_padding=1, transposed=True)),
    "2d-transposed-d2-g2": ((2, 2, 3, 3), (2, 1, 2, 2), dict(dilation=2, groups=2, transposed=True)),
    "3d-transposed-s21": ((1, 2, 2, 3, 2), (2, 1, 2, 2, 1), dict(stride=(2, 1, 2), transposed=True)),
}


@pytest.mark.parametrize("case", TINY_CASES.values(), ids=TINY_CASES.keys())
def test_complex_gradients_match_finite_differences_at_every_element(case):
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(len(x_shape) * 10 + w_shape[-1])
    x, w = _random_complex(rng, x_shape), _random_complex(rng, w_shape)
    c_out = w_shape[1] * kwargs.get("groups", 1) if kwargs.get("transposed") else w_shape[0]
    b = _random_complex(rng, (c_out,))
    gy = _random_complex(rng, npconv.conv(x, w, b, **kwargs).shape)
    grads = [G.conv_input(x.shape, w, gy, **kwargs), G.conv_weight(x, w.shape, gy, **kwargs), G.conv_bias(gy)]
    check_finite_differences(x, w, b, gy, kwargs, grads, n_elements=None, seed=0)


@pytest.mark.parametrize("operand", ["input", "weight"])
def test_a_real_operand_with_a_complex_partner_gets_torchs_complex_gradient(operand):
    """Mixed operands: the gradients are complex (torch needs the real operand promoted first;
    the real one's gradient is then complex too, and its real part is what a real leaf gets)."""
    rng = np.random.default_rng(3)
    x, w = _random_complex(rng, (2, 4, 7, 6)), _random_complex(rng, (6, 2, 3, 3))
    if operand == "input":
        x = x.real.copy()
    else:
        w = w.real.copy()
    kwargs = dict(stride=2, padding=1, groups=2)
    gy = _random_complex(rng, npconv.conv(x, w, **kwargs).shape)
    tx, tw = (torch.from_numpy(a.astype(np.complex128)).requires_grad_() for a in (x, w))
    torch.nn.functional.conv2d(tx, tw, **kwargs).backward(torch.from_numpy(gy))
    assert_matches(G.conv2d_input(x.shape, w, gy, **kwargs), tx.grad, np.complex128, "grad_input")
    assert_matches(G.conv2d_weight(x, w.shape, gy, **kwargs), tw.grad, np.complex128, "grad_weight")
