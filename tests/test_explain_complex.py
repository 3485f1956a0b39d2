"""npconv.explain with complex numbers (issue 19, point 4), against PyTorch.

Two oracles, both independent of npconv: PyTorch's own complex convolutions, and the complex
result assembled from four real PyTorch convolutions in float64 (re = xr*wr - xi*wi,
im = xr*wi + xi*wr), whose real autograd gives the exact derivative of every output.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from npconv import functional as F
from npconv import grad
from npconv.explain import conv_matrix, explain_output, explain_transposed_output

TOLERANCE = {np.dtype(np.complex64): 1e-5, np.dtype(np.complex128): 1e-12}
TORCH_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def assert_close(got, want, dtype):
    """max |got - want| <= tol * max |want| (tol by the complex dtype)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-300)
    err = np.abs(got.astype(np.complex128) - want.astype(np.complex128)).max(initial=0.0) / scale
    assert err <= TOLERANCE[np.dtype(dtype)], f"relative error {err:.3e}"


def random_complex(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def four_real_conv(xr, xi, wr, wi, stride, pads, dilation, groups, mode="zeros"):
    """(re, im) of conv(x, w) from four real torch convolutions; pads (lo, hi) per dim."""
    n = wr.ndim - 2
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]

    def conv(a, b):
        a = TF.pad(a, flat, mode=TORCH_MODES.get(mode, "constant"))
        return getattr(TF, f"conv{n}d")(a, b, stride=stride, dilation=dilation, groups=groups)

    return conv(xr, wr) - conv(xi, wi), conv(xr, wi) + conv(xi, wr)


def real_parts(array):
    array = np.asarray(array, np.complex128)
    return torch.tensor(array.real.copy()), torch.tensor(array.imag.copy())


# (x shape, w shape, stride, pads, dilation, groups, mode): 1-D and 2-D, every padding mode
CASES = [
    ((1, 2, 7), (3, 2, 3), (1,), ((1, 1),), (1,), 1, "zeros"),
    ((1, 4, 9), (4, 2, 2), (2,), ((2, 1),), (2,), 2, "reflect"),
    ((2, 2, 6, 5), (2, 2, 3, 2), (2, 1), ((1, 1), (0, 1)), (1, 2), 1, "zeros"),
    ((1, 4, 5, 6), (4, 1, 2, 3), (1, 2), ((1, 0), (2, 2)), (2, 1), 4, "replicate"),
    ((1, 2, 5, 5), (2, 1, 3, 3), (1, 1), ((2, 2), (1, 1)), (1, 1), 2, "circular"),
]
DTYPES = {"c64": np.complex64, "c128": np.complex128}
# which operands are complex: both, the input only, the weight only (the other is float64)
OPERANDS = {"both": (True, True), "x": (True, False), "w": (False, True)}


def _case_id(case):
    x, w, s, p, d, g, m = case
    return f"x{x}-w{w}-s{s}-p{p}-d{d}-g{g}-{m}".replace(" ", "")


def _operands(case, dtype, complex_x, complex_w, seed):
    rng = np.random.default_rng(seed)
    x_shape, w_shape = case[0], case[1]
    x = random_complex(rng, x_shape, dtype) if complex_x else rng.standard_normal(x_shape)
    w = random_complex(rng, w_shape, dtype) if complex_w else rng.standard_normal(w_shape)
    b = random_complex(rng, (w_shape[0],), dtype)
    return x, w, b


# ---- explain_output ---------------------------------------------------------------------
@pytest.mark.parametrize("operands", OPERANDS, ids=list(OPERANDS))
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_explained_complex_value_is_the_convolution_and_its_terms_are_the_derivative(case, dtype, operands):
    """e.value equals PyTorch's output and npconv's; the terms sum to it; the weights summed per
    input element are d out[index] / d x (from real autograd of the four-real oracle)."""
    x_shape, w_shape, stride, pads, dil, groups, mode = case
    x, w, b = _operands(case, dtype, *OPERANDS[operands], seed=10)
    (xr, xi), (wr, wi) = real_parts(x), real_parts(w)
    xr.requires_grad_(), xi.requires_grad_()
    re, im = four_real_conv(xr, xi, wr, wi, stride, pads, dil, groups, mode)
    want = (re + 1j * im).detach().numpy() + b.astype(np.complex128).reshape((-1,) + (1,) * (len(x_shape) - 2))
    ours = getattr(F, f"conv{len(x_shape) - 2}d")(x, w, b, stride, pads, dil, groups, padding_mode=mode)
    for index in list(np.ndindex(*want.shape))[::7]:
        e = explain_output(x, w, index, stride, pads, dil, groups, mode, bias=b)
        assert isinstance(e.value, complex) and isinstance(e.bias, complex)
        assert_close(e.value, want[index], dtype)
        assert e.value == complex(ours[index])  # the engine's value, exactly
        assert_close(sum(t.weight * t.value for t in e.terms) + e.bias, e.value, dtype)
        d_re_dxr, d_re_dxi = torch.autograd.grad(re[index], (xr, xi), retain_graph=True)
        derivative = d_re_dxr.numpy() - 1j * d_re_dxi.numpy()  # out holomorphic in x: d Re/dxr - i d Re/dxi
        from_terms = np.zeros(x_shape, np.complex128)
        for t in e.terms:
            if t.source is not None:
                from_terms[(index[0], t.channel) + t.source] += t.weight
        np.testing.assert_allclose(from_terms, derivative, atol=1e-6 if dtype == np.complex64 else 1e-12)


