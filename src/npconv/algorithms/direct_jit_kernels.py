"""The compiled kernels of ``direct_jit`` (see there for the layout), imported on first use.

Every array is 3-D in its spatial dims (1-D and 2-D layers come with leading sizes of one):

- ``xg`` (N, G, D, H, W * cig): the input channels-last, group-major, a row of a group being
  W pixels of its ``cig`` channels side by side;
- ``wp`` (C_out, kd * kh * kw * cig): the weights, each output channel's taps in the order
  (kd, kh, kw, cig);
- ``tabs``: per dim, the source index of each padded coordinate (-1 where zeros are read):
  reflect, replicate and circular padding are this lookup, no padded copy is made.

A job takes the output pixels of its row 4 at a time: it gathers their windows into ``cols``
(4, kd * kh * kw * cig), in the weights' order (a window row inside the input is one copied
run of kw * cig values; padded taps are zeros), then for each pair of its output channels
adds the 4 x 2 dot products of ``cols`` with the two weight rows (``dot_4x2``).  Each is a
reduction LLVM vectorises into 8 vector accumulators held in registers: 6 loads per 8 FMAs
(measured here: such a dot-product loop reached 17 GFLOP/s per core in L1 where an
outer-product loop over a block of 16 output channels, its accumulators in memory, reached
1-4).  The gather costs 4 windows per block against the block's 2 x C_out-chunk dot products,
and makes every geometry (stride, dilation, padding, a few input channels) the same long loop.

Module-level functions, not closures: Numba keys its on-disk cache by the pickled closure
variables, which differ in every process (see ``depthwise_jit_kernels``).
"""

import numba
import numpy as np

PIXELS = 4  # output pixels per micro-kernel call
CHANNELS = 2  # output channels per micro-kernel call
FLUSH_PIXELS = 256  # weight gradient: output pixels summed in the data's dtype before a float64 add

# reassociation lets the reductions vectorise; no assumption about NaN/Inf
_parallel = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
_inline = numba.njit(cache=True, fastmath={"reassoc", "contract"})


# ---- micro-kernels: acc[q * P + p] += dot(x_q, w_p) --------------------------------------

@_inline
def dot_4x2(x0, x1, x2, x3, w0, w1, acc, zero):
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
    for e in range(w0.shape[0]):
        a, b = w0[e], w1[e]
        s00 += x0[e] * a
        s01 += x0[e] * b
        s10 += x1[e] * a
        s11 += x1[e] * b
        s20 += x2[e] * a
        s21 += x2[e] * b
        s30 += x3[e] * a
        s31 += x3[e] * b
    acc[0] += s00
    acc[1] += s01
    acc[2] += s10
    acc[3] += s11
    acc[4] += s20
    acc[5] += s21
    acc[6] += s30
    acc[7] += s31


@_inline
def dot_4x1(x0, x1, x2, x3, w0, acc, zero):
    s0 = s1 = s2 = s3 = zero
    for e in range(w0.shape[0]):
        a = w0[e]
        s0 += x0[e] * a
        s1 += x1[e] * a
        s2 += x2[e] * a
        s3 += x3[e] * a
    acc[0] += s0
    acc[2] += s1
    acc[4] += s2
    acc[6] += s3


@_inline
def dot_1x2(x0, w0, w1, acc, zero):
    s0 = s1 = zero
    for e in range(w0.shape[0]):
        s0 += x0[e] * w0[e]
        s1 += x0[e] * w1[e]
    acc[0] += s0
    acc[1] += s1


@_inline
def dot_1x1(x0, w0, acc, zero):
    s0 = zero
    for e in range(w0.shape[0]):
        s0 += x0[e] * w0[e]
    acc[0] += s0


# ---- gathering a block's windows ----------------------------------------------------------

@_inline
def gather_window(xg, n, g, od, oh, ow, tabs, strides, dilations, kernel, cig, fast, col):
    """col[((i * kh + r) * kw + j) * cig + c] = the padded input under tap (i, r, j) of output
    pixel (od, oh, ow), channel c of group g (zeros where padding is read)."""
    tab_d, tab_h, tab_w = tabs
    kd, kh, kw = kernel
    run = kw * cig
    for i in range(kd):
        d = tab_d[od * strides[0] + i * dilations[0]]
        for r in range(kh):
            h = tab_h[oh * strides[1] + r * dilations[1]]
            dest = col[(i * kh + r) * run:(i * kh + r + 1) * run]
            if d < 0 or h < 0:
                dest[:] = 0
                continue
            x_row = xg[n, g, d, h]
            if fast:  # the window row lies inside the input: one run
                start = tab_w[ow * strides[2]] * cig
                dest[:] = x_row[start:start + run]
                continue
            for j in range(kw):
                c = tab_w[ow * strides[2] + j * dilations[2]]
                if c < 0:
                    dest[j * cig:(j + 1) * cig] = 0
                else:
                    dest[j * cig:(j + 1) * cig] = x_row[c * cig:(c + 1) * cig]


