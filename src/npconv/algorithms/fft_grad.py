"""The FFT algorithm's weight gradient (depthwise, stride 1): the input's spectra times the
conjugated spectra of grad_output, summed over images (and over the blocks of the overlap-save
layout), then one inverse transform; the same plans, tiles and scratch accounting as the
forward pass in :mod:`.fft`.  Complex operands (``x``, already conjugated by
:mod:`npconv.grad`, and ``gy``) take full complex spectra (:mod:`.fft_transforms`)."""

from __future__ import annotations

import math

import numpy as np

from .. import workspace
from .fft import Plan, _box_bytes, _boxes, _fallbacks, _fill, _input_spectrum, _padded_sizes, _tile_spectra
from .fft_transforms import full_inverse, reversed_spectrum


def weight_grad_applies(spec, x_shape, w_shape) -> bool:
    return spec.is_depthwise(x_shape[1]) and spec.unit_stride


def _whole_grad_bytes(spec, x_shape, c_out, r, plan) -> int:
    """Input spectrum (after its copies), then grad_output's zero-filled copy and spectrum,
    their sum over images, and the inverse of it."""
    sizes, _ = _padded_sizes(spec, x_shape[2:], spec.pads(x_shape[2:]))
    padded = 0 if spec.padding_mode == "zeros" else math.prod(sizes)
    points, spectrum_bytes = plan.points, plan.spectrum_bytes(r)
    inputs, grads = x_shape[0] * x_shape[1], x_shape[0] * c_out
    return max(inputs * (padded * r + points * r + spectrum_bytes),
               inputs * spectrum_bytes + grads * (points * r + spectrum_bytes),
               (inputs + grads + c_out) * spectrum_bytes,
               c_out * (2 * spectrum_bytes + points * r))


def _blocked_grad_bytes(spec, x_shape, c_out, r, plan, images, tile_rows) -> int:
    """The sum of the products (C_out spectra), its inverse, and one box."""
    total = c_out * plan.spectrum_bytes(r)
    return max(total + _box_bytes(spec, x_shape, c_out, r, plan, images, tile_rows, grad=True),
               c_out * (2 * plan.spectrum_bytes(r) + plan.points * r))


def _least_grad_bytes(spec, x_shape, c_out, itemsize, plan) -> int:
    if plan.blocked:
        return _blocked_grad_bytes(spec, x_shape, c_out, itemsize, plan, 1, 1)
    return _whole_grad_bytes(spec, x_shape, c_out, itemsize, plan)


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize, complex_operands=False) -> int:
    """As :func:`.fft.min_workspace`, for the weight gradient."""
    return min(_least_grad_bytes(spec, x_shape, w_shape[0], itemsize, plan)
               for plan in _fallbacks(spec, x_shape, complex_operands)[1:])


def _correlated_taps(total, spec, lows, plan, dtype):
    """gw[c, t] = z[t * d - lo] (mod P) of the inverse of the summed products."""
    axes, lengths = tuple(range(2, 2 + spec.ndim)), plan.lengths
    z = full_inverse(total.reshape((total.shape[0], 1) + total.shape[1:]), lengths, axes, plan.complex)
    taps = [(np.arange(k) * d - lo) % p for k, d, lo, p in zip(spec.kernel_size, spec.dilation, lows, lengths)]
    return np.ascontiguousarray(z[(slice(None), slice(None)) + np.ix_(*taps)], dtype=dtype)


def _summed_products(xf, gf, m):
    """sum over images (or tiles) of x's spectrum times grad_output's reversed one: (C_out, *F)."""
    n, c_in, freq = xf.shape[0], xf.shape[1], xf.shape[2:]
    products = gf.reshape((n, c_in, m) + freq)
    products *= xf[:, :, None]
    return products.sum(axis=0).reshape((c_in * m,) + freq)


def _weight_grad_whole(x, gy, spec, pads, plan):
    axes, m = tuple(range(2, 2 + spec.ndim)), gy.shape[1] // x.shape[1]
    xf, lows = _input_spectrum(x, spec, pads, plan.lengths)
    gf = reversed_spectrum(gy, plan.lengths, axes)
    total = _summed_products(xf, gf, m)
    del xf, gf
    return _correlated_taps(total, spec, lows, plan, x.dtype)


