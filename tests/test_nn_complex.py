"""npconv.nn's conv modules on complex64 / complex128 parameters (issue 19).

Oracles: torch.nn's own complex module with torch autograd where torch 2.13 has the kernel, and
everywhere the complex convolution assembled from four real float64 torch convolutions
(re = conv(xr, wr) - conv(xi, wi), im = conv(xr, wi) + conv(xi, wr)) differentiated by torch
autograd through the real loss L = Re(sum(conj(g) * y)); gradients follow torch's convention
dL/dRe(z) + i dL/dIm(z), which complex finite differences of L confirm.
"""

import math

import numpy as np
import pytest
import torch

import npconv
from npconv import nn
from npconv.optim import SGD, Adam

CLASSES = {1: (nn.Conv1d, nn.ConvTranspose1d), 2: (nn.Conv2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.ConvTranspose3d)}
TORCH = {1: (torch.nn.Conv1d, torch.nn.ConvTranspose1d), 2: (torch.nn.Conv2d, torch.nn.ConvTranspose2d),
         3: (torch.nn.Conv3d, torch.nn.ConvTranspose3d)}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 5)}
# (in, out, kwargs) torch's modules accept; the module kind is picked by "transposed"
SETTINGS = {
    "k3": (3, 4, dict(kernel_size=3)),
    "k3-s2-p1-nobias": (2, 4, dict(kernel_size=3, stride=2, padding=1, bias=False)),
    "groups2-d2": (4, 6, dict(kernel_size=2, groups=2, dilation=2, padding=1)),
    "depthwise-same": (3, 3, dict(kernel_size=3, groups=3, padding="same")),
    "reflect": (2, 3, dict(kernel_size=3, padding=1, padding_mode="reflect")),
    "replicate-s2": (2, 3, dict(kernel_size=3, padding=2, padding_mode="replicate", stride=2)),
    "circular-groups2": (4, 2, dict(kernel_size=2, padding=1, padding_mode="circular", groups=2)),
    "T-k3": (3, 4, dict(kernel_size=3, transposed=True)),
    "T-s2-p1-op1": (2, 4, dict(kernel_size=3, stride=2, padding=1, output_padding=1, transposed=True)),
    "T-groups2-d2-nobias": (4, 6, dict(kernel_size=2, groups=2, dilation=2, bias=False, transposed=True)),
}
TOLERANCE = {np.complex64: 1e-5, np.complex128: 1e-12}