@_inline
def gather_block(xg, n, g, od, oh, ow0, q_n, tabs, strides, dilations, kernel, cig, ow_lo, ow_hi, cols):
    """cols[q] = the window of pixel ow0 + q for q < q_n; zeros in the slots past q_n."""
    for q in range(PIXELS):
        if q >= q_n:
            cols[q, :] = 0
            continue
        ow = ow0 + q
        fast = dilations[2] == 1 and ow_lo <= ow <= ow_hi
        gather_window(xg, n, g, od, oh, ow, tabs, strides, dilations, kernel, cig, fast, cols[q])


# ---- forward -----------------------------------------------------------------------------

@_inline
def block_dot(cols, q_n, wp, co, p_n, acc, zero):
    """acc[q * 2 + p] = dot(cols[q], wp[co + p]): 4 pixels unless q_n is 1, p_n (1 or 2) channels."""
    acc[:] = zero
    if q_n > 1:
        if p_n == CHANNELS:
            dot_4x2(cols[0], cols[1], cols[2], cols[3], wp[co], wp[co + 1], acc, zero)
        else:
            dot_4x1(cols[0], cols[1], cols[2], cols[3], wp[co], acc, zero)
    elif p_n == CHANNELS:
        dot_1x2(cols[0], wp[co], wp[co + 1], acc, zero)
    else:
        dot_1x1(cols[0], wp[co], acc, zero)


@_inline
def store_block(out, acc, n, co, p_n, od, oh, ow0, q_n):
    for p in range(p_n):
        for q in range(q_n):
            out[n, co + p, od, oh, ow0 + q] = acc[q * CHANNELS + p]


@_parallel
def forward(xg, wp, out, tabs, strides, dilations, kernel, cig, ow_lo, ow_hi, co_chunk):
    """out (N, C_out, OD, OH, OW) from xg (N, G, D, H, W * cig) and wp (C_out, K * cig).

    Jobs are (image, output row, chunk of ``co_chunk`` output channels inside one group); a
    job walks its row in blocks of 4 pixels, each block's windows gathered once for all of
    the chunk's channels.  Pixels ow_lo..ow_hi have their windows inside the input along W."""
    n_images, c_out, out_d, out_h, out_w = out.shape
    groups = xg.shape[1]
    cog = c_out // groups
    chunks = (cog + co_chunk - 1) // co_chunk
    rows = out_d * out_h
    for job in numba.prange(n_images * rows * groups * chunks):
        n, rest = job // (rows * groups * chunks), job % (rows * groups * chunks)
        row, rest = rest // (groups * chunks), rest % (groups * chunks)
        g, chunk = rest // chunks, rest % chunks
        od, oh = row // out_h, row % out_h
        co_start = g * cog + chunk * co_chunk
        co_stop = min(co_start + co_chunk, (g + 1) * cog)
        cols = np.empty((PIXELS, wp.shape[1]), out.dtype)
        acc = np.zeros(PIXELS * CHANNELS, out.dtype)
        zero = acc[0]
        for ow0 in range(0, out_w, PIXELS):
            q_n = min(PIXELS, out_w - ow0)
            gather_block(xg, n, g, od, oh, ow0, q_n, tabs, strides, dilations, kernel, cig, ow_lo, ow_hi, cols)
            for co in range(co_start, co_stop, CHANNELS):
                p_n = min(CHANNELS, co_stop - co)
                block_dot(cols, q_n, wp, co, p_n, acc, zero)
                store_block(out, acc, n, co, p_n, od, oh, ow0, q_n)


# ---- to the kernels' layout ----------------------------------------------------------------

@_parallel
def to_group_channels_last(x, xg):
    """xg[n, g, d, h, w * cig + c] = x[n, g * cig + c, d, h, w]: x (N, C, D, H, W), any strides;
    jobs are (image, group, plane d), each writing its rows in order."""
    n_images, groups, depth, height = xg.shape[0], xg.shape[1], xg.shape[2], xg.shape[3]
    cig, width = x.shape[1] // groups, x.shape[4]
    for job in numba.prange(n_images * groups * depth):
        n, g, d = job // (groups * depth), job // depth % groups, job % depth
        for h in range(height):
            row = xg[n, g, d, h]
            for c in range(cig):
                source = x[n, g * cig + c, d, h]
                for w in range(width):
                    row[w * cig + c] = source[w]


