"""The compiled transforms of ``winograd`` (see there for the layout), imported on first use.

Every array is in a 3-D form: 1-D and 2-D layers get leading dims of one tile of one value
(a = m = 1, transform matrix [[1]]), and a pass along such a dim is skipped.  A job is one
channel and a block of the chunk's tile rows (``JOB_TILES`` tiles, across images: a 7x7 map
has 16 tiles per image, too few to vectorise over); its tiles lie along the last axis of every
buffer, so each pass of a transform combines contiguous rows of them (vectorised).

Module-level functions, not closures: Numba keys its on-disk cache by the pickled closure
variables, which differ in every process (see ``depthwise_jit_kernels``).
"""

import numba
import numpy as np

# reassociation lets the row loops vectorise; no assumption about NaN/Inf
_parallel = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
_inline = numba.njit(cache=True, fastmath={"reassoc", "contract"})


@_inline
def apply_matrix(matrix, src, s_channel, s_start, dst, d_channel, d_start, width):
    """dst[o * R + r, d_channel, d_start:+width] = sum_k matrix[r, k] * src[o * K + k, s_channel,
    s_start:+width] for every o, where matrix is (R, K): one transform pass along the axis of
    length K, with everything after it flattened into the rows of ``width`` values.

    Each output row is one loop over its K source rows at once (K = 4 or 6 written out: the
    coefficients stay in registers, one store per value; adding row after row into the
    output, zeros skipped, ran 1.3x slower at 256 tiles, 1.5x at 128)."""
    rows, ks = matrix.shape
    for o in range(src.shape[0] // ks):
        for r in range(rows):
            out = dst[o * rows + r, d_channel, d_start:d_start + width]
            first = o * ks
            if ks == 6:
                combine6(matrix[r], src, first, s_channel, s_start, out)
            elif ks == 4:
                combine4(matrix[r], src, first, s_channel, s_start, out)
            else:
                out[:] = 0
                for k in range(ks):
                    for i in range(width):
                        out[i] += matrix[r, k] * src[first + k, s_channel, s_start + i]


@_inline
def combine6(c, src, first, channel, start, out):
    """out = sum_k c[k] * src[first + k, channel, start:] over 6 rows (each row a contiguous
    slice, so that the loop vectorises)."""
    c0, c1, c2, c3, c4, c5 = c[0], c[1], c[2], c[3], c[4], c[5]
    stop = start + out.shape[0]
    r0, r1, r2 = src[first, channel, start:stop], src[first + 1, channel, start:stop], \
        src[first + 2, channel, start:stop]
    r3, r4, r5 = src[first + 3, channel, start:stop], src[first + 4, channel, start:stop], \
        src[first + 5, channel, start:stop]
    for i in range(out.shape[0]):
        out[i] = c0 * r0[i] + c1 * r1[i] + c2 * r2[i] + c3 * r3[i] + c4 * r4[i] + c5 * r5[i]


@_inline
def combine4(c, src, first, channel, start, out):
    """out = sum_k c[k] * src[first + k, channel, start:] over 4 rows."""
    c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
    stop = start + out.shape[0]
    r0, r1, r2, r3 = src[first, channel, start:stop], src[first + 1, channel, start:stop], \
        src[first + 2, channel, start:stop], src[first + 3, channel, start:stop]
    for i in range(out.shape[0]):
        out[i] = c0 * r0[i] + c1 * r1[i] + c2 * r2[i] + c3 * r3[i]


@_inline
def row_position(row, cd, ch):
    """(image, tile along depth, tile along height) of tile row ``row`` of a chunk."""
    return row // (cd * ch), (row // ch) % cd, row % ch


@_inline
def gather_tiles(x, c, src_d, src_h, src_w, t0d, t0h, t0w, cd, ch, first_row, tiles):
    """tiles[kd, kh, kw, t] = x[n, c, src_d[t0d + td, kd], src_h[t0h + th, kh], src_w[t0w + tw, kw]]
    for the tiles t = (n, td, th, tw) of the chunk's tile rows from ``first_row``, zero where a
    source index is -1 (zero padding, or past the padded input): the padding modes are in the
    index tables, no padded copy is made."""
    ad, ah, aw, width = tiles.shape
    cw = min(width, src_w.shape[0] - t0w)
    for row in range(first_row, first_row + width // cw):
        n, td, th = row_position(row, cd, ch)
        start = (row - first_row) * cw
        for kd in range(ad):
            rd = src_d[t0d + td, kd]
            for kh in range(ah):
                rh = src_h[t0h + th, kh]
                for kw in range(aw):
                    out = tiles[kd, kh, kw, start:start + cw]
                    if rd < 0 or rh < 0:
                        out[:] = 0
                        continue
                    source = x[n, c, rd, rh]
                    for tw in range(cw):
                        rw = src_w[t0w + tw, kw]
                        out[tw] = source[rw] if rw >= 0 else 0


@_parallel
def input_transform(x, src_d, src_h, src_w, t0d, t0h, t0w, cd, ch, cw, bt_d, bt_h, bt_w, v, rows_per_job):
    """v[:, c, tiles] = B^T d B (per dim) of every tile d of channel c in the chunk.

    x (N', C, D, H, W) the chunk's images; src_* (tiles along the dim, a) source indices; the
    chunk's tiles start at (t0d, t0h, t0w) and number (cd, ch, cw) per image; bt_* (a, a);
    v (a_d * a_h * a_w, C, N' * cd * ch * cw).  Jobs: (channel, ``rows_per_job`` tile rows),
    their tiles contiguous along v's last axis (across images)."""
    channels, rows = x.shape[1], x.shape[0] * cd * ch
    ad, ah, aw = bt_d.shape[0], bt_h.shape[0], bt_w.shape[0]
    blocks = (rows + rows_per_job - 1) // rows_per_job
    for job in numba.prange(channels * blocks):
        c, first_row = job // blocks, job % blocks * rows_per_job
        width = (min(rows, first_row + rows_per_job) - first_row) * cw
        current, other = np.empty(ad * ah * aw * width, x.dtype), np.empty(ad * ah * aw * width, x.dtype)
        gather_tiles(x, c, src_d, src_h, src_w, t0d, t0h, t0w, cd, ch, first_row, current.reshape(ad, ah, aw, width))
        if ad > 1:
            inner = ah * aw * width
            apply_matrix(bt_d, current.reshape(ad, 1, inner), 0, 0, other.reshape(ad, 1, inner), 0, 0, inner)
            current, other = other, current
        if ah > 1:
            inner = aw * width
            apply_matrix(bt_h, current.reshape(ad * ah, 1, inner), 0, 0, other.reshape(ad * ah, 1, inner), 0, 0, inner)
            current, other = other, current
        apply_matrix(bt_w, current.reshape(ad * ah * aw, 1, width), 0, 0, v, c, first_row * cw, width)


@_parallel
def output_transform(p, at_d, at_h, at_w, out, n0, t0d, t0h, t0w, cd, ch, cw, rows_per_job):
    """out[n0 + n, c, the tile's outputs] = A^T p A (per dim) of every tile of channel c in the
    chunk, cropped at the output's far edges.

    p (a_d * a_h * a_w, C_out, N' * cd * ch * cw); at_* (m, a); out (N, C_out, OD, OH, OW).
    Jobs: (output channel, ``rows_per_job`` tile rows)."""
    channels, rows = p.shape[1], p.shape[2] // cw
    (md, ad), (mh, ah), (mw, aw) = at_d.shape, at_h.shape, at_w.shape
    blocks = (rows + rows_per_job - 1) // rows_per_job
    for job in numba.prange(channels * blocks):
        c, first_row = job // blocks, job % blocks * rows_per_job
        last_row = min(rows, first_row + rows_per_job)
        width = (last_row - first_row) * cw
        current, other = np.empty(ad * ah * aw * width, p.dtype), np.empty(ad * ah * aw * width, p.dtype)
        apply_matrix(at_w, p, c, first_row * cw, current[:ad * ah * mw * width].reshape(ad * ah * mw, 1, width),
                     0, 0, width)
        if ah > 1:
            inner = mw * width
            apply_matrix(at_h, current[:ad * ah * inner].reshape(ad * ah, 1, inner), 0, 0,
                         other[:ad * mh * inner].reshape(ad * mh, 1, inner), 0, 0, inner)
            current, other = other, current
        if ad > 1:
            inner = mh * mw * width
            apply_matrix(at_d, current[:ad * inner].reshape(ad, 1, inner), 0, 0,
                         other[:md * inner].reshape(md, 1, inner), 0, 0, inner)
            current, other = other, current
        y = current[:md * mh * mw * width].reshape(md, mh, mw, width)
        for row in range(first_row, last_row):
            n, td, th = row_position(row, cd, ch)
            scatter_row(y, (row - first_row) * cw, out[n0 + n, c], t0d + td, t0h + th, t0w, cw)


@_inline
def scatter_row(y, start, plane, tile_d, tile_h, t0w, cw):
    """plane[tile_d * md + pd, tile_h * mh + ph, (t0w + tw) * mw + pw] = y[pd, ph, pw, start + tw]
    for a row of cw tiles, dropping what falls past the plane (the last tiles overhang)."""
    md, mh, mw = y.shape[0], y.shape[1], y.shape[2]
    depth, height, width = plane.shape
    for pd in range(min(md, depth - tile_d * md)):
        for ph in range(min(mh, height - tile_h * mh)):
            row = plane[tile_d * md + pd, tile_h * mh + ph]
            for pw in range(mw):
                values = y[pd, ph, pw, start:start + cw]
                stop = min(cw, (width - pw + mw - 1) // mw - t0w)  # tiles whose column pw is inside
                for tw in range(stop):
                    row[(t0w + tw) * mw + pw] = values[tw]