def test_complex_explanation_reads_as_golden_text():
    x = np.array([[1 + 1j, 2, 3j, -1 - 0.5j]])  # unbatched (C_in, L)
    w = np.array([[[1j, 2 - 1j]]])
    e = explain_output(x, w, (0, 0), stride=2, padding=1, bias=np.array([0.5j]))
    assert e.text() == (
        "conv1d output[0, 0]: stride (2,), padding ((1, 1),), dilation (1,), groups 1, "
        "padding_mode 'zeros'; reads input channels 0..0, 2 taps each\n"
        "(3+1.5j) = (2-1j)*(1+1j) + bias (0+0.5j)\n"
        "  (1 of 2 taps fall on zero padding and add 0)\n"
        "channel 0\n"
        "[(0+0j)]   (1+1j)")
    assert e.value == (2 - 1j) * (1 + 1j) + 0.5j


def test_mixed_real_and_complex_terms_keep_each_operands_kind():
    """A real weight stays real (and a negative one bracketed, as for real inputs)."""
    x = np.array([[[1 + 1j, 2 + 0j, 3j]]])
    e = explain_output(x, np.array([[[2.0, -1.0]]]), (0, 0, 1), padding_mode="reflect")
    assert e.sum_line() == "(4-3j) = 2*(2+0j) + (-1)*(0+3j)"
    assert all(isinstance(t.weight, float) and isinstance(t.value, complex) for t in e.terms)
    e = explain_output(np.array([[[1.0, -2.0]]]), np.array([[[1j, 1 - 1j]]], np.complex64), (0, 0, 0))
    assert e.sum_line() == "(-2+3j) = (0+1j)*1 + (1-1j)*-2"


def test_real_explanations_stay_real():
    e = explain_output(np.arange(6.0).reshape(1, 1, 6), np.array([[[2.0, -1.0]]]), (0, 0, 2))
    assert all(type(v) is float for t in e.terms for v in (t.value, t.weight))
    assert type(e.value) is float and e.sum_line() == "1 = 2*2 + (-1)*3"


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
def test_explained_complex_transposed_value_is_torchs(dtype):
    rng = np.random.default_rng(11)
    x, w = random_complex(rng, (1, 4, 3, 3), dtype), random_complex(rng, (4, 1, 2, 3), dtype)
    want = TF.conv_transpose2d(torch.tensor(x), torch.tensor(w), None, 2, 1, (1, 0), 2, (1, 2)).numpy()
    for index in list(np.ndindex(*want.shape))[::3]:
        e = explain_transposed_output(x, w, index, 2, 1, (1, 0), 2, (1, 2))
        assert_close(e.value, want[index], dtype)
        assert_close(sum(t.weight * t.value for t in e.terms), e.value, dtype)


# ---- conv_matrix -------------------------------------------------------------------------
def _transposed_output_padding(x_shape, y_shape, w_shape, stride, padding, dilation):
    """The output_padding making conv_transpose(y) the input's size (None: none can)."""
    base = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in
            zip(y_shape[2:], stride, padding, dilation, w_shape[2:])]
    out_pad = tuple(i - b for i, b in zip(x_shape[2:], base))
    return out_pad if all(0 <= op < max(s, d) for op, s, d in zip(out_pad, stride, dilation)) else None


