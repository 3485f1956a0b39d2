"""LayerNorm's compiled kernel over one normalised axis (imported on first use, through
:func:`npconv.compiled.kernels`).

The array is seen as (outer, C, inner) with C the normalised axis: rows of C values
(``inner`` = 1, a C-contiguous (..., C) input) or ConvNeXt's channels of an NCHW map permuted
to (N, H, W, C) (``inner`` = H * W).  Each job takes one outer index and a run of inner
positions; the mean and the variance are summed in float64 over C, then one pass writes the
normalised, scaled and shifted values (and x-hat for a training backward).  NumPy took about
eight passes with float64 temporaries for the same work.
"""

import math

import numba
import numpy as np

RUN = 256  # inner positions per job


@numba.njit(parallel=True, cache=True)
def layer_norm(x, weight, bias, eps, out, xhat, mean, invstd):
    """out = (x - mean) * invstd * weight + bias over axis 1 of x (O, C, I); mean and invstd
    (O, I) in float64; xhat (O, C, I) written too unless it is empty."""
    outer, channels, inner = x.shape
    runs = (inner + RUN - 1) // RUN
    keep_xhat = xhat.size > 0
    for job in numba.prange(outer * runs):
        o, start = job // runs, (job % runs) * RUN
        stop = min(inner, start + RUN)
        total = np.zeros(stop - start)
        for c in range(channels):
            for i in range(start, stop):
                total[i - start] += x[o, c, i]
        average = total / channels
        spread = np.zeros(stop - start)
        for c in range(channels):
            for i in range(start, stop):
                d = x[o, c, i] - average[i - start]
                spread[i - start] += d * d
        inverse = np.empty(stop - start)
        for i in range(stop - start):
            inverse[i] = 1.0 / math.sqrt(spread[i] / channels + eps)
            mean[o, start + i] = average[i]
            invstd[o, start + i] = inverse[i]
        for c in range(channels):
            w, b = weight[c], bias[c]
            for i in range(start, stop):
                normalised = (x[o, c, i] - average[i - start]) * inverse[i - start]
                out[o, c, i] = normalised * w + b
                if keep_xhat:
                    xhat[o, c, i] = normalised


@numba.njit(parallel=True, cache=True)
def batch_norm_train(x, weight, bias, eps, out, xhat, mean, var):
    """Batch statistics of x (N, C, I) per channel (float64 sums, two passes), then one pass
    writing x-hat and out = x-hat * weight + bias; mean and biased var (C,) returned in place."""
    images, channels, inner = x.shape
    count = images * inner
    for c in numba.prange(channels):
        total = 0.0
        for n in range(images):
            for i in range(inner):
                total += x[n, c, i]
        average = total / count
        spread = 0.0
        for n in range(images):
            for i in range(inner):
                d = x[n, c, i] - average
                spread += d * d
        mean[c], var[c] = average, spread / count
        inverse = 1.0 / math.sqrt(spread / count + eps)
        w, b = weight[c], bias[c]
        for n in range(images):
            for i in range(inner):
                normalised = (x[n, c, i] - average) * inverse
                xhat[n, c, i] = normalised
                out[n, c, i] = normalised * w + b


@numba.njit(parallel=True, cache=True)
def batch_norm_backward(grad_output, xhat, scale, grad_input, sum_g, sum_gx):
    """Through batch statistics, per channel: sum_g = sum(g), sum_gx = sum(g * x-hat) (float64,
    returned in place), grad_input = scale * (g - mean(g) - x-hat * mean(g * x-hat))."""
    images, channels, inner = grad_output.shape
    count = images * inner
    for c in numba.prange(channels):
        total, product = 0.0, 0.0
        for n in range(images):
            for i in range(inner):
                g = grad_output[n, c, i]
                total += g
                product += g * xhat[n, c, i]
        sum_g[c], sum_gx[c] = total, product
        s = scale[c]
        mean_g, mean_gx = total / count, product / count
        for n in range(images):
            for i in range(inner):
                grad_input[n, c, i] = s * (grad_output[n, c, i] - mean_g - xhat[n, c, i] * mean_gx)
