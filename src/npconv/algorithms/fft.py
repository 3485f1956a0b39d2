"""FFT convolution for large kernels (depthwise and dense), with ``scipy.fft``: the convolution
theorem (a correlation is a product of spectra) made cheap by the fast Fourier transform of
Cooley & Tukey 1965, "An Algorithm for the Machine Calculation of Complex Fourier Series";
long inputs in blocks by overlap-save (overlap-add's dual; Stockham 1966, "High-speed
convolution and correlation").

Per spatial dim, with input ``I``, pads ``(lo, hi)``, effective kernel ``E = d (k - 1) + 1``
and ``U = I + lo + hi - E + 1`` stride-1 outputs, the correlation
``z[u] = sum_t w[t] x[u + t - lo]`` is computed in one of two layouts (read at ``o * stride``):

- **whole map**: one circular correlation of length ``P = next_fast_len(max(E, U, I +
  max(lo, hi)))`` — nothing that wraps lands on a kept output, so zero padding needs no
  padded copy: the low pad is a rotation of the result (RepLKNet 27x27 on 14x14: 27 points
  a side instead of the 40 of ``I + lo + hi``).  Other padding modes transform a padded copy.
- **overlap-save blocks** (Oppenheim & Schafer, *Discrete-Time Signal Processing*, 8.7):
  the stride-1 outputs are cut into tiles of ``B`` (a multiple of the stride); each tile
  reads ``L = B + E - 1`` padded inputs (``L`` a fast length, ``B`` about
  ``BLOCK_PER_KERNEL`` kernels), so every transform is ``L`` long whatever the map.  The
  tiles are strided views of a padded buffer; their spectra, the kernel's (of size ``L``)
  and the outputs are made a box of images x tile rows at a time, as many as the workspace
  cap allows — so large maps run under any cap (2048x2048, 8 channels, 31x31: the whole map
  needs 450 MB of spectra; blocks run in 1.4-1.7 s where the whole map took 2.3 s).

Dilation is a kernel with holes.  Depthwise: one product per channel; dense: one small
complex GEMM per frequency.  The inverse runs one axis at a time and drops the rows no
output reads before the next axis (1.3-1.6x faster than ``irfftn``, and no hidden copy).

**Kept spectra.**  The kernel's spectrum depends only on the weights: up to
``KEPT_SPECTRA`` of them are kept per thread between calls (RepLKNet's layers run forward
with the same weights every step).  Each lives in a :func:`npconv.workspace.scratch` buffer
beside a private copy of its weights, so it counts against the workspace cap and is dropped,
least recently used first, when another call needs the room; it is used only while
``np.array_equal(copy, weights)`` — an in-place change of the weights is never served stale.
A spectrum is kept only when the call still fits under the cap with it.

**Complex operands** (issue 19) take full spectra (``fftn``/``ifft``, :mod:`.fft_transforms`)
in the same plans and code: on two cores, native against Gauss's three real FFT convolutions,
complex64/complex128, median of 5 — (1,8,256,256) 8x31x31 128/183 ms vs 547/775,
RepLKNet depthwise (1,64,28,28) 31x31 11/19 ms vs 32/46 (weight gradient 18/27 vs 30/47),
1-D (4,16,4096) 16x31 28/44 ms vs 56/83 — so the registry marks it ``complex_native``.

The weight gradient is in :mod:`.fft_grad`, the kept spectra in :mod:`.fft_spectra`, the
transforms chosen by dtype in :mod:`.fft_transforms`.

Scratch: :func:`min_workspace` is the least of the two layouts (blocks: one image and one
row of tiles at a time), each counted stage by stage, buffer by buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import as_strided

from .. import workspace
from ..windows import padded_copy
from .fft_spectra import KEPT_SPECTRA, forget_kept_spectra, kept_spectrum  # noqa: F401  (re-exported)
from .fft_spectra import keep as keep_spectrum
from .fft_transforms import inverse, product, reversed_spectrum, spectrum, spectrum_length

BLOCK_PER_KERNEL = 8  # tile outputs per effective kernel length (measured 6-12 alike on 2048x2048)
MIN_BLOCK = 32
BLOCKED_FROM_TILES = 4  # blocks when a dim has this many tiles (512x512, 31x31: 2-3 tiles, whole map as fast)


# ---- geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The transforms' layout: FFT ``lengths``; blocked: stride-1 outputs per tile ``blocks``
    and tiles per dim ``tiles`` (whole map: ``blocks`` = ``tiles`` = None); ``complex``:
    full spectra of complex operands (else the half spectra of real ones)."""

    lengths: tuple
    blocks: tuple | None = None
    tiles: tuple | None = None
    complex: bool = False

    @property
    def blocked(self) -> bool:
        return self.blocks is not None

    @property
    def points(self) -> int:
        return math.prod(self.lengths)

    @property
    def spectrum_shape(self) -> tuple:
        return tuple(self.lengths[:-1]) + (spectrum_length(self.lengths[-1], self.complex),)

    @property
    def freqs(self) -> int:
        return math.prod(self.spectrum_shape)

    def spectrum_bytes(self, itemsize) -> int:
        """One channel's spectrum for operands of ``itemsize`` bytes (complex: of their dtype,
        real: of the complex dtype twice as wide)."""
        return self.freqs * (itemsize if self.complex else 2 * itemsize)


