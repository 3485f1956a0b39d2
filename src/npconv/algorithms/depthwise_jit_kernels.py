"""The compiled kernels of ``depthwise_jit`` (see there for the layouts), imported on first use.

Two families, one per layout:

- ``planes_*``: NCHW-native.  A job is (image, group, chunk of output rows); its tile holds the
  group's input planes for the rows the chunk reads, padded through index tables, and split
  by column phase (``column % stride_w``) so that every tap reads a contiguous run of the
  tile at every stride.  Each output row is a sum of taps, four taps per pass over the row
  (four loads, four multiply-adds, one load and store of the accumulator per lane).
- ``channels_*``: channels innermost, for narrow planes (a 7-wide row fills no vector):
  a job is (image, block of ``BLOCK_CHANNELS`` output channels, chunk of rows), its tile is
  the block's planes transposed to (row, column, channel), and each tap is one contiguous
  multiply-add over a whole output row of the block.

They are module-level functions, not closures: Numba keys its on-disk cache by the pickled
closure variables, and a closure over other jitted functions pickles differently in every
process, so closures were recompiled (about 2.5 s per dtype) in every new process.
"""

import numba
import numpy as np

BLOCK_CHANNELS = 16
TAPS_PER_PASS = 4

# reassociation lets the loops vectorise; no assumption about NaN/Inf
_parallel = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
_inline = numba.njit(cache=True, fastmath={"reassoc", "contract"})


@_inline
def chunk_rows(chunk, row_chunks, out_h):
    """The output rows [h0, h1) of one chunk (row_chunks <= out_h: never empty)."""
    return chunk * out_h // row_chunks, (chunk + 1) * out_h // row_chunks


# ---- NCHW-native planes -----------------------------------------------------------------