# ---- weight gradient ---------------------------------------------------------------------

@_inline
def add_block_products(cols, gy, n, co, p_n, od, oh, ow0, q_n, sums0, sums1, zero):
    """sums_p += sum over the block's pixels q of gy[n, co + p, od, oh, ow0 + q] * cols[q]
    (slots past q_n hold zeros and get a zero factor): 4 FMAs per store."""
    c1 = co + p_n - 1
    g0, h0 = gy[n, co, od, oh, ow0], gy[n, c1, od, oh, ow0]
    g1, h1 = (gy[n, co, od, oh, ow0 + 1], gy[n, c1, od, oh, ow0 + 1]) if q_n > 1 else (zero, zero)
    g2, h2 = (gy[n, co, od, oh, ow0 + 2], gy[n, c1, od, oh, ow0 + 2]) if q_n > 2 else (zero, zero)
    g3, h3 = (gy[n, co, od, oh, ow0 + 3], gy[n, c1, od, oh, ow0 + 3]) if q_n > 3 else (zero, zero)
    x0, x1, x2, x3 = cols[0], cols[1], cols[2], cols[3]
    if p_n == CHANNELS:
        for e in range(sums0.shape[0]):
            a, b, c, d = x0[e], x1[e], x2[e], x3[e]
            sums0[e] += g0 * a + g1 * b + g2 * c + g3 * d
            sums1[e] += h0 * a + h1 * b + h2 * c + h3 * d
    else:
        for e in range(sums0.shape[0]):
            sums0[e] += g0 * x0[e] + g1 * x1[e] + g2 * x2[e] + g3 * x3[e]


@_parallel
def weight_grad(xg, gy, partial, tabs, strides, dilations, kernel, cig, ow_lo, ow_hi, co_chunk, row_chunks):
    """partial[chunk] (C_out, K * cig), float64: the weight gradient summed over the output
    rows of one of ``row_chunks`` chunks of all N * OD * OH rows, from xg (N, G, D, H, W * cig)
    and gy (N, C_out, OD, OH, OW).

    Jobs are (group, chunk of ``co_chunk`` channels, row chunk): a job owns its rows of
    ``partial``, so no two threads add into the same sums, and gathers each block of 4 pixels'
    windows once for all its channels.  The products of about FLUSH_PIXELS pixels are summed
    in the data's dtype (``sums``), then added to the float64 partial sums, so float32 sums
    stay short; adding after every row instead took half the time on 14-pixel rows."""
    n_images, c_out, out_d, out_h, out_w = gy.shape
    groups = xg.shape[1]
    cog, rows = c_out // groups, n_images * out_d * out_h
    chunks = (cog + co_chunk - 1) // co_chunk
    flush_rows = max(1, FLUSH_PIXELS // out_w)
    for job in numba.prange(groups * chunks * row_chunks):
        g, co_block, chunk = job // (chunks * row_chunks), job // row_chunks % chunks, job % row_chunks
        co_start = g * cog + co_block * co_chunk
        co_n = min(co_chunk, (g + 1) * cog - co_start)
        sums = np.empty((co_n, partial.shape[2]), gy.dtype)
        cols = np.empty((PIXELS, partial.shape[2]), gy.dtype)
        zero = np.zeros(1, gy.dtype)[0]
        first, stop = chunk * rows // row_chunks, (chunk + 1) * rows // row_chunks
        for flush in range(first, stop, flush_rows):
            sums[:] = 0
            for row in range(flush, min(flush + flush_rows, stop)):
                n, od, oh = row // (out_d * out_h), row // out_h % out_d, row % out_h
                for ow0 in range(0, out_w, PIXELS):
                    q_n = min(PIXELS, out_w - ow0)
                    gather_block(xg, n, g, od, oh, ow0, q_n, tabs, strides, dilations, kernel, cig, ow_lo, ow_hi,
                                 cols)
                    for co in range(co_start, co_start + co_n, CHANNELS):
                        p_n = min(CHANNELS, co_start + co_n - co)
                        add_block_products(cols, gy, n, co, p_n, od, oh, ow0, q_n, sums[co - co_start],
                                           sums[co - co_start + p_n - 1], zero)
            partial[chunk, co_start:co_start + co_n] += sums