def _padded_sizes(spec, in_spatial, pads):
    """(input sizes, pads) the transforms see: modes other than zeros transform a padded copy."""
    if spec.padding_mode == "zeros":
        return tuple(in_spatial), tuple(pads)
    return tuple(i + lo + hi for i, (lo, hi) in zip(in_spatial, pads)), ((0, 0),) * len(pads)


def _stride1_outputs(in_spatial, pads, effective):
    return tuple(i + lo + hi - e + 1 for i, (lo, hi), e in zip(in_spatial, pads, effective))


def whole_plan(spec, x_shape, complex_operands: bool = False) -> Plan:
    sizes, pads = _padded_sizes(spec, x_shape[2:], spec.pads(x_shape[2:]))
    effective = spec.effective_kernel
    return Plan(tuple(sfft.next_fast_len(max(e, u, i + max(lo, hi)), real=True) for i, (lo, hi), e, u in
                      zip(sizes, pads, effective, _stride1_outputs(sizes, pads, effective))),
                complex=complex_operands)


def blocked_plan(spec, x_shape, per_kernel: int | None = None, complex_operands: bool = False) -> Plan:
    """Tiles of about ``per_kernel`` (default BLOCK_PER_KERNEL) kernels, one where the map is smaller."""
    per_kernel = per_kernel or BLOCK_PER_KERNEL
    pads = spec.pads(x_shape[2:])
    lengths, blocks, tiles = [], [], []
    for u, e, s in zip(_stride1_outputs(x_shape[2:], pads, spec.effective_kernel), spec.effective_kernel,
                       spec.stride):
        kept = (u - 1) // s * s + 1  # the stride-1 outputs up to the last one read
        wanted = min(max(per_kernel * e, MIN_BLOCK), -(-kept // s) * s)
        length = sfft.next_fast_len(wanted + e - 1, real=True)
        block = (length - e + 1) // s * s
        lengths.append(length), blocks.append(block), tiles.append(-(-kept // block))
    return Plan(tuple(lengths), tuple(blocks), tuple(tiles), complex_operands)


def _preferred(spec, x_shape, complex_operands=False) -> Plan:
    blocked = blocked_plan(spec, x_shape, complex_operands=complex_operands)
    return blocked if max(blocked.tiles) >= BLOCKED_FROM_TILES else whole_plan(spec, x_shape, complex_operands)


# ---- scratch accounting ----------------------------------------------------------------------

def _kept_bytes(w_shape, plan, itemsize) -> int:
    """A kept entry: the kernel's spectrum and the copy of the weights."""
    return w_shape[0] * w_shape[1] * (plan.spectrum_bytes(itemsize) + math.prod(w_shape[2:]) * itemsize)


def _kernel_stage(spec, w_shape, plan, r, keep) -> int:
    """The dilated kernel, its zero-filled copy and spectrum (kept: and the kept entry)."""
    kernels = w_shape[0] * w_shape[1]
    dilated = 0 if spec.undilated else kernels * math.prod(spec.effective_kernel) * r
    kept = _kept_bytes(w_shape, plan, r) if keep else 0
    return dilated + kernels * (plan.points * r + plan.spectrum_bytes(r)) + kept


def _whole_bytes(spec, x_shape, w_shape, r, plan, keep=False) -> int:
    """Stages: kernel; input (kernel spectrum, padded copy, zero-filled copy, spectrum);
    product (kernel, input and output spectra; dense: the output twice); inverse (output
    spectrum, the rows kept after the leading axes, the real rows).  Kept: the entry throughout."""
    sizes, _ = _padded_sizes(spec, x_shape[2:], spec.pads(x_shape[2:]))
    padded = 0 if spec.padding_mode == "zeros" else math.prod(sizes)
    points, spectrum_bytes = plan.points, plan.spectrum_bytes(r)
    kernels, inputs, outputs = w_shape[0] * w_shape[1], x_shape[0] * x_shape[1], x_shape[0] * w_shape[0]
    entry = _kept_bytes(w_shape, plan, r) if keep else 0
    return max(_kernel_stage(spec, w_shape, plan, r, keep),
               entry + kernels * spectrum_bytes + inputs * (padded * r + points * r + spectrum_bytes),
               entry + (kernels + inputs + outputs * (1 if w_shape[1] == 1 else 2)) * spectrum_bytes,
               entry + outputs * (2 * spectrum_bytes + points * r))


def _buffer_extents(tiles, plan) -> tuple:
    """The padded positions ``tiles`` tiles read: the last starts at (t - 1) * B and reads L
    (L >= B + E - 1: more where the stride rounds B down)."""
    return tuple((t - 1) * b + length for t, b, length in zip(tiles, plan.blocks, plan.lengths))


def _box_bytes(spec, x_shape, c_out, r, plan, images, tile_rows, grad=False) -> int:
    """One box of ``images`` x ``tile_rows`` (blocked): the padded copy of its images (modes),
    its input buffer, then the larger of (buffer + input spectra), (input + output spectra;
    dense: output twice; gradient: grad_output's zero-filled tiles too) and (output spectra,
    real rows and their reordered copy)."""
    c_in, spectrum_bytes = x_shape[1], plan.spectrum_bytes(r)
    tiles = images * tile_rows * math.prod(plan.tiles[1:])
    buffer = images * c_in * math.prod(_buffer_extents((tile_rows,) + plan.tiles[1:], plan)) * r
    padded = 0 if spec.padding_mode == "zeros" else images * c_in * math.prod(
        i + lo + hi for i, (lo, hi) in zip(x_shape[2:], spec.pads(x_shape[2:]))) * r
    x_spectra, y_spectra = tiles * c_in * spectrum_bytes, tiles * c_out * spectrum_bytes
    dense = spec.channels_per_group(c_in) > 1
    real = tiles * c_out * math.prod(plan.lengths[1:]) * plan.blocks[0] * r
    if grad:
        return padded + buffer + x_spectra + tiles * c_out * (plan.points * r) + 2 * y_spectra
    # dense: matmul copies its transposed operands (input and kernel spectra) and the result is reordered
    products = (2 * x_spectra + 2 * y_spectra + c_out * (c_in // spec.groups) * spectrum_bytes if dense
                else x_spectra + y_spectra)
    return padded + max(buffer + x_spectra, products, y_spectra + 2 * real)


def _blocked_bytes(spec, x_shape, w_shape, r, plan, images, tile_rows, keep=False) -> int:
    box = _box_bytes(spec, x_shape, w_shape[0], r, plan, images, tile_rows)
    kernel_spectrum = w_shape[0] * w_shape[1] * plan.spectrum_bytes(r)
    return max(_kernel_stage(spec, w_shape, plan, r, keep),
               kernel_spectrum + (_kept_bytes(w_shape, plan, r) if keep else 0) + box)


SMALL_BLOCK_PER_KERNEL = 2  # the blocks used only where larger ones do not fit under the cap


def _fallbacks(spec, x_shape, complex_operands=False):
    """The layouts to try, fastest first: the preferred one, the whole map, blocks, small blocks."""
    return (_preferred(spec, x_shape, complex_operands), whole_plan(spec, x_shape, complex_operands),
            blocked_plan(spec, x_shape, complex_operands=complex_operands),
            blocked_plan(spec, x_shape, SMALL_BLOCK_PER_KERNEL, complex_operands))


def _least_bytes(spec, x_shape, w_shape, itemsize, plan) -> int:
    if plan.blocked:
        return _blocked_bytes(spec, x_shape, w_shape, itemsize, plan, 1, 1)
    return _whole_bytes(spec, x_shape, w_shape, itemsize, plan)


def min_workspace(spec, x_shape, w_shape, itemsize, complex_operands=False) -> int:
    """The least of the layouts: the whole map's largest stage, or blocks of one image and
    one row of tiles (nothing kept).  ``itemsize`` is the operands'; without
    ``complex_operands`` the count is the real one, which bounds a complex dtype of the same
    itemsize from above (same plans; a half spectrum of twice the width is a little larger)."""
    return min(_least_bytes(spec, x_shape, w_shape, itemsize, plan)
               for plan in _fallbacks(spec, x_shape, complex_operands)[1:])


def applies(spec, x_shape, w_shape) -> bool:
    """Any forward convolution whose least stage fits under the workspace cap, counted for
    float64 (the widest case: the planner knows no dtype here)."""
    return not spec.transposed and min_workspace(spec, x_shape, w_shape, 8) <= workspace.limit()


def _dilated_kernel(w, spec) -> np.ndarray:
    if spec.undilated:
        return w
    out = np.zeros(w.shape[:2] + spec.effective_kernel, w.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in spec.dilation)] = w
    return out


def _kernel_spectrum(w, spec, lengths):
    """The (dilated) kernel's reversed spectrum, the one that correlates: (C_out, C_in/G, *F)."""
    return reversed_spectrum(_dilated_kernel(w, spec), lengths, tuple(range(2, 2 + spec.ndim)))


def _weight_spectrum(w, spec, plan, keep: bool, need: int):
    """The kernel's spectrum, after making room for a call needing ``need`` bytes (the kept
    entry included when ``keep``): the kept one when these weights have one, else made (and
    kept when ``keep``)."""
    lengths = plan.lengths
    shape = w.shape[:2] + plan.spectrum_shape
    key = (w.shape, w.dtype.str, w.strides, spec.groups, spec.dilation, tuple(lengths))
    kept = kept_spectrum(key, w, shape, np.result_type(w.dtype, np.complex64)) if keep else None
    workspace.make_room(need - (_kept_bytes(w.shape, plan, w.itemsize) if kept is not None else 0))
    if kept is not None:
        return kept
    wf = _kernel_spectrum(w, spec, lengths)
    return keep_spectrum(key, w, wf) if keep else wf


# ---- whole map -------------------------------------------------------------------------------

def _input_spectrum(x, spec, pads, lengths):
    """(spectrum of the input, its low pads still to apply as a rotation): modes other than
    zeros transform a padded copy (freed here), zeros the input itself."""
    axes = tuple(range(2, 2 + spec.ndim))
    if spec.padding_mode != "zeros":
        return spectrum(padded_copy(x, pads, spec.padding_mode), lengths, axes), (0,) * spec.ndim
    return spectrum(x, lengths, axes), tuple(lo for lo, _ in pads)


def _rotated_reader(out_spatial, stride, lows, lengths):
    """Outputs o read z[o * stride - lo] (mod P) along each axis: the low pad as a rotation."""
    nd = len(lengths)
    index = [(np.arange(o) * s - lo) % p for o, s, lo, p in zip(out_spatial, stride, lows, lengths)]
    return lambda axis, a: np.take(a, index[nd + axis], axis=axis)


def _forward_whole(x, w, spec, pads, out_spatial, plan):
    need = _whole_bytes(spec, x.shape, w.shape, x.itemsize, plan, keep=True)
    keep = need <= workspace.limit()
    wf = _weight_spectrum(w, spec, plan, keep, need if keep else _whole_bytes(spec, x.shape, w.shape, x.itemsize, plan))
    xf, lows = _input_spectrum(x, spec, pads, plan.lengths)
    yf = product(xf, wf, spec.groups)
    del xf, wf  # the inverse's stage holds only the output spectrum
    return inverse(yf, spec.ndim, plan.lengths[-1], plan.complex,
                   _rotated_reader(out_spatial, spec.stride, lows, plan.lengths))


# ---- overlap-save blocks ---------------------------------------------------------------------

def _boxes(spec, x_shape, c_out, r, plan, fixed, grad=False):
    """Boxes of (images, rows of tiles) whose scratch fits beside ``fixed`` under the cap."""
    def fits(extents):
        return fixed + _box_bytes(spec, x_shape, c_out, r, plan, extents[0], extents[1], grad) <= workspace.limit()
    return workspace.boxes((x_shape[0], plan.tiles[0]), fits)


def _box_source(x, spec, pads, images):
    """(the images the tiles read, the padded position of their first element per dim)."""
    if spec.padding_mode == "zeros":
        return x[images], tuple(lo for lo, _ in pads)
    return padded_copy(x[images], pads, spec.padding_mode), (0,) * spec.ndim


def _fill(buffer, source, offsets, starts):
    """buffer[..., j] = source[..., j + start - offset] where that lies in source (else zeros),
    per spatial dim: the buffer holds padded positions from ``starts``."""
    buffer[...] = 0
    dest, src = [slice(None)] * 2, [slice(None)] * 2
    for size, length, offset, start in zip(source.shape[2:], buffer.shape[2:], offsets, starts):
        first, stop = max(start, offset), min(start + length, offset + size)
        if stop <= first:
            return buffer
        dest.append(slice(first - start, stop - start)), src.append(slice(first - offset, stop - offset))
    buffer[tuple(dest)] = source[tuple(src)]
    return buffer


def _tile_spectra(x, spec, pads, plan, box):
    """Spectra of the box's input tiles: (images * tiles, C_in, *F), tiles in row-major order."""
    images, rows = box
    source, offsets = _box_source(x, spec, pads, images)
    tiles = (rows.stop - rows.start,) + plan.tiles[1:]
    buffer = np.empty(source.shape[:2] + _buffer_extents(tiles, plan), x.dtype)
    _fill(buffer, source, offsets, (rows.start * plan.blocks[0],) + (0,) * (spec.ndim - 1))
    del source
    st = buffer.strides
    view = as_strided(buffer, (buffer.shape[0],) + tiles + (buffer.shape[1],) + plan.lengths,
                      (st[0],) + tuple(b * s for b, s in zip(plan.blocks, st[2:])) + (st[1],) + st[2:],
                      writeable=False)  # (n, *tiles, C, *L): tile (i, j) reads rows i*B0.., cols j*B1..
    xf = spectrum(view, plan.lengths, tuple(range(-spec.ndim, 0)))
    return xf.reshape((-1, buffer.shape[1]) + xf.shape[-spec.ndim:])


def _tiles_to_map(z, images, tiles, c_out):
    """(n * tiles, C_out, *b) -> (n, C_out, *(tiles * b)): each tile's outputs in place."""
    nd = len(tiles)
    z = z.reshape((images,) + tiles + (c_out,) + z.shape[2:])
    order = (0, nd + 1) + tuple(axis for d in range(nd) for axis in (1 + d, nd + 2 + d))
    return z.transpose(order).reshape((images, c_out) + tuple(t * b for t, b in zip(tiles, z.shape[nd + 2:])))


def _blocked_schedule(spec, x_shape, w_shape, r, plan):
    """(keep the spectrum?, the boxes, the scratch they need): the spectrum is kept where one
    box of one image and one tile row fits beside it; the boxes are the largest that fit."""
    keep = _blocked_bytes(spec, x_shape, w_shape, r, plan, 1, 1, keep=True) <= workspace.limit()
    fixed = _kept_bytes(w_shape, plan, r) if keep else w_shape[0] * w_shape[1] * plan.spectrum_bytes(r)
    boxes = _boxes(spec, x_shape, w_shape[0], r, plan, fixed)
    largest = workspace.extents(boxes[0])
    return keep, boxes, max(_kernel_stage(spec, w_shape, plan, r, keep),
                            fixed + _box_bytes(spec, x_shape, w_shape[0], r, plan, largest[0], largest[1]))


def _forward_blocked(x, w, spec, pads, out_spatial, plan):
    c_out = w.shape[0]
    keep, boxes, need = _blocked_schedule(spec, x.shape, w.shape, x.itemsize, plan)
    wf = _weight_spectrum(w, spec, plan, keep, need)
    out = np.empty((x.shape[0], c_out) + tuple(out_spatial), x.dtype)
    cuts = tuple(slice(0, b, s) for b, s in zip(plan.blocks, spec.stride))
    for images, rows in boxes:
        yf = product(_tile_spectra(x, spec, pads, plan, (images, rows)), wf, spec.groups)
        z = inverse(yf, spec.ndim, plan.lengths[-1], plan.complex,
                    lambda axis, a: a[(Ellipsis, cuts[axis]) + (slice(None),) * (-1 - axis)])  # outputs at o * s
        del yf
        block = _tiles_to_map(z, images.stop - images.start, (rows.stop - rows.start,) + plan.tiles[1:], c_out)
        del z
        first = rows.start * (plan.blocks[0] // spec.stride[0])
        target = out[images, :, first:first + block.shape[2]]
        target[...] = block[(slice(None), slice(None)) + tuple(slice(0, n) for n in target.shape[2:])]
    return out


def _chosen_plan(spec, x_shape, w_shape, itemsize, complex_operands=False) -> Plan:
    """The fastest layout whose least scratch fits under the cap."""
    plans = _fallbacks(spec, x_shape, complex_operands)
    fitting = (p for p in plans if _least_bytes(spec, x_shape, w_shape, itemsize, p) <= workspace.limit())
    return next(fitting, plans[-1])


def planned_workspace(spec, x_shape, w_shape, itemsize, complex_operands=False) -> int:
    """The scratch a forward call makes under the current cap (the kept spectrum included):
    between :func:`min_workspace` and the cap."""
    plan = _chosen_plan(spec, x_shape, w_shape, itemsize, complex_operands)
    if plan.blocked:
        return _blocked_schedule(spec, x_shape, w_shape, itemsize, plan)[2]
    kept = _whole_bytes(spec, x_shape, w_shape, itemsize, plan, keep=True)
    return kept if kept <= workspace.limit() else _whole_bytes(spec, x_shape, w_shape, itemsize, plan)


def forward(x, w, spec, pads, out_spatial) -> np.ndarray:
    """Real operands in real transforms, complex ones (x and w of one complex dtype) in complex."""
    complex_operands = np.iscomplexobj(x)
    workspace.require({"fft": min_workspace(spec, x.shape, w.shape, x.itemsize, complex_operands)})
    plan = _chosen_plan(spec, x.shape, w.shape, x.itemsize, complex_operands)
    if plan.blocked:
        return _forward_blocked(x, w, spec, pads, out_spatial, plan)
    return _forward_whole(x, w, spec, pads, out_spatial, plan)