@_inline
def load_planes(x, n, c0, row_src, col_src, top, lo_w, sw, tile):
    """tile[c, r, p, t] = padded(x)[n, c0 + c, top + r, p + t * sw] through the index tables
    (-1: zero); the interior of each row is a plain strided copy, only borders use the table."""
    channels, rows, phases, width = tile.shape
    in_w, tile_w = x.shape[3], col_src.shape[0]
    for c in range(channels):
        for r in range(rows):
            source_row = row_src[top + r]
            if source_row < 0:
                tile[c, r] = 0
                continue
            line = x[n, c0 + c, source_row]
            for p in range(phases):
                first = max(0, (lo_w - p + sw - 1) // sw)
                stop = min(width, (lo_w + in_w - p + sw - 1) // sw, (tile_w - p + sw - 1) // sw)
                if stop > first:  # the interior: one (strided) slice copy
                    start = p + first * sw - lo_w
                    tile[c, r, p, first:stop] = line[start:start + (stop - first - 1) * sw + 1:sw]
                for t in range(min(first, width)):
                    border_value(tile, c, r, p, t, line, col_src, sw)
                for t in range(max(stop, first), width):
                    border_value(tile, c, r, p, t, line, col_src, sw)


@_inline
def border_value(tile, c, r, p, t, line, col_src, sw):
    """One padded column of a tile row, through the column table (past the table: never read)."""
    column = p + t * sw
    source = col_src[column] if column < col_src.shape[0] else -1
    tile[c, r, p, t] = line[source] if source >= 0 else 0


@_inline
def tap_offsets(channels, kh, kw, rows, sw, width, dh, dw):
    """The flat tile offset of each tap (channel, i, j), in the weights' order."""
    offsets = np.empty(channels * kh * kw, np.int64)
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                reach = j * dw
                offsets[(c * kh + i) * kw + j] = ((c * rows + i * dh) * sw + reach % sw) * width + reach // sw
    return offsets


@_inline
def add_taps(tile, base, offsets, weights, acc):
    """acc[q] += sum over taps t of weights[t] * tile[base + offsets[t] + q], four taps a pass.

    Slices first, then a plain range: an index Numba cannot prove non-negative gets a
    wraparound test that stops LLVM vectorising the loop."""
    taps, span = offsets.shape[0], acc.shape[0]
    t = 0
    while t + TAPS_PER_PASS <= taps:
        s0, s1 = tile[base + offsets[t]:], tile[base + offsets[t + 1]:]
        s2, s3 = tile[base + offsets[t + 2]:], tile[base + offsets[t + 3]:]
        w0, w1, w2, w3 = weights[t], weights[t + 1], weights[t + 2], weights[t + 3]
        for q in range(span):
            acc[q] += w0 * s0[q] + w1 * s1[q] + w2 * s2[q] + w3 * s3[q]
        t += TAPS_PER_PASS
    while t < taps:
        s0, w0 = tile[base + offsets[t]:], weights[t]
        for q in range(span):
            acc[q] += w0 * s0[q]
        t += 1


@_inline
def accumulate_taps(tile, base, offsets, grad, sums):
    """sums[t, q] += grad[q] * tile[base + offsets[t] + q]: per-position sums (a vector
    loop; LLVM does not vectorise a short dot product), reduced once per job."""
    for t in range(offsets.shape[0]):
        source, row = tile[base + offsets[t]:], sums[t]
        for q in range(grad.shape[0]):
            row[q] += grad[q] * source[q]


@_inline
def planes_tile(x, channels, rows, sw, tile_w):
    return np.empty((channels, rows, sw, (tile_w + sw - 1) // sw), x.dtype)


@_inline
def flat_span(h0, h1, out_w, sh, sw, width):
    """(span, pitch): at stride 1 the chunk's output rows are one run of the tile at its row
    pitch (the (kw - 1) * dw columns between rows computed and dropped), so each tap is one
    long vector loop; at other strides one row at a time (pitch 0)."""
    if sh == 1 and sw == 1:
        return (h1 - h0 - 1) * width + out_w, width
    return out_w, 0


@_parallel
def planes_forward(x, w_flat, out, row_src, col_src, lo_w, kh, kw, sh, sw, dh, dw, groups, row_chunks):
    """x (N, C_in, H, W), w_flat (C_out, C_in/groups * kh * kw), out (N, C_out, out_h, out_w);
    row_src / col_src: the padded rows / columns read, as source indices (-1: zero)."""
    n_images, c_out, out_h, out_w = out.shape
    c_in_g, c_out_g = x.shape[1] // groups, c_out // groups
    for job in numba.prange(n_images * groups * row_chunks):
        n, g, chunk = job // (groups * row_chunks), job // row_chunks % groups, job % row_chunks
        h0, h1 = chunk_rows(chunk, row_chunks, out_h)
        tile = planes_tile(x, c_in_g, (h1 - 1 - h0) * sh + (kh - 1) * dh + 1, sw, col_src.shape[0])
        load_planes(x, n, g * c_in_g, row_src, col_src, h0 * sh, lo_w, sw, tile)
        offsets = tap_offsets(c_in_g, kh, kw, tile.shape[1], sw, tile.shape[3], dh, dw)
        flat, row_step = tile.reshape(-1), sh * sw * tile.shape[3]
        span, pitch = flat_span(h0, h1, out_w, sh, sw, tile.shape[3])
        acc = np.empty(span, x.dtype)
        for o in range(g * c_out_g, (g + 1) * c_out_g):
            if pitch:
                acc[:] = 0
                add_taps(flat, 0, offsets, w_flat[o], acc)
                for h in range(h0, h1):
                    out[n, o, h, :] = acc[(h - h0) * pitch:(h - h0) * pitch + out_w]
                continue
            for h in range(h0, h1):
                acc[:] = 0
                add_taps(flat, (h - h0) * row_step, offsets, w_flat[o], acc)
                out[n, o, h, :] = acc


@_inline
def reduce_sums(sums, rows, pitch, out_w, partial):
    """partial[t] += the sums of tap t over the valid positions (float64)."""
    for t in range(sums.shape[0]):
        total = 0.0
        for r in range(rows if pitch else 1):
            for q in range(out_w):
                total += sums[t, r * pitch + q]
        partial[t] += total


@_parallel
def planes_weight_grad(x, gy, gw_flat, row_src, col_src, lo_w, kh, kw, sh, sw, dh, dw, groups, row_chunks):
    """d loss / d w as gw_flat (C_out, C_in/groups * kh * kw) from x and gy (N, C_out, out_h, out_w).

    Jobs are (group, chunk of output rows), each summing over every image into its own
    per-position sums, reduced per output channel into float64 partial sums (no two threads
    add into the same weights); the chunks' partial sums are added at the end."""
    n_images, c_out, out_h, out_w = gy.shape
    c_in_g, c_out_g = x.shape[1] // groups, c_out // groups
    partial = np.zeros((row_chunks, c_out, gw_flat.shape[1]), np.float64)
    for job in numba.prange(groups * row_chunks):
        g, chunk = job // row_chunks, job % row_chunks
        h0, h1 = chunk_rows(chunk, row_chunks, out_h)
        tile = planes_tile(x, c_in_g, (h1 - 1 - h0) * sh + (kh - 1) * dh + 1, sw, col_src.shape[0])
        offsets = tap_offsets(c_in_g, kh, kw, tile.shape[1], sw, tile.shape[3], dh, dw)
        flat, row_step = tile.reshape(-1), sh * sw * tile.shape[3]
        span, pitch = flat_span(h0, h1, out_w, sh, sw, tile.shape[3])
        sums, grad = np.empty((offsets.shape[0], span), x.dtype), np.zeros(span, x.dtype)
        for o in range(g * c_out_g, (g + 1) * c_out_g):
            sums[:] = 0
            for n in range(n_images):
                load_planes(x, n, g * c_in_g, row_src, col_src, h0 * sh, lo_w, sw, tile)
                if pitch:
                    for h in range(h0, h1):
                        grad[(h - h0) * pitch:(h - h0) * pitch + out_w] = gy[n, o, h]
                    accumulate_taps(flat, 0, offsets, grad, sums)
                    continue
                for h in range(h0, h1):
                    accumulate_taps(flat, (h - h0) * row_step, offsets, gy[n, o, h], sums)
            reduce_sums(sums, h1 - h0, pitch, out_w, partial[chunk, o])
    for o in range(c_out):
        for t in range(gw_flat.shape[1]):
            total = 0.0
            for chunk in range(row_chunks):
                total += partial[chunk, o, t]
            gw_flat[o, t] = total


# ---- channels innermost -----------------------------------------------------------------

@_inline
def load_channels(x, n, co0, cb, m, row_src, col_src, top, tile):
    """tile[r, s * B + k] = padded(x)[n, (co0 + k) // m, top + r, s] (B = BLOCK_CHANNELS) for the
    block's cb channels, through the index tables (-1: zero)."""
    for k in range(cb):
        plane = x[n, (co0 + k) // m]
        for r in range(tile.shape[0]):
            source_row = row_src[top + r]
            for s in range(col_src.shape[0]):
                source = col_src[s]
                inside = source_row >= 0 and source >= 0
                tile[r, s * BLOCK_CHANNELS + k] = plane[source_row, source] if inside else 0
    for k in range(cb, BLOCK_CHANNELS):  # a partial block: zeros in the unused lanes
        for r in range(tile.shape[0]):
            for s in range(col_src.shape[0]):
                tile[r, s * BLOCK_CHANNELS + k] = 0


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
def channels_tile(x, h0, h1, kh, sh, dh, tile_w):
    return np.empty(((h1 - 1 - h0) * sh + (kh - 1) * dh + 1, tile_w * BLOCK_CHANNELS), x.dtype)


@_parallel
def channels_forward(x, w_t, out, row_src, col_src, sh, sw, dh, dw, row_chunks):
    """x (N, C_in, H, W), w_t (kh, kw, C_out), out (N, C_out, out_h, out_w); one input channel
    per group (output channel c reads input channel c // m)."""
    n_images, c_out, out_h, out_w = out.shape
    kh, kw = w_t.shape[0], w_t.shape[1]
    m = c_out // x.shape[1]
    blocks = (c_out + BLOCK_CHANNELS - 1) // BLOCK_CHANNELS
    for job in numba.prange(n_images * blocks * row_chunks):
        n, block, chunk = job // (blocks * row_chunks), job // row_chunks % blocks, job % row_chunks
        co0 = block * BLOCK_CHANNELS
        cb = min(BLOCK_CHANNELS, c_out - co0)
        h0, h1 = chunk_rows(chunk, row_chunks, out_h)
        tile = channels_tile(x, h0, h1, kh, sh, dh, col_src.shape[0])
        load_channels(x, n, co0, cb, m, row_src, col_src, h0 * sh, tile)
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
def channels_weight_grad(x, gy, gw_t, row_src, col_src, sh, sw, dh, dw, row_chunks):
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
        block, chunk = job // row_chunks, job % row_chunks
        co0 = block * BLOCK_CHANNELS
        cb = min(BLOCK_CHANNELS, c_out - co0)
        h0, h1 = chunk_rows(chunk, row_chunks, out_h)
        tile = channels_tile(x, h0, h1, kh, sh, dh, col_src.shape[0])
        grads = np.zeros(out_w * BLOCK_CHANNELS, x.dtype)
        sums = np.zeros((kh, kw, out_w * BLOCK_CHANNELS), x.dtype)  # per tap, per output column
        for n in range(n_images):
            load_channels(x, n, co0, cb, m, row_src, col_src, h0 * sh, tile)
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
