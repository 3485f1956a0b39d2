"""npconv.explain against independent oracles: PyTorch's autograd (which inputs move an output,
and by how much), impulses through PyTorch's conv (which outputs an input reaches), PyTorch's
conv and conv_transpose (the matrix), the padding rules of each convention (solve)."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from npconv import nn
from npconv.explain import (conv_matrix, explain_input, explain_output, explain_transposed_output,
                            shape_report, solve, translate)
from npconv.worked_examples import HAND_SUMS

TORCH_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def torch_conv(x, w, stride, pads, dilation, groups, mode):
    """PyTorch: pad (F.pad, last dim first) in the mode, then an unpadded conv."""
    n = w.ndim - 2
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]
    x = TF.pad(x, flat, mode=TORCH_MODES.get(mode, "constant"))
    return getattr(TF, f"conv{n}d")(x, w, stride=stride, dilation=dilation, groups=groups)


def random_specs(count, seed=0):
    """(x shape, w shape, stride, pads, dilation, groups, mode) covering 1-D/2-D and every mode."""
    rng = np.random.default_rng(seed)
    specs = []
    while len(specs) < count:
        n = int(rng.integers(1, 3))
        groups = int(rng.choice([1, 2]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, n))
        dil = tuple(int(v) for v in rng.integers(1, 3, n))
        stride = tuple(int(v) for v in rng.integers(1, 3, n))
        size = tuple(int(v) for v in rng.integers(3, 7, n))
        mode = ["zeros", "reflect", "replicate", "circular"][len(specs) % 4]
        pads = tuple((int(rng.integers(0, min(3, s))), int(rng.integers(0, min(3, s)))) for s in size)
        if any(s + lo + hi < d * (kk - 1) + 1 for s, (lo, hi), d, kk in zip(size, pads, dil, k)):
            continue
        specs.append(((1, c_in) + size, (c_out, c_in // groups) + k, stride, pads, dil, groups, mode))
    return specs


SPECS = random_specs(24)


def _ids(spec):
    x, w, s, p, d, g, m = spec
    return f"x{x}-w{w}-s{s}-p{p}-d{d}-g{g}-{m}".replace(" ", "")


@pytest.mark.parametrize("spec", SPECS, ids=[_ids(s) for s in SPECS])
def test_explained_terms_are_what_autograd_sees(spec):
    """Summed per input element, the terms' weights are d out[index] / d x."""
    x_shape, w_shape, stride, pads, dil, groups, mode = spec
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt = torch.tensor(x, requires_grad=True)
    out = torch_conv(xt, torch.tensor(w), stride, pads, dil, groups, mode)
    for index in list(np.ndindex(*out.shape))[::5]:
        e = explain_output(x, w, index, stride, pads, dil, groups, mode)
        (grad,) = torch.autograd.grad(out[index], xt, retain_graph=True)
        from_terms = np.zeros(x_shape)
        for t in e.terms:
            if t.source is not None:
                from_terms[(0, t.channel) + t.source] += t.weight
        np.testing.assert_allclose(from_terms, grad.numpy(), atol=1e-12)
        assert math.isclose(sum(t.weight * t.value for t in e.terms), out[index].item(), abs_tol=1e-9)
        assert math.isclose(e.value, out[index].item(), abs_tol=1e-9)


@pytest.mark.parametrize("spec", SPECS[::2], ids=[_ids(s) for s in SPECS[::2]])
def test_reach_is_where_an_impulse_lands(spec):
    """Perturb one input element: exactly the reported outputs move."""
    x_shape, w_shape, stride, pads, dil, groups, mode = spec
    w = torch.tensor(np.random.default_rng(2).uniform(0.5, 1.5, w_shape))  # positive: no cancellation
    for index in list(np.ndindex(*x_shape))[::3]:
        impulse = torch.zeros(x_shape, dtype=torch.float64)
        impulse[index] = 1
        moved = torch_conv(impulse, w, stride, pads, dil, groups, mode).numpy()
        reach = explain_input(x_shape, w_shape, index, stride, pads, dil, groups, mode)
        assert set(reach.outputs) == {tuple(int(v) for v in i) for i in zip(*np.nonzero(moved))}


