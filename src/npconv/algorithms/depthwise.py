"""Direct depthwise convolution (groups == in_channels) for small kernels: one multiply-add
of a shifted view per kernel tap, on blocks of channels small enough to stay in cache.
Output channel ``c * m + j`` (m = out_channels / in_channels) reads input channel ``c``.

No window buffer: each tap is a strided view of the block's padded input (a few hundred
KiB, gathered with the padding mode applied: :func:`npconv.windows.padded_block`).  The
first tap writes the output block in place and the others add into it through one scratch
of products.  Blocks are (image, channels) with whole output planes; where the workspace cap
is smaller than one channel's plane and products, a block is a run of output rows (or of
columns of one row, ...) with just the padded rows it reads.
"""

from __future__ import annotations

import math

import numpy as np

from .. import workspace
from ..windows import padded_block

BLOCK_BYTES = 512 * 2**10


def applies(spec, x_shape, w_shape) -> bool:
    return spec.is_depthwise(x_shape[1])


def _reach(spec, runs) -> tuple[int, ...]:
    """Padded input extent read by runs of ``runs`` outputs per spatial dim."""
    return tuple((r - 1) * s + ek for r, s, ek in zip(runs, spec.stride, spec.effective_kernel))


def _block_bytes(spec, m, itemsize, products: bool):
    """Bytes of a block (images, channels, *output runs): its padded input, and the products
    scratch (channels * m per output) when ``products``."""
    def block_bytes(extents):
        count, channels, runs = extents[0], extents[1], extents[2:]
        padded = count * channels * math.prod(_reach(spec, runs))
        return itemsize * (padded + (count * channels * m * math.prod(runs) if products else 0))
    return block_bytes


def min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    """One channel's padded window of one output, and its m products."""
    return _block_bytes(spec, w_shape[0] // x_shape[1], itemsize, True)((1, 1) + (1,) * spec.ndim)


def weight_grad_min_workspace(spec, x_shape, w_shape, itemsize) -> int:
    return _block_bytes(spec, w_shape[0] // x_shape[1], itemsize, False)((1, 1) + (1,) * spec.ndim)


def _blocks(spec, x_shape, m, out_spatial, itemsize, products: bool):
    """Boxes (images, channels, *out runs): about BLOCK_BYTES of padded input (down to one
    channel's whole plane), and under the workspace cap (down to single outputs)."""
    size = _block_bytes(spec, m, itemsize, products)

    def fits(extents):
        padded = _block_bytes(spec, 0, itemsize, False)(extents)
        cached = padded <= BLOCK_BYTES or (extents[1] == 1 and extents[2:] == tuple(out_spatial))
        return cached and size(extents) <= workspace.limit()
    return workspace.boxes((x_shape[0], x_shape[1]) + tuple(out_spatial), fits)


def _padded(x, spec, pads, box):
    """The padded input block read by a box of outputs, in scratch."""
    runs = workspace.extents(box[2:])
    start = tuple(run.start * s for run, s in zip(box[2:], spec.stride))
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start) + _reach(spec, runs)
    out = workspace.scratch("depthwise padded block", shape, x.dtype)
    return padded_block(x[box[0], box[1]], pads, spec.padding_mode, start, shape[2:], out)


def _tap_view(padded, tap, spec, out_spatial):
    return padded[(slice(None), slice(None)) + tuple(
        slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(tap, spec.dilation, spec.stride, out_spatial))]


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    n, c = x.shape[:2]
    m = w.shape[0] // c
    workspace.require({"depthwise_direct": min_workspace(spec, x.shape, w.shape, x.itemsize)})
    weights = w.reshape((c, m) + spec.kernel_size)
    out = np.empty((n, c, m) + tuple(out_spatial), x.dtype)
    for box in _blocks(spec, x.shape, m, out_spatial, x.itemsize, products=True):
        padded, runs = _padded(x, spec, pads, box), workspace.extents(box[2:])
        target = out[box[:2] + (slice(None),) + box[2:]]  # (count, channels, m, *runs)
        products = workspace.scratch("depthwise products", target.shape, x.dtype)
        for number, tap in enumerate(np.ndindex(*spec.kernel_size)):
            tap_w = weights[(box[1], slice(None)) + tap].reshape((1, -1, m) + (1,) * spec.ndim)
            np.multiply(_tap_view(padded, tap, spec, runs)[:, :, None], tap_w, out=products if number else target)
            if number:
                target += products
    return out.reshape((n, c * m) + tuple(out_spatial))


def weight_grad(x, gy, spec, pads) -> np.ndarray:
    n, c = x.shape[:2]
    m = gy.shape[1] // c
    workspace.require({"depthwise_direct": weight_grad_min_workspace(spec, x.shape, gy.shape[1:2] + (1,),
                                                                     x.itemsize)})
    grads = gy.reshape((n, c, m) + gy.shape[2:])
    gw = np.zeros((c, m) + spec.kernel_size, x.dtype)
    dims = "xyz"[:spec.ndim]
    for box in _blocks(spec, x.shape, m, gy.shape[2:], x.itemsize, products=False):
        padded, runs = _padded(x, spec, pads, box), workspace.extents(box[2:])
        g_block = grads[box[:2] + (slice(None),) + box[2:]]
        for tap in np.ndindex(*spec.kernel_size):
            view = _tap_view(padded, tap, spec, runs)
            gw[(box[1], slice(None)) + tap] += np.einsum(f"nc{dims},ncm{dims}->cm", view, g_block)
    return gw.reshape((c * m, 1) + spec.kernel_size)
