"""Regression tests for two failure classes an adversarial audit found in the engine.

1. A transposed conv whose output_padding reaches its stride (allowed when dilation > stride)
   has a plain-conv twin with more outputs than the transposed input has positions; the
   weight gradient crashed on the mismatch.  Swept against PyTorch.
2. An empty batch crashed the depthwise kernels, the weight gradient and module backward;
   PyTorch returns empty results and zero weight gradients.
"""

import itertools

import numpy as np
import pytest
import torch

import npconv
import npconv.functional as F

TORCH_TRANSPOSED = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
                    3: torch.nn.functional.conv_transpose3d}


def _reach_cases():
    """(ndim, kernel, stride, dilation, output_padding, padding) with output_padding >= stride."""
    for n, k, s, d, p in itertools.product((1, 2), (1, 2), (1, 2), (2, 3), (0, 1)):
        for op in range(s, max(s, d)):
            yield n, k, s, d, op, p
    yield 3, 1, 1, 2, 1, 0


@pytest.mark.parametrize("n, k, s, d, op, p", list(_reach_cases()))
def test_transposed_gradients_when_output_padding_reaches_stride(n, k, s, d, op, p):
    rng = np.random.default_rng(k + 10 * s + 100 * d + 1000 * op + p)
    x, w = rng.standard_normal((2, 3) + (4,) * n), rng.standard_normal((3, 2) + (k,) * n)
    options = dict(stride=s, padding=p, output_padding=op, dilation=d)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = TORCH_TRANSPOSED[n](xt, wt, **options)
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    grad_input = getattr(npconv.grad, f"conv_transpose{n}d_input")(x.shape, w, gy, **options)
    grad_weight = getattr(npconv.grad, f"conv_transpose{n}d_weight")(x, w.shape, gy, **options)
    np.testing.assert_allclose(grad_input, xt.grad.numpy(), rtol=0, atol=1e-12 * np.abs(xt.grad.numpy()).max())
    np.testing.assert_allclose(grad_weight, wt.grad.numpy(), rtol=0, atol=1e-12 * np.abs(wt.grad.numpy()).max())


def test_the_audit_repros():
    layer = npconv.nn.ConvTranspose1d(2, 1, kernel_size=1, dilation=2, output_padding=1)
    y = layer(np.ones((3, 2, 4), np.float32))
    layer.backward(np.ones_like(y))
    torch_layer = torch.nn.ConvTranspose1d(2, 1, kernel_size=1, dilation=2, output_padding=1)
    torch_layer.weight.data = torch.from_numpy(np.asarray(layer.weight))
    torch_layer(torch.ones(3, 2, 4)).backward(torch.ones(3, 1, 5))
    np.testing.assert_allclose(layer.weight.grad, torch_layer.weight.grad.numpy(), atol=1e-6)
    gw = npconv.grad.conv_transpose2d_weight(np.ones((1, 2, 3, 3)), (2, 2, 1, 1), np.ones((1, 2, 7, 3)),
                                             stride=(2, 1), output_padding=(2, 0), dilation=(3, 1))
    np.testing.assert_array_equal(gw, np.full((2, 2, 1, 1), 9.0))


EMPTY = {  # name: (input shape, weight shape, kwargs)
    "depthwise": ((0, 4, 5, 5), (4, 1, 3, 3), dict(groups=4)),
    "dense": ((0, 3, 6, 6), (5, 3, 3, 3), dict(padding=1)),
    "pointwise": ((0, 4, 5, 5), (6, 4, 1, 1), {}),
    "large_depthwise": ((0, 4, 20, 20), (4, 1, 9, 9), dict(groups=4, padding=4)),
    "conv1d": ((0, 2, 5), (3, 2, 1), {}),
    "transposed_depthwise": ((0, 4, 5, 5), (4, 1, 3, 3), dict(groups=4, transposed=True)),
    "transposed_s2": ((0, 4, 5, 5), (4, 2, 3, 3), dict(stride=2, transposed=True)),
    "conv3d": ((0, 2, 4, 4, 4), (4, 2, 3, 3, 3), dict(padding=1)),
}


def _torch_call(x, w, b, kwargs):
    n = x.dim() - 2
    name = f"conv_transpose{n}d" if kwargs.get("transposed") else f"conv{n}d"
    return getattr(torch.nn.functional, name)(x, w, b, **{k: v for k, v in kwargs.items() if k != "transposed"})


@pytest.mark.parametrize("algorithm", [None, "im2col_gemm", "depthwise_direct", "depthwise_jit", "fft", "pointwise"])
@pytest.mark.parametrize("case", EMPTY)
def test_empty_batch_as_pytorch(case, algorithm):
    x_shape, w_shape, kwargs = EMPTY[case]
    rng = np.random.default_rng(0)
    x, w = np.zeros(x_shape), rng.standard_normal(w_shape)
    out_channels = w_shape[1] * kwargs.get("groups", 1) if kwargs.get("transposed") else w_shape[0]
    b = rng.standard_normal(out_channels)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = _torch_call(xt, wt, bt, kwargs)
    y.backward(torch.zeros(y.shape, dtype=torch.float64))
    gy = np.zeros(tuple(y.shape))
    npconv.set_algorithm(algorithm)
    try:
        got = npconv.conv(x, w, b, **kwargs)
        gx = npconv.grad.conv_input(x_shape, w, gy, **kwargs)
        gw = npconv.grad.conv_weight(x, w_shape, gy, **kwargs)
    finally:
        npconv.set_algorithm(None)
    assert got.shape == tuple(y.shape) and gx.shape == x_shape
    np.testing.assert_array_equal(gw, wt.grad.numpy())
    np.testing.assert_array_equal(npconv.grad.conv_bias(gy), bt.grad.numpy())


@pytest.mark.parametrize("layer", ["Conv2d(4, 4, 3, groups=4)", "Conv2d(3, 8, 3, padding=1)",
                                   "ConvTranspose2d(4, 2, 3, stride=2)", "Conv1d(2, 3, 1)"])
def test_module_backward_on_an_empty_batch(layer):
    module = eval(f"npconv.nn.{layer}")
    reference = eval(f"torch.nn.{layer}").double()
    n = len(module.kernel_size)
    x = np.zeros((0, module.in_channels) + (6,) * n)
    y = module(x)
    gx = module.backward(np.zeros_like(y))
    xt = torch.zeros(x.shape, dtype=torch.float64, requires_grad=True)
    yt = reference(xt)
    yt.backward(torch.zeros_like(yt))
    assert y.shape == tuple(yt.shape) and gx.shape == x.shape
    np.testing.assert_array_equal(module.weight.grad, reference.weight.grad.numpy())
    np.testing.assert_array_equal(module.bias.grad, reference.bias.grad.numpy())