TRANSPOSED = [((1, 2, 3), (2, 1, 3), 2, 0, 0, 1, 2), ((1, 2, 3, 2), (2, 2, 3, 2), (2, 1), 1, (1, 0), 1, 1),
              ((1, 4, 3, 3), (4, 1, 2, 3), 2, (1, 2), 1, 2, (1, 2)), ((1, 1, 4), (1, 1, 3), 3, 2, 2, 1, 1)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, output_padding, groups, dilation", TRANSPOSED)
def test_transposed_terms_are_what_autograd_sees(x_shape, w_shape, stride, padding, output_padding, groups,
                                                 dilation):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt = torch.tensor(x, requires_grad=True)
    n = len(x_shape) - 2
    out = getattr(TF, f"conv_transpose{n}d")(xt, torch.tensor(w), None, stride, padding, output_padding,
                                             groups, dilation)
    for index in np.ndindex(*out.shape):
        e = explain_transposed_output(x, w, index, stride, padding, output_padding, groups, dilation)
        (grad,) = torch.autograd.grad(out[index], xt, retain_graph=True)
        from_terms = np.zeros(x_shape)
        for t in e.terms:
            from_terms[(0, t.channel) + t.source] += t.weight
        np.testing.assert_allclose(from_terms, grad.numpy(), atol=1e-12)
        assert math.isclose(e.value, out[index].item(), abs_tol=1e-9)


@pytest.mark.parametrize("spec", SPECS, ids=[_ids(s) for s in SPECS])
def test_conv_matrix_is_the_convolution(spec):
    x_shape, w_shape, stride, pads, dil, groups, mode = spec
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    matrix = conv_matrix(w, x_shape, stride, pads, dil, groups, padding_mode=mode)
    want = torch_conv(torch.tensor(x), torch.tensor(w), stride, pads, dil, groups, mode).numpy()
    np.testing.assert_allclose(matrix @ x.ravel(), want.ravel(), atol=1e-12)
    if mode == "zeros" and all(lo == hi for lo, hi in pads):
        _check_transpose(matrix, w, x_shape, want.shape, stride, pads, dil, groups)


def _check_transpose(matrix, w, x_shape, y_shape, stride, pads, dil, groups):
    """C^T y is conv_transpose(y), output_padding chosen so the output has the input's size."""
    y = np.random.default_rng(5).standard_normal(y_shape)
    n = len(x_shape) - 2
    padding = tuple(lo for lo, _ in pads)
    base = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in
            zip(y_shape[2:], stride, padding, dil, w.shape[2:])]
    out_pad = tuple(i - b for i, b in zip(x_shape[2:], base))
    if any(not 0 <= op < max(s, d) for op, s, d in zip(out_pad, stride, dil)):
        return  # the input size is not one the transposed conv can produce
    want = getattr(TF, f"conv_transpose{n}d")(torch.tensor(y), torch.tensor(w), None, stride, padding, out_pad,
                                              groups, dil).numpy()
    np.testing.assert_allclose(matrix.T @ y.ravel(), want.ravel(), atol=1e-12)


def test_conv_matrix_of_a_batch_is_block_diagonal():
    w = np.random.default_rng(6).standard_normal((2, 1, 3, 3))
    x = np.random.default_rng(7).standard_normal((3, 1, 5, 5))
    matrix = conv_matrix(w, x.shape, padding=1)
    want = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(matrix @ x.ravel(), want.ravel(), atol=1e-12)


def test_the_seed_transposed_matrix_example():
    """A 4x4 input, 3x3 kernel: C is 4 x 16, and o = C^T i maps the 2x2 output back to 4x4."""
    w = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    matrix = conv_matrix(w, (1, 4, 4))
    assert matrix.shape == (4, 16)
    np.testing.assert_array_equal(matrix.toarray()[0], [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0])
    i = np.arange(4.0)
    want = TF.conv_transpose2d(torch.tensor(i).reshape(1, 1, 2, 2), torch.tensor(w)).numpy()
    np.testing.assert_array_equal(matrix.T @ i, want.ravel())


# ---- the sums worked by hand, as golden text --------------------------------------------
@pytest.mark.parametrize("hand", HAND_SUMS, ids=[h.expected.split("=")[0].strip() for h in HAND_SUMS])
def test_every_hand_sum_is_reproduced(hand):
    assert hand.reproduced(), f"{hand.explain().sum_line()} != {hand.expected}"


def test_the_standard_example_reads_as_golden_text():
    text = HAND_SUMS[0].explain().text()
    assert text == (
        "conv2d output[0, 0, 0, 0]: stride (1, 1), padding ((1, 1), (1, 1)), dilation (1, 1), groups 1, "
        "padding_mode 'zeros'; reads input channels 0..2, 9 taps each\n"
        "474 = 0+1+6+7 + 36+37+42+43 + 72+73+78+79\n"
        "  (15 of 27 taps fall on zero padding and add 0)\n"
        "channel 0     channel 1     channel 2\n"
        "[0] [0] [0]   [0] [0] [0]   [0] [0] [0]\n"
        "[0]   0   1   [0]  36  37   [0]  72  73\n"
        "[0]   6   7   [0]  42  43   [0]  78  79")


