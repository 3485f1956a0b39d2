"""Every algorithm, forced, on every grid case it applies to: forward and weight gradient
against PyTorch, forward against the reference implementation."""

import os

import numpy as np
import pytest
import torch

import npconv
import npconv.grad as G
from npconv import select
from npconv.algorithms.reference import conv_reference
from npconv.spec import ConvSpec

from conftest import assert_matches
from helpers import (CHANNELS, CONV_GEOMETRIES, DTYPES, SPATIAL, TRANSPOSED_GEOMETRIES, documented_pads, grid_operands,
                     per_dim, tensor_oracle, torch_conv, torch_conv_transpose, torch_gradients)

TRANSPOSED_ALGORITHMS = ("gemm_col2im", "polyphase")
CASES = [(name, n, channels, geometry, dtype)
         for name in select.ALGORITHMS if name not in TRANSPOSED_ALGORITHMS
         for n in SPATIAL for channels in CHANNELS for geometry in CONV_GEOMETRIES for dtype in DTYPES]


def _applicable(case):
    name, n, channels, geometry, dtype = case
    x, w, b, groups, params = grid_operands(n, channels, CONV_GEOMETRIES[geometry], DTYPES[dtype], False, 0)
    spec = ConvSpec.build(w.shape[2:], params.get("stride", 1), params.get("padding", 0), params.get("dilation", 1),
                          groups, params.get("padding_mode", "zeros"), ndim=n)
    return select.ALGORITHMS[name].applies(spec, x.shape, w.shape)


APPLICABLE = [c for c in CASES if _applicable(c)]


@pytest.fixture
def forced():
    def force(name):
        select.set_algorithm(name)
    yield force
    select.set_algorithm(None)


@pytest.mark.parametrize("case", APPLICABLE, ids=["-".join(map(str, c)) for c in APPLICABLE])
def test_forced_algorithm_matches_torch_and_reference(case, forced):
    name, n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    index = len(geometry) + n
    x, w, b, groups, params = grid_operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    forced(name)
    want = torch_conv(x, w, b, groups, params, n)
    assert_matches(npconv.conv(x, w, b, groups=groups, **params), want, dtype)
    stride, dilation = per_dim(params.get("stride", 1), n), per_dim(params.get("dilation", 1), n)
    pads = documented_pads(params.get("padding", 0), n, w.shape[2:], stride, dilation, x.shape[2:])
    ref = conv_reference(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups,
                         padding_mode=params.get("padding_mode", "zeros"))
    assert_matches(npconv.conv(x.astype(np.float64), w.astype(np.float64), b, groups=groups, **params), ref,
                   np.float64)
    gy, _, gw_t, _ = torch_gradients(tensor_oracle(torch_conv), x, w, b, groups, params, n, index)
    kwargs = {k: params[k] for k in ("stride", "padding", "dilation", "padding_mode") if k in params}
    assert_matches(G.conv_weight(x, w.shape, gy, groups=groups, **kwargs), gw_t, dtype)


def test_every_algorithm_is_exercised():
    assert {c[0] for c in APPLICABLE} == set(select.ALGORITHMS) - set(TRANSPOSED_ALGORITHMS)
    assert set(TRANSPOSED_ALGORITHMS) <= set(select.ALGORITHMS)


TRANSPOSED_CASES = [(name, n, channels, geometry, dtype) for name in TRANSPOSED_ALGORITHMS for n in SPATIAL
                    for channels in CHANNELS for geometry in TRANSPOSED_GEOMETRIES for dtype in DTYPES]


@pytest.mark.parametrize("case", TRANSPOSED_CASES, ids=["-".join(map(str, c)) for c in TRANSPOSED_CASES])
def test_forced_transposed_algorithm_matches_torch_forward_and_gradients(case, forced):
    """Forced, a transposed algorithm serves the transposed forward and, through it, the input
    gradient of every strided conv of the conv grid's shapes (its adjoint)."""
    name, n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    index = len(geometry) + n
    x, w, b, groups, params = grid_operands(n, channels, TRANSPOSED_GEOMETRIES[geometry], dtype, True, index)
    forced(name)
    kwargs = dict({k: params[k] for k in ("stride", "padding", "dilation") if k in params}, groups=groups)
    op = params.get("output_padding", 0)
    want = torch_conv_transpose(x, w, b, groups, params, n)
    assert_matches(npconv.conv(x, w, b, transposed=True, output_padding=op, **kwargs), want, dtype)
    gy, gx_t, gw_t, _ = torch_gradients(tensor_oracle(torch_conv_transpose), x, w, b, groups, params, n, index)
    assert_matches(G.conv_input(x.shape, w, gy, transposed=True, output_padding=op, **kwargs), gx_t, dtype)
    assert_matches(G.conv_weight(x, w.shape, gy, transposed=True, output_padding=op, **kwargs), gw_t, dtype)