# (x shape, w shape, stride, padding, dilation, groups): symmetric zero padding, so the adjoint is
# a transposed convolution with an output_padding that gives back the input's size
MATRIX_CASES = [
    ((2, 2, 8), (3, 2, 3), (1,), (1,), (1,), 1),
    ((1, 4, 9), (4, 2, 3), (2,), (2,), (2,), 2),
    ((1, 3, 10), (3, 1, 2), (3,), (0,), (1,), 3),
    ((2, 2, 6, 5), (4, 2, 3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((1, 4, 7, 6), (2, 2, 2, 3), (1, 2), (0, 1), (2, 1), 2),
    ((1, 2, 6, 6), (2, 1, 3, 3), (2, 2), (1, 1), (1, 1), 2),
]


def _matrix_id(case):
    x, w, s, p, d, g = case
    return f"x{x}-w{w}-s{s}-p{p}-d{d}-g{g}".replace(" ", "")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("case", MATRIX_CASES, ids=[_matrix_id(c) for c in MATRIX_CASES])
def test_complex_conv_matrix_is_the_convolution_and_its_adjoint_the_transposed_one(case, dtype):
    x_shape, w_shape, stride, padding, dil, groups = case
    n = len(x_shape) - 2
    rng = np.random.default_rng(12)
    x, w = random_complex(rng, x_shape, dtype), random_complex(rng, w_shape, dtype)
    matrix = conv_matrix(w, x_shape, stride, padding, dil, groups)
    assert matrix.dtype == dtype
    conv_torch = getattr(TF, f"conv{n}d")
    want = conv_torch(torch.tensor(x), torch.tensor(w), None, stride, padding, dil, groups).numpy()
    assert_close(matrix @ x.ravel(), want.ravel(), dtype)
    ours = getattr(F, f"conv{n}d")(x, w, None, stride, padding, dil, groups)
    assert_close(matrix @ x.ravel(), ours.ravel(), dtype)

    y = random_complex(rng, want.shape, dtype)
    adjoint = matrix.conj().T @ y.ravel()
    assert adjoint.dtype == dtype
    assert_close(np.vdot(adjoint, x.ravel()), np.vdot(y.ravel(), matrix @ x.ravel()), dtype)
    # torch autograd's grad_input of the real loss Re(sum(conj(y) * conv(x, w))) is C^H y
    xt = torch.tensor(x, requires_grad=True)
    loss = (torch.tensor(y).conj() * conv_torch(xt, torch.tensor(w), None, stride, padding, dil, groups)).sum().real
    (grad_input,) = torch.autograd.grad(loss, xt)
    assert_close(adjoint, grad_input.numpy().ravel(), dtype)
    assert_close(adjoint, grad.conv_input(x_shape, w, y, stride=stride, padding=padding, dilation=dil,
                                          groups=groups).ravel(), dtype)
    out_pad = _transposed_output_padding(x_shape, want.shape, w_shape, stride, padding, dil)
    assert out_pad is not None  # every case above has one
    transposed = getattr(F, f"conv_transpose{n}d")(y, w.conj(), None, stride, padding, out_pad, groups, dil)
    assert_close(adjoint, transposed.ravel(), dtype)
    transposed_torch = getattr(TF, f"conv_transpose{n}d")(torch.tensor(y), torch.tensor(w).conj(), None, stride,
                                                          padding, out_pad, groups, dil)
    assert_close(adjoint, transposed_torch.numpy().ravel(), dtype)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_complex_conv_matrix_adjoint_folds_the_padding_as_autograd_does(mode):
    """Reflect/replicate/circular: C^H y is the gradient through the padding (four-real oracle)."""
    rng = np.random.default_rng(13)
    x, w = random_complex(rng, (1, 2, 6, 5), np.complex128), random_complex(rng, (2, 1, 3, 2), np.complex128)
    pads = ((2, 1), (1, 1))
    matrix = conv_matrix(w, x.shape, (2, 1), pads, (1, 2), 2, padding_mode=mode)
    (xr, xi), (wr, wi) = real_parts(x), real_parts(w)
    xr.requires_grad_(), xi.requires_grad_()
    re, im = four_real_conv(xr, xi, wr, wi, (2, 1), pads, (1, 2), 2, mode)
    assert_close(matrix @ x.ravel(), (re + 1j * im).detach().numpy().ravel(), np.complex128)
    y = random_complex(rng, tuple(re.shape), np.complex128)
    yr, yi = real_parts(y)
    d_xr, d_xi = torch.autograd.grad((yr * re + yi * im).sum(), (xr, xi))  # L = Re(sum(conj(y) * out))
    adjoint = matrix.conj().T @ y.ravel()
    assert_close(adjoint, (d_xr + 1j * d_xi).numpy().ravel(), np.complex128)
    assert_close(adjoint, grad.conv_input(x.shape, w, y, stride=(2, 1), padding=pads, dilation=(1, 2), groups=2,
                                          padding_mode=mode).ravel(), np.complex128)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
def test_complex_conv_matrix_of_a_batch_is_block_diagonal(dtype):
    rng = np.random.default_rng(14)
    x, w = random_complex(rng, (3, 1, 5, 4), dtype), random_complex(rng, (2, 1, 3, 3), dtype)
    matrix = conv_matrix(w, x.shape, padding=1)
    assert matrix.dtype == dtype and matrix.shape == (3 * 2 * 5 * 4, 3 * 5 * 4)
    want = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    assert_close(matrix @ x.ravel(), want.ravel(), dtype)


def test_real_conv_matrix_stays_real():
    assert conv_matrix(np.ones((1, 1, 2), np.float32), (1, 4)).dtype == np.float32
    assert conv_matrix(np.ones((1, 1, 2)), (2, 1, 4)).dtype == np.float64