def test_reflect_padding_shows_the_mirrored_values():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    e = explain_output(x, np.ones((1, 1, 3, 3)), (0, 0, 0, 0), padding=1, padding_mode="reflect")
    assert e.sum_line() == "30 = [5]+[4]+[5]+[1]+0+1+[5]+4+5"
    assert "(-1,-1)->(1,1)" in e.text()


def test_weighted_terms_are_printed_with_their_weights():
    e = explain_output(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[2.0, -1.0]]]), (0, 0, 0))
    assert e.sum_line() == "0 = 2*1 + (-1)*2"


# ---- shapes -------------------------------------------------------------------------
def test_shape_report_matches_pytorch_modules():
    layers = [nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 3, dilation=2, groups=4),
              nn.MaxPool2d(2), nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1, output_padding=1)]
    torch_layers = [torch.nn.Conv2d(3, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
                    torch.nn.Conv2d(16, 32, 3, dilation=2, groups=4), torch.nn.MaxPool2d(2),
                    torch.nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1, output_padding=1)]
    report = shape_report(layers, (2, 3, 33, 30))
    y = torch.zeros(2, 3, 33, 30)
    for row, layer in zip(report.layers, torch_layers):
        y = layer(y)
        assert row.out_shape == tuple(y.shape)
        assert row.params == sum(p.numel() for p in layer.parameters())
    assert report.layers[0].params_formula == "(5*5 * 3/1 + 1) * 16 = 1,216"  # (k*k * C_in/groups + 1) * C_out
    assert report.layers[2].macs == 2 * 32 * 13 * 11 * (16 // 4) * 9
    assert report.layers[4].out_range == ((12, 13), (10, 11))  # 6x5 after the pool


@pytest.mark.parametrize("kernels, strides, dilations", [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)),
                                                         ((5, 3, 3), (2, 1, 2), (1, 2, 1)), ((7,), (4,), (1,))])