def _grad_tile_spectra(gy, plan, box, ndim):
    """Reversed spectra of the box's grad_output tiles, zero-filled to L: (images * tiles, C_out, *F)."""
    images, rows = box
    tiles = (rows.stop - rows.start,) + plan.tiles[1:]
    buffer = np.empty((images.stop - images.start, gy.shape[1]) + tuple(t * b for t, b in zip(tiles, plan.blocks)),
                      gy.dtype)
    _fill(buffer, gy[images], (0,) * ndim, (rows.start * plan.blocks[0],) + (0,) * (ndim - 1))
    split = buffer.reshape(buffer.shape[:2] + tuple(v for t, b in zip(tiles, plan.blocks) for v in (t, b)))
    order = (0,) + tuple(2 + 2 * d for d in range(ndim)) + (1,) + tuple(3 + 2 * d for d in range(ndim))
    gf = reversed_spectrum(split.transpose(order), plan.lengths, tuple(range(-ndim, 0)))
    return gf.reshape((-1, gy.shape[1]) + gf.shape[-ndim:])


def _weight_grad_blocked(x, gy, spec, pads, plan):
    r, c_out, m = x.itemsize, gy.shape[1], gy.shape[1] // x.shape[1]
    boxes, need = _blocked_grad_schedule(spec, x.shape, c_out, r, plan)
    workspace.make_room(need)
    total = np.zeros((c_out,) + plan.spectrum_shape, np.result_type(x, np.complex64))
    for box in boxes:
        xf = _tile_spectra(x, spec, pads, plan, box)
        total += _summed_products(xf, _grad_tile_spectra(gy, plan, box, spec.ndim), m)
        del xf
    return _correlated_taps(total, spec, (0,) * spec.ndim, plan, x.dtype)


def _chosen_grad_plan(spec, x_shape, c_out, itemsize, complex_operands=False) -> Plan:
    plans = _fallbacks(spec, x_shape, complex_operands)
    return next((p for p in plans if _least_grad_bytes(spec, x_shape, c_out, itemsize, p) <= workspace.limit()),
                plans[-1])


def _blocked_grad_schedule(spec, x_shape, c_out, r, plan):
    """(the boxes, the scratch they need): the largest boxes that fit beside the summed spectra."""
    total_bytes = c_out * plan.spectrum_bytes(r)
    boxes = _boxes(spec, x_shape, c_out, r, plan, total_bytes, grad=True)
    largest = workspace.extents(boxes[0])
    return boxes, max(total_bytes + _box_bytes(spec, x_shape, c_out, r, plan, *largest, grad=True),
                      c_out * (2 * plan.spectrum_bytes(r) + plan.points * r))


def planned_weight_grad_workspace(spec, x_shape, w_shape, itemsize, complex_operands=False) -> int:
    """The scratch a weight-gradient call makes under the current cap."""
    plan = _chosen_grad_plan(spec, x_shape, w_shape[0], itemsize, complex_operands)
    if plan.blocked:
        return _blocked_grad_schedule(spec, x_shape, w_shape[0], itemsize, plan)[1]
    return _whole_grad_bytes(spec, x_shape, w_shape[0], itemsize, plan)


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    """Depthwise weight gradient, stride 1: gw[c, t] = sum_n (padded x[n, c] correlated with gy[n, c])[t * d]
    (complex: x and gy of one complex dtype, neither conjugated here)."""
    r, c_out, complex_operands = x.itemsize, gy.shape[1], np.iscomplexobj(x)
    workspace.require({"fft": weight_grad_min_workspace(spec, x.shape, (c_out, 1) + spec.kernel_size, r,
                                                        complex_operands)})
    plan = _chosen_grad_plan(spec, x.shape, c_out, r, complex_operands)
    if plan.blocked:
        return _weight_grad_blocked(x, gy, spec, pads, plan)
    workspace.make_room(_whole_grad_bytes(spec, x.shape, c_out, r, plan))
    return _weight_grad_whole(x, gy, spec, pads, plan)
