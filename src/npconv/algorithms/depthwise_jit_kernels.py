"""The compiled kernels of ``depthwise_jit`` (see there for the layout), imported on first use.

They are module-level functions, not closures: Numba keys its on-disk cache by the pickled
closure variables, and a closure over other jitted functions pickles differently in every
process, so closures were recompiled (about 2.5 s per dtype) in every new process.
"""

import numba
import numpy as np

BLOCK_CHANNELS = 16

# reassociation lets the channel loops vectorise; no assumption about NaN/Inf
_parallel = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
_inline = numba.njit(cache=True, fastmath={"reassoc", "contract"})


@_inline
def load_tile(x, n, co0, cb, m, lo_h, lo_w, tile):
    """tile[r + lo_h, (s + lo_w) * B + k] = x[n, (co0 + k) // m, r, s] (B = BLOCK_CHANNELS) for the
    rows that fall inside the tile (lo_h may be negative: a tile of some rows); zeros elsewhere."""
    tile[:] = 0
    first, stop = max(0, -lo_h), min(x.shape[2], tile.shape[0] - lo_h)
    for k in range(cb):
        plane = x[n, (co0 + k) // m]
        for r in range(first, stop):
            for s in range(plane.shape[1]):
                tile[r + lo_h, (s + lo_w) * BLOCK_CHANNELS + k] = plane[r, s]


@_inline
def tap_products(tile, r, col0, sw, factors, acc):
    """acc[q * B + k] += factors[q * B + k] * tile[r, (col0 + q * sw) * B + k] over a row of outputs.

    At stride 1 this is one contiguous loop (vectorised, one alias check per row); at
    other strides one loop per output pixel."""
    width = acc.shape[0] // BLOCK_CHANNELS
    if sw == 1:
        source = tile[r, col0 * BLOCK_CHANNELS:(col0 + width) * BLOCK_CHANNELS]
        for e in range(acc.shape[0]):
            acc[e] += factors[e] * source[e]
    else:
        for q in range(width):
            base, start = q * BLOCK_CHANNELS, (col0 + q * sw) * BLOCK_CHANNELS
            for k in range(BLOCK_CHANNELS):
                acc[base + k] += factors[base + k] * tile[r, start + k]


@_inline
def chunk_tile(x, c_out, out_h, job, row_chunks, kh, sh, dh, wp):
    """For job = block * row_chunks + chunk: (co0, cb, h0, h1, top, tile) — the block's first
    channel and channel count, the chunk's output rows [h0, h1) (row_chunks <= out_h, so
    never empty), the first padded row they read and an (unfilled) tile for the rows read."""
    block, chunk = job // row_chunks, job % row_chunks
    co0, h0, h1 = block * BLOCK_CHANNELS, chunk * out_h // row_chunks, (chunk + 1) * out_h // row_chunks
    tile = np.empty(((h1 - 1 - h0) * sh + (kh - 1) * dh + 1, wp * BLOCK_CHANNELS), x.dtype)
    return co0, min(BLOCK_CHANNELS, c_out - co0), h0, h1, h0 * sh, tile


@_parallel
def forward(x, w_t, out, lo_h, lo_w, sh, sw, dh, dw, wp, row_chunks):
    """x (N, C_in, H, W), w_t (kh, kw, C_out), out (N, C_out, out_h, out_w).

    Jobs are (image, channel block, chunk of output rows), so that an image with few
    channels still keeps every thread busy; a chunk's tile holds just the rows it reads."""
    n_images, c_out, out_h, out_w = out.shape
    kh, kw = w_t.shape[0], w_t.shape[1]
    m = c_out // x.shape[1]
    blocks = (c_out + BLOCK_CHANNELS - 1) // BLOCK_CHANNELS
    for job in numba.prange(n_images * blocks * row_chunks):
        n = job // (blocks * row_chunks)
        co0, cb, h0, h1, top, tile = chunk_tile(x, c_out, out_h, job % (blocks * row_chunks), row_chunks,
                                                kh, sh, dh, wp)
        load_tile(x, n, co0, cb, m, lo_h - top, lo_w, tile)
        weights = np.zeros((kh, kw, out_w * BLOCK_CHANNELS), x.dtype)  # each tap's weights, repeated along a row
        for i in range(kh):
            for j in range(kw):
                for q in range(out_w):
                    weights[i, j, q * BLOCK_CHANNELS:q * BLOCK_CHANNELS + cb] = w_t[i, j, co0:co0 + cb]
        acc = np.empty(out_w * BLOCK_CHANNELS, x.dtype)
        for h in range(h0, h1):
            acc[:] = 0
            for i in range(kh):
                for j in range(kw):
                    tap_products(tile, (h - h0) * sh + i * dh, j * dw, sw, weights[i, j], acc)
            for k in range(cb):
                for q in range(out_w):
                    out[n, co0 + k, h, q] = acc[q * BLOCK_CHANNELS + k]


@_parallel
def weight_grad(x, gy, gw_t, lo_h, lo_w, sh, sw, dh, dw, wp, row_chunks):
    """d loss / d w as gw_t (kh, kw, C_out), from x (N, C_in, H, W) and gy (N, C_out, out_h, out_w).

    Jobs are (channel block, chunk of output rows), each summing over every image into its own
    partial sums, so that no two threads add into the same weights; the chunks' partial sums
    are added at the end."""
    n_images, c_out, out_h, out_w = gy.shape
    kh, kw = gw_t.shape[0], gw_t.shape[1]
    m = c_out // x.shape[1]
    blocks = (c_out + BLOCK_CHANNELS - 1) // BLOCK_CHANNELS
    partial = np.zeros((row_chunks, kh, kw, c_out), np.float64)
    for job in numba.prange(blocks * row_chunks):
        co0, cb, h0, h1, top, tile = chunk_tile(x, c_out, out_h, job, row_chunks, kh, sh, dh, wp)
        chunk = job % row_chunks
        grads = np.zeros(out_w * BLOCK_CHANNELS, x.dtype)
        sums = np.zeros((kh, kw, out_w * BLOCK_CHANNELS), x.dtype)  # per tap, per output column
        for n in range(n_images):
            load_tile(x, n, co0, cb, m, lo_h - top, lo_w, tile)
            for h in range(h0, h1):
                for k in range(cb):
                    for q in range(out_w):
                        grads[q * BLOCK_CHANNELS + k] = gy[n, co0 + k, h, q]
                for i in range(kh):
                    for j in range(kw):
                        tap_products(tile, (h - h0) * sh + i * dh, j * dw, sw, grads, sums[i, j])
        for i in range(kh):
            for j in range(kw):
                for k in range(cb):
                    total = 0.0
                    for q in range(out_w):
                        total += sums[i, j, q * BLOCK_CHANNELS + k]
                    partial[chunk, i, j, co0 + k] = total
    for i in range(kh):
        for j in range(kw):
            for c in range(c_out):
                total = 0.0
                for chunk in range(row_chunks):
                    total += partial[chunk, i, j, c]
                gw_t[i, j, c] = total