def test_receptive_field_is_what_an_output_reads(kernels, strides, dilations):
    """The receptive field of one output = the extent of its nonzero input gradient (autograd)."""
    x = torch.zeros(1, 1, 101, requires_grad=True)
    y = x
    for k, s, d in zip(kernels, strides, dilations):
        y = TF.conv1d(y, torch.ones(1, 1, k), stride=s, dilation=d)
    (grad,) = torch.autograd.grad(y[0, 0, y.shape[-1] // 2], x)
    nonzero = np.nonzero(grad[0, 0].numpy())[0]
    layers = [nn.Conv1d(1, 1, k, stride=s, dilation=d) for k, s, d in zip(kernels, strides, dilations)]
    report = shape_report(layers, (1, 1, 101))
    assert report.layers[-1].receptive_field == (nonzero[-1] - nonzero[0] + 1,)
    assert report.layers[-1].jump == (math.prod(strides),)


def test_shape_report_prints_an_aligned_table():
    table = shape_report(nn.Conv2d(3, 64, 7, stride=2, padding=3), (1, 3, 224, 224)).table()
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "output", "shape", "padding", "(lo,", "hi)", "eff.", "kernel",
                                "params", "MACs", "RF", "jump"]
    assert "(1, 64, 112, 112)" in lines[3] and "9,472" in lines[3] and "118,013,952" in lines[3]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned


# ---- solve and translate -------------------------------------------------------------
def _forward_cases(count=60):
    rng = np.random.default_rng(8)
    for _ in range(count):
        size, k, s, d = int(rng.integers(4, 20)), int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        ek = d * (k - 1) + 1
        smallest = max((size - ek) // s + 1, 1)
        yield size, int(rng.integers(smallest, smallest + 4)), k, s, d


@pytest.mark.parametrize("size, out, k, s, d", list(_forward_cases()))
def test_solve_forward_round_trips_in_every_convention(size, out, k, s, d):
    try:
        solution = solve(size, out, k, stride=s, dilation=d)
    except ValueError:
        assert (size + 0 - (d * (k - 1) + 1)) // s + 1 > out  # only unreachable sizes are refused
        return
    x = torch.arange(float(size)).reshape(1, 1, size)
    w = torch.arange(1.0, k + 1).reshape(1, 1, k)
    (lo, hi), = solution.pads
    want = TF.conv1d(TF.pad(x, (lo, hi)), w, stride=s, dilation=d)
    assert want.shape[-1] == out
    said = solution.pytorch
    x_torch = TF.pad(x, said["F.pad"]) if "F.pad" in said else x
    got = TF.conv1d(x_torch, w, stride=s, dilation=d, padding=said["padding"])
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert _onnx_out(size, k, s, d, solution.onnx["pads"]) == out
    if solution.keras is not None:
        assert _keras_pads(solution.keras, size, k, s, d) == (lo, hi)


def _onnx_out(size, k, s, d, pads):
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def _keras_pads(keras, size, k, s, d):
    """Keras/TensorFlow's own rule for its padding strings (independent of npconv)."""
    if "ZeroPadding1D" in keras:
        return keras["ZeroPadding1D"][0]
    if keras["padding"] == "valid":
        return (0, 0)
    if keras["padding"] == "causal":
        return (d * (k - 1), 0)
    out = math.ceil(size / s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


@pytest.mark.parametrize("size, k, s, d, out", [(4, 4, 2, 1, 8), (5, 3, 2, 1, 10), (7, 4, 2, 1, 14), (3, 3, 3, 1, 9),
                                                (5, 3, 2, 2, 11), (6, 5, 1, 1, 6), (4, 1, 2, 1, 8), (5, 3, 2, 1, 9)])
def test_solve_transposed_round_trips(size, k, s, d, out):
    solution = solve(size, out, k, stride=s, dilation=d, transposed=True)
    said = solution.pytorch
    x = torch.arange(1.0, size + 1).reshape(1, 1, size)
    w = torch.arange(1.0, k + 1).reshape(1, 1, k)
    got = TF.conv_transpose1d(x, w, stride=s, padding=said["padding"], output_padding=said["output_padding"],
                              dilation=d)
    if "then_crop" in said:
        (lo, hi), = said["then_crop"]
        got = got[..., lo:got.shape[-1] - hi]
    assert got.shape[-1] == out
    onnx = solution.onnx
    assert s * (size - 1) + onnx["output_padding"][0] + d * (k - 1) + 1 - sum(onnx["pads"]) == out


def test_translate_keras_same_at_stride_two_is_not_pytorchs_padding_one():
    solution = translate(6, 3, stride=2, keras="same")
    assert solution.pads == ((0, 1),)
    assert solution.pytorch == {"F.pad": (0, 1), "padding": 0}
    assert solution.onnx == {"pads": [0, 1], "auto_pad_also": "SAME_UPPER"}
    x, w = torch.arange(6.0).reshape(1, 1, 6), torch.ones(1, 1, 3)
    keras_like = TF.conv1d(TF.pad(x, (0, 1)), w, stride=2)
    torch_p1 = TF.conv1d(x, w, stride=2, padding=1)
    assert keras_like.shape == torch_p1.shape and not torch.equal(keras_like, torch_p1)


@pytest.mark.parametrize("onnx_pads", [(0, 1, 1, 0), (2, 2, 2, 2), (1, 0, 0, 0)])
def test_translate_onnx_pads_to_pytorch_values(onnx_pads):
    solution = translate((5, 6), 3, onnx_pads=onnx_pads)
    x, w = torch.randn(1, 1, 5, 6, dtype=torch.float64), torch.randn(1, 1, 3, 3, dtype=torch.float64)
    top, left, bottom, right = onnx_pads
    want = TF.conv2d(TF.pad(x, (left, right, top, bottom)), w)
    said = solution.pytorch
    got = TF.conv2d(TF.pad(x, said["F.pad"]) if "F.pad" in said else x, w, padding=said["padding"])
    torch.testing.assert_close(got, want)


def test_translate_keras_transposed_defaults():
    """Keras Conv1DTranspose, output_padding=None: 'same' gives in*s, 'valid' (in-1)*s + max(k, s)."""
    assert translate(5, 3, stride=2, keras="same", transposed=True, output_padding=None).out_size == (10,)
    assert translate(5, 3, stride=2, keras="valid", transposed=True, output_padding=None).out_size == (11,)
    assert translate(5, 1, stride=2, keras="valid", transposed=True, output_padding=None).out_size == (10,)


def test_solve_refuses_unreachable_sizes_with_the_arithmetic():
    with pytest.raises(ValueError, match=r"already 4 = floor\(\(10 - 3\) / 2\) \+ 1.*output_size=4"):
        solve(10, 3, 3, stride=2)
    with pytest.raises(ValueError, match=r"largest is 10 = \(4 - 1\) \* 2 \+ 3 \+ output_padding 1"):
        solve(4, 12, 3, stride=2, transposed=True)


def test_jupyter_shows_specs_layers_and_reports_as_html_tables():
    from npconv import ConvSpec
    spec_html = ConvSpec.build((3, 3), stride=2, padding=1)._repr_html_()
    assert spec_html.startswith("<table>") and "<code>(2, 2)</code>" in spec_html and "effective kernel" in spec_html
    layer_html = nn.Conv2d(3, 8, 3, groups=1)._repr_html_()
    assert "3 &rarr; 8, 224 parameters" in layer_html
    report_html = shape_report(nn.Conv2d(3, 8, 3), (1, 3, 8, 8))._repr_html_()
    assert report_html.count("<tr>") == 4 and "<td>(1, 8, 6, 6)</td>" in report_html