STRIDED_CONV_CASES = [(name, n, channels, geometry, dtype) for name in TRANSPOSED_ALGORITHMS for n in SPATIAL
                      for channels in CHANNELS for geometry in CONV_GEOMETRIES for dtype in DTYPES
                      if "stride" in CONV_GEOMETRIES[geometry]]


@pytest.mark.parametrize("case", STRIDED_CONV_CASES, ids=["-".join(map(str, c)) for c in STRIDED_CONV_CASES])
def test_forced_transposed_algorithm_gives_strided_convs_input_gradient(case, forced):
    name, n, channels, geometry, dtype_name = case
    dtype = DTYPES[dtype_name]
    index = len(geometry) + n
    x, w, b, groups, params = grid_operands(n, channels, CONV_GEOMETRIES[geometry], dtype, False, index)
    forced(name)
    gy, gx_t, _, _ = torch_gradients(tensor_oracle(torch_conv), x, w, b, groups, params, n, index)
    kwargs = {k: params[k] for k in ("stride", "padding", "dilation", "padding_mode") if k in params}
    assert_matches(G.conv_input(x.shape, w, gy, groups=groups, **kwargs), gx_t, dtype)


@pytest.mark.parametrize("k,stride,dilation,mode", [(7, 1, 1, "zeros"), (9, 2, 1, "reflect"), (5, 1, 2, "circular"),
                                                    (31, 1, 1, "zeros")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_on_large_depthwise_kernels(k, stride, dilation, mode, dtype, forced):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 6, 40, 36)).astype(dtype)
    w = rng.standard_normal((12, 1, k, k)).astype(dtype)
    pad = dilation * (k - 1) // 2
    forced("fft")
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    padded = torch.nn.functional.pad(tx, (pad,) * 4, mode="constant" if mode == "zeros" else mode)
    y_t = torch.nn.functional.conv2d(padded, tw, stride=stride, dilation=dilation, groups=6)
    got = npconv.conv(x, w, stride=stride, padding=pad, dilation=dilation, groups=6, padding_mode=mode)
    assert_matches(got, y_t, dtype)
    gy = rng.standard_normal(got.shape).astype(dtype)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(G.conv_weight(x, w.shape, gy, stride=stride, padding=pad, dilation=dilation, groups=6,
                                 padding_mode=mode), tw.grad, dtype)


def test_compiled_depthwise_kernels_load_from_numbas_disk_cache_in_a_new_process(tmp_path):
    """A second process finds the first one's compiled kernels (closures over jitted functions
    missed Numba's cache in every process and recompiled for seconds)."""
    import subprocess
    import sys
    script = ("import numpy as np, npconv\n"
              "x = np.ones((1, 16, 6, 6), np.float32); w = np.ones((16, 1, 3, 3), np.float32)\n"
              "npconv.set_algorithm('depthwise_jit')\n"
              "print(npconv.conv(x, w, padding=1, groups=16)[0, 0, 0, 0])\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert all(run.stdout.strip().splitlines()[-1] == "4.0" for run in runs)  # a corner sums 2x2 ones
    first, second = (run.stdout + run.stderr for run in runs)
    assert "data saved" in first and "forward" in first
    assert "data saved" not in second and "data loaded" in second


@pytest.mark.parametrize("channels,size,kernel,stride,dilation,padding", [
    (3, (37, 23), (5, 5), 1, 1, 2), (8, (64, 40), (31, 1), 1, 1, (15, 0)), (2, (29, 31), (3, 3), 2, 1, 1),
    (1, (33, 17), (3, 3), 1, 3, 0), (5, (9, 12), (3, 2), (2, 1), (1, 2), (1, 0)), (4, (5, 30), (3, 3), 1, 1, 1)])
def test_compiled_depthwise_splits_few_channel_images_into_row_chunks(channels, size, kernel, stride, dilation,
                                                                      padding):
    """Images with few channels run as chunks of output rows (every thread busy), forward and
    weight gradient; each chunk reads only its rows, at every stride and dilation, with rows
    left over when out_h does not divide."""
    from npconv.algorithms import depthwise_jit
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((1, channels) + size).astype(np.float32)
    w = rng.standard_normal((channels, 1) + kernel).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride, padding=padding,
                                       dilation=dilation, groups=channels)
    assert depthwise_jit._row_chunks(want.shape) == min(want.shape[2], depthwise_jit.JOBS_PER_THREAD *
                                                        __import__("numba").get_num_threads())
    gy = rng.standard_normal(want.shape).astype(np.float32)
    want_gw = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w.shape, torch.from_numpy(gy), stride=stride,
                                          padding=padding, dilation=dilation, groups=channels)
    npconv.set_algorithm("depthwise_jit")
    try:
        got = npconv.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=channels)
        got_gw = G.conv2d_weight(x, w.shape, gy, stride=stride, padding=padding, dilation=dilation, groups=channels)
    finally:
        npconv.set_algorithm(None)
    assert_matches(got, want, np.float32)
    assert_matches(got_gw, want_gw, np.float32)