def crandn(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def assert_close(got, want, dtype):
    want = np.asarray(want)
    scale = max(float(np.max(np.abs(want))), 1.0) if want.size else 1.0
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.max(np.abs(got - want), initial=0.0) <= TOLERANCE[dtype] * scale


def build(n, name, dtype):
    c_in, c_out, kwargs = SETTINGS[name]
    kwargs = dict(kwargs)
    transposed = kwargs.pop("transposed", False)
    module = CLASSES[n][transposed](c_in, c_out, dtype=dtype, **kwargs)
    return module, (TORCH[n][transposed], c_in, c_out, kwargs)


def torch_twin(recipe, weight, bias, dtype):
    """The torch module of the recipe with these parameters (bias None: no bias)."""
    cls, c_in, c_out, kwargs = recipe
    twin = cls(c_in, c_out, **dict(kwargs, bias=bias is not None), dtype=dtype)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        if bias is not None:
            twin.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
    return twin


def four_real_oracle(recipe, x, w, b, g, real_w=False, real_x=False):
    """(y, grad_x, grad_w, grad_b) of the complex module from four real float64 torch convolutions,
    by torch autograd on L = Re(sum(conj(g) y)) = sum(gr yr + gi yi).  A real operand (real_w,
    real_x) gets one real tensor: its gradient is then real, as torch gives a real leaf."""
    def leaf(array, real):
        parts = [np.real(array)] if real else [np.real(array), np.imag(array)]
        return [torch.tensor(np.ascontiguousarray(p), dtype=torch.float64, requires_grad=True) for p in parts]
    xs, ws = leaf(x, real_x), leaf(w, real_w)
    real_module = torch_twin(recipe, np.zeros(w.shape), None, torch.float64)

    def conv(a, kernel):
        return torch.func.functional_call(real_module, {"weight": kernel}, (a,))
    xr, xi = xs[0], (xs[1] if len(xs) > 1 else None)
    wr, wi = ws[0], (ws[1] if len(ws) > 1 else None)
    yr = conv(xr, wr) - (conv(xi, wi) if xi is not None and wi is not None else 0)
    yi = (conv(xr, wi) if wi is not None else 0) + (conv(xi, wr) if xi is not None else 0)
    bs = [] if b is None else leaf(b, False)
    if bs:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        yr, yi = yr + bs[0].reshape(shape), yi + bs[1].reshape(shape)
    loss = (torch.from_numpy(np.ascontiguousarray(g.real)) * yr).sum()
    loss = loss + (torch.from_numpy(np.ascontiguousarray(g.imag)) * yi).sum()
    loss.backward()

    def gathered(parts):
        return parts[0].grad.numpy() + (1j * parts[1].grad.numpy() if len(parts) > 1 else 0)
    y = yr.detach().numpy() + 1j * (yi.detach().numpy() if torch.is_tensor(yi) else 0)
    return y, gathered(xs), gathered(ws), (gathered(bs) if bs else None)


def torch_complex(recipe, x, w, b, g):
    """torch's complex128 module and autograd, or None where torch 2.13 has no complex kernel."""
    twin = torch_twin(recipe, w.astype(np.complex128), None if b is None else b.astype(np.complex128),
                      torch.complex128)
    tx = torch.tensor(x.astype(np.complex128), requires_grad=True)
    try:
        y = twin(tx)
        y.backward(torch.from_numpy(g.astype(np.complex128)))
    except (NotImplementedError, RuntimeError):
        return None
    return (y.detach().numpy(), tx.grad.numpy(), twin.weight.grad.numpy(),
            None if b is None else twin.bias.grad.numpy())


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("n", [1, 2, 3], ids=["1d", "2d", "3d"])
def test_forward_and_backward_match_torch(n, name, dtype, rng):
    module, recipe = build(n, name, dtype)
    assert module.weight.dtype == dtype and (module.bias is None or module.bias.dtype == dtype)
    module.weight[...] = crandn(rng, module.weight.shape)
    if module.bias is not None:
        module.bias[...] = crandn(rng, module.bias.shape)
    x = crandn(rng, (2, module.in_channels) + SPATIAL[n], dtype)
    y = module(x)
    assert y.dtype == dtype
    g = crandn(rng, y.shape, dtype)
    gx = module.backward(g)
    got = (y, gx, module.weight.grad, None if module.bias is None else module.bias.grad)
    w, b = np.asarray(module.weight), None if module.bias is None else np.asarray(module.bias)
    oracles = [four_real_oracle(recipe, x, w, b, g)]
    native = torch_complex(recipe, x, w, b, g)
    if native is not None:
        oracles.append(native)
    for oracle in oracles:
        for mine, want in zip(got, oracle):
            assert (mine is None) == (want is None)
            if mine is not None:
                assert mine.dtype == dtype
                assert_close(mine, want, dtype)


def torch_coverage():
    """Which of the grid's cases torch 2.13's complex module runs (forward and backward)."""
    ran = {}
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        for name in SETTINGS:
            module, recipe = build(n, name, np.complex128)
            x = crandn(rng, (1, module.in_channels) + SPATIAL[n])
            g = crandn(rng, module(x).shape)
            ran[(n, name)] = torch_complex(recipe, x, np.asarray(module.weight), None, g) is not None
    return ran


def test_torch_oracle_runs_on_most_of_the_grid():
    """The second oracle is not empty: torch's complex kernels cover most cases (printed)."""
    ran = torch_coverage()
    print(f"\ntorch complex128 ran {sum(ran.values())} of {len(ran)}; missing: "
          f"{[k for k, v in ran.items() if not v]}")
    assert sum(ran.values()) >= len(ran) // 2


@pytest.mark.parametrize("name", ["k3-s2-p1-nobias", "reflect", "T-s2-p1-op1"])
def test_gradients_agree_with_complex_finite_differences(name, rng):
    """L = Re(sum(conj(g) y)); along a complex direction d of z, dL/dt = Re(sum(conj(grad_z) d))."""
    module, _ = build(2, name, np.complex128)
    x = crandn(rng, (1, module.in_channels) + SPATIAL[2])
    g = crandn(rng, module(x).shape)
    gx = module.backward(g)

    def loss(x_, w_, b_=None):
        probe, _ = build(2, name, np.complex128)
        probe.weight[...] = w_
        if probe.bias is not None:
            probe.bias[...] = b_
        return float(np.real(np.sum(np.conj(g) * probe(x_))))
    w, b = np.asarray(module.weight).copy(), None if module.bias is None else np.asarray(module.bias).copy()
    h = 1e-6
    for _ in range(3):
        dx, dw = crandn(rng, x.shape), crandn(rng, w.shape)
        slope_x = (loss(x + h * dx, w, b) - loss(x - h * dx, w, b)) / (2 * h)
        slope_w = (loss(x, w + h * dw, b) - loss(x, w - h * dw, b)) / (2 * h)
        assert slope_x == pytest.approx(np.real(np.sum(np.conj(gx) * dx)), rel=1e-7, abs=1e-7)
        assert slope_w == pytest.approx(np.real(np.sum(np.conj(module.weight.grad) * dw)), rel=1e-7, abs=1e-7)


# ---- mixed real and complex ----------------------------------------------------------------

def test_real_module_on_complex_input_promotes_and_keeps_real_parameter_gradients(rng):
    """NumPy promotion (torch would refuse the mixed dtypes); a real parameter's gradient is the real
    part of the complex one, as torch autograd gives a real leaf fed into complex arithmetic."""
    module, recipe = build(2, "groups2-d2", np.float64)
    x = crandn(rng, (2, 4) + SPATIAL[2])
    y = module(x)
    assert y.dtype == np.complex128
    g = crandn(rng, y.shape)
    gx = module.backward(g)
    assert gx.dtype == np.complex128
    assert module.weight.grad.dtype == module.bias.grad.dtype == np.float64
    want = four_real_oracle(recipe, x, np.asarray(module.weight), np.asarray(module.bias, complex), g, real_w=True)
    for mine, oracle in zip((y, gx, module.weight.grad), want):
        assert_close(mine, oracle, np.complex128)
    assert_close(module.bias.grad, np.real(want[3]), np.complex128)


def test_complex_module_on_real_input_gives_a_real_input_gradient(rng):
    module, recipe = build(1, "T-s2-p1-op1", np.complex64)
    x = rng.standard_normal((2, 2, 9)).astype(np.float32)
    y = module(x)
    assert y.dtype == np.complex64
    g = crandn(rng, y.shape, np.complex64)
    gx = module.backward(g)
    assert gx.dtype == np.float32
    want = four_real_oracle(recipe, x, np.asarray(module.weight), np.asarray(module.bias), g, real_x=True)
    for mine, oracle in zip((y, gx, module.weight.grad, module.bias.grad), want):
        assert_close(mine, oracle, np.complex64)


def test_float32_module_on_complex128_input(rng):
    module = nn.Conv1d(2, 3, 3)
    x = crandn(rng, (1, 2, 8))
    y = module(x)
    assert y.dtype == np.complex128
    module.backward(np.ones_like(y))
    assert module.weight.grad.dtype == np.float32


# ---- initialisation ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
def test_complex_init_is_torchs_distribution(dtype, transposed):
    """torch's kaiming_uniform_(a=sqrt(5)) and the bias's uniform_ fill a complex tensor's real
    view: real and imaginary parts each U(-b, b), independent, b = 1/sqrt(weight.shape[1] * prod(k))."""
    npconv.manual_seed(0)
    cls, torch_cls = (nn.ConvTranspose2d, torch.nn.ConvTranspose2d) if transposed else (nn.Conv2d, torch.nn.Conv2d)
    module = cls(40, 300, 3, dtype=dtype)
    torch.manual_seed(0)
    twin = torch_cls(40, 300, 3, dtype=torch.complex64 if dtype == np.complex64 else torch.complex128)
    bound = 1 / math.sqrt(module.weight.shape[1] * 9)
    assert module.weight.dtype == module.bias.dtype == dtype
    for mine, theirs in ((module.weight, twin.weight), (module.bias, twin.bias)):
        theirs = theirs.detach().numpy()
        for part in (np.real, np.imag):
            values, reference = part(np.asarray(mine)).ravel(), part(theirs).ravel()
            # both in [-b, b], filling it: the same bound as torch's (whose extremes come as close)
            assert np.all(np.abs(values) <= bound * (1 + 1e-6))
            edge = 1 - 20 / values.size
            assert values.max() > bound * edge and values.min() < -bound * edge
            assert np.max(np.abs(reference)) <= bound * (1 + 1e-6)
            # U(-b, b): mean 0, variance b^2/3 (4.5 standard errors)
            n = values.size
            assert abs(values.mean()) < 4.5 * bound / math.sqrt(3 * n)
            assert abs(values.var() - bound**2 / 3) < 4.5 * bound**2 * math.sqrt(4 / 45 / n)
        assert abs(np.corrcoef(np.real(mine).ravel(), np.imag(mine).ravel())[0, 1]) < 4.5 / math.sqrt(mine.size)


def test_complex_init_parts_pass_a_two_sample_test_against_torchs():
    from scipy import stats
    npconv.manual_seed(1)
    torch.manual_seed(1)
    mine = nn.Conv1d(8, 200, 5, dtype=np.complex128).weight
    theirs = torch.nn.Conv1d(8, 200, 5, dtype=torch.complex128).weight.detach().numpy()
    for part in (np.real, np.imag):
        assert stats.ks_2samp(part(mine).ravel(), part(theirs).ravel()).pvalue > 1e-4


def test_real_init_draws_as_before():
    """The real modules' draws are unchanged by the complex branch (seeded results stay)."""
    npconv.manual_seed(5)
    module = nn.Conv2d(2, 3, 3, dtype=np.float64)
    npconv.manual_seed(5)
    bound = 1 / math.sqrt(18)
    weight = npconv.random.generator().uniform(-bound, bound, (3, 2, 3, 3))
    np.testing.assert_array_equal(module.weight, weight)


# ---- the module's other faces ----------------------------------------------------------------

def test_repr_is_torchs():
    """torch's repr shows no dtype (complex or real): nor does npconv's."""
    assert repr(nn.Conv2d(2, 3, 3, dtype=np.complex64)) == repr(torch.nn.Conv2d(2, 3, 3, dtype=torch.complex64))
    assert repr(nn.ConvTranspose1d(2, 3, 3, stride=2, bias=False, dtype=np.complex128)) == repr(
        torch.nn.ConvTranspose1d(2, 3, 3, stride=2, bias=False, dtype=torch.complex128))


def test_unbatched_and_output_size_and_lazy(rng):
    module = nn.ConvTranspose2d(2, 3, 3, stride=2, dtype=np.complex128)
    x = crandn(rng, (2, 4, 5))
    batched = module(x[None], output_size=(10, 12))[0]
    y = module(x, output_size=(10, 12))
    assert y.shape == (3, 10, 12) and y.dtype == np.complex128
    np.testing.assert_allclose(y, batched, rtol=0, atol=1e-13)
    gx = module.backward(crandn(rng, y.shape))
    assert gx.shape == x.shape and gx.dtype == np.complex128
    lazy = nn.LazyConv1d(4, 3, dtype=np.complex64)
    assert lazy(crandn(rng, (1, 5, 8), np.complex64)).dtype == np.complex64
    assert lazy.weight.dtype == np.complex64 and lazy.weight.shape == (4, 5, 3)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_and_load_round_trip(tmp_path, suffix):
    module = nn.Conv2d(2, 3, 3, dtype=np.complex64 if suffix == ".safetensors" else np.complex128)
    path = tmp_path / f"conv{suffix}"
    npconv.save(module.state_dict(), path)
    other = nn.Conv2d(2, 3, 3, dtype=module.weight.dtype)
    other.load_state_dict(npconv.load(path))
    for name, value in module.state_dict().items():
        assert other.state_dict()[name].dtype == value.dtype
        np.testing.assert_array_equal(other.state_dict()[name], value)


def test_depthwise_separable_takes_complex(rng):
    layer = nn.DepthwiseSeparableConv2d(3, 4, 3, padding=1, dtype=np.complex128)
    x = crandn(rng, (1, 3, 6, 6))
    want = layer.pointwise(layer.depthwise(x))
    np.testing.assert_allclose(layer(x), want, rtol=0, atol=1e-13)
    assert layer(x).dtype == np.complex128


def test_dtype_refusals_name_what_is_taken():
    with pytest.raises(TypeError, match=r"dtype must be float32 or float64 \(or complex64, complex128\), got int32"):
        nn.Conv2d(2, 3, 3, dtype=np.int32)
    with pytest.raises(TypeError, match=r"dtype must be float32 or float64 \(or complex64, complex128\), got "
                                        r"complex256"):
        nn.Conv1d(2, 3, 3, dtype=np.clongdouble)


# ---- training --------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum-decay", "adam"])
def test_three_training_steps_match_torch(optimizer, rng):
    module = nn.Conv2d(2, 3, 3, padding=1, dtype=np.complex128)
    twin = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.complex128)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(np.asarray(module.weight)))
        twin.bias.copy_(torch.from_numpy(np.asarray(module.bias)))
    settings = {"sgd": dict(lr=0.1), "sgd-momentum-decay": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                "adam": dict(lr=0.01, weight_decay=0.01)}[optimizer]
    cls, torch_cls = (Adam, torch.optim.Adam) if optimizer == "adam" else (SGD, torch.optim.SGD)
    mine, theirs = cls(module.parameters(), **settings), torch_cls(twin.parameters(), **settings)
    x, target = crandn(rng, (2, 2, 5, 5)), crandn(rng, (2, 3, 5, 5))
    for _ in range(3):
        mine.zero_grad()
        theirs.zero_grad()
        y = module(x)
        module.backward(2 * (y - target))  # the gradient of sum |y - target|^2 in torch's convention
        loss = (twin(torch.from_numpy(x)) - torch.from_numpy(target)).abs().pow(2).sum()
        loss.backward()
        np.testing.assert_allclose(module.weight.grad, twin.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
        mine.step()
        theirs.step()
    np.testing.assert_allclose(module.weight, twin.weight.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.bias, twin.bias.detach().numpy(), rtol=1e-12, atol=1e-12)


# ---- Dask and streaming ----------------------------------------------------------------------

@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
def test_dask_conv_blockwise_equals_numpy(transposed, rng):
    da = pytest.importorskip("dask.array")
    import npconv.dask as ndask
    x = crandn(rng, (2, 2, 9, 8))
    w = crandn(rng, (2, 3, 3, 3)) if transposed else crandn(rng, (3, 2, 3, 3))
    b = crandn(rng, 3)
    kwargs = dict(stride=2, padding=1) if transposed else dict(stride=2, padding=1, padding_mode="reflect")
    want = npconv.conv(x, w, b, transposed=transposed, **kwargs)
    got = ndask.conv(da.from_array(x, chunks=(1, 2, 5, 4)), w, b, transposed=transposed, **kwargs)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got.compute(), want, rtol=0, atol=1e-12)
    real_input = ndask.conv(da.from_array(x.real.astype(np.float32), chunks=(1, 2, 5, 4)), w.astype(np.complex64),
                            transposed=transposed, stride=2)
    assert real_input.dtype == np.complex64
    np.testing.assert_allclose(real_input.compute(), npconv.conv(x.real.astype(np.float32), w.astype(np.complex64),
                                                                 transposed=transposed, stride=2), rtol=0, atol=1e-5)


def test_module_dask_face_takes_complex(rng):
    da = pytest.importorskip("dask.array")
    module = nn.Conv2d(2, 3, 3, padding=1, dtype=np.complex64)
    x = crandn(rng, (2, 2, 8, 8), np.complex64)
    got = module(da.from_array(x, chunks=(1, 2, 4, 4)))
    np.testing.assert_allclose(got.compute(), module(x), rtol=0, atol=1e-5)


def test_streaming_complex_equals_offline(rng):
    from npconv.stream import StreamingConv
    module = nn.Conv1d(2, 3, 3, dilation=2, stride=2, dtype=np.complex128)
    stream = StreamingConv(module)
    x = crandn(rng, (1, 2, 23))
    parts = [stream.step(x[..., i:i + 4]) for i in range(0, 23, 4)]
    streamed = np.concatenate(parts, axis=-1)
    assert streamed.dtype == np.complex128
    want = module(np.pad(x, ((0, 0), (0, 0), (4, 0))))
    np.testing.assert_allclose(streamed, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stream.offline(x), want, rtol=0, atol=1e-12)


def test_streaming_complex_history_with_real_pieces_keeps_its_imaginary_part(rng):
    from npconv.stream import StreamingConv
    module = nn.Conv2d(2, 2, (3, 2), padding=((2, 0), (0, 0)), dtype=np.float64)
    history = crandn(rng, (1, 2, 2, 4))
    x = rng.standard_normal((1, 2, 5, 4))
    streamed = StreamingConv(module, initial_state=history).step(x)
    assert streamed.dtype == np.complex128
    want = npconv.conv(np.concatenate([history, x], axis=2), np.asarray(module.weight), np.asarray(module.bias))
    np.testing.assert_allclose(streamed, want, rtol=0, atol=1e-12)
