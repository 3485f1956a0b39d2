"""npconv.onnx against ONNX's own backend node tests, the onnx reference evaluator and PyTorch.

Three oracles, none of them npconv:
- every Conv / ConvTranspose / Col2Im node test the onnx package ships (expected outputs written
  by the ONNX authors), each its own test id;
- a grid against PyTorch: F.pad with pads worked out here from the ONNX rules, then PyTorch's
  conv; for ConvTranspose the window [begin, begin + out) of PyTorch's full scatter;
- ~50 random one-node models run by ``onnx.reference.ReferenceEvaluator``.
"""

import itertools
import re
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import npconv.onnx as nx
from helpers import onnx_node_case_data, require

onnx = require("onnx", "ONNX's node tests and reference evaluator")
from onnx import helper  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

OPS = {"Conv": nx.conv, "ConvTranspose": nx.conv_transpose, "Col2Im": nx.col2im}

# Node tests whose names say "conv" but which test other operators (not run here):
#   test_convinteger_*                 ConvInteger (uint8/int8 inputs, zero points, int32 output)
#   test_qlinearconv                   QLinearConv (quantised, scales and zero points)
#   test_*deform_conv*                 DeformConv: run and pinned in tests/test_onnx_deform.py
#   test_causal_conv_with_state_*      CausalConvWithState: run and pinned in tests/test_onnx_stream.py
EXCLUDED = re.compile(r"convinteger|qlinearconv|deform_conv|causal_conv_with_state")
EXPECTED_CASES = {
    "test_basic_conv_with_padding", "test_basic_conv_without_padding", "test_conv_with_autopad_same",
    "test_conv_with_strides_and_asymmetric_padding", "test_conv_with_strides_no_padding",
    "test_conv_with_strides_padding",
    "test_convtranspose", "test_convtranspose_1d", "test_convtranspose_3d", "test_convtranspose_autopad_same",
    "test_convtranspose_dilations", "test_convtranspose_group_2", "test_convtranspose_group_2_image_3",
    "test_convtranspose_kernel_shape", "test_convtranspose_output_shape", "test_convtranspose_pad",
    "test_convtranspose_pads",
    "test_col2im", "test_col2im_5d", "test_col2im_dilations", "test_col2im_pads", "test_col2im_strides",
}


def _all_node_cases():
    with warnings.catch_warnings():  # generating other operators' data warns about overflows
        warnings.simplefilter("ignore")
        return load_model_tests(kind="node")



ALL_CASES = _all_node_cases()
NODE_CASES = {c.name: c for c in ALL_CASES
              if re.search(r"conv|col2im", c.name, re.I) and not EXCLUDED.search(c.name)}


def test_node_case_list_is_what_we_found():
    """A silently empty (or grown) list fails here; every case of our three ops is in it."""
    assert set(NODE_CASES) == EXPECTED_CASES
    assert len(NODE_CASES) == 22
    ours = {c.name for c in ALL_CASES if c.model is not None and c.model.graph.node[0].op_type in OPS}
    assert ours <= set(NODE_CASES)


def _attributes(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}  # strings stay bytes


@pytest.mark.parametrize("name", sorted(EXPECTED_CASES))
def test_onnx_node_case(name):
    case = NODE_CASES[name]
    model, data_sets = onnx_node_case_data(case)
    (node,) = model.graph.node
    assert node.op_type in OPS
    assert data_sets
    for inputs, outputs in data_sets:
        got = OPS[node.op_type](*inputs, **_attributes(node))
        (want,) = outputs
        assert got.dtype == want.dtype and got.shape == want.shape
        # tighter than the backend tests' rtol=1e-3, atol=1e-7
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# ---- the ONNX rules, written here independently of npconv ------------------------------------

def same_split(total, upper):
    small = total // 2  # floor: a negative total grows the output
    return (small, total - small) if upper else (total - small, small)


def conv_oracle_pads(in_spatial, k, s, d, auto_pad, pads):
    n = len(in_spatial)
    if auto_pad == "VALID":
        return [(0, 0)] * n
    if auto_pad == "NOTSET":
        return list(zip(pads[:n], pads[n:])) if pads else [(0, 0)] * n
    out = [-(-i // si) for i, si in zip(in_spatial, s)]
    return [same_split(max((o - 1) * si + (ki - 1) * di + 1 - i, 0), auto_pad == "SAME_UPPER")
            for o, i, ki, si, di in zip(out, in_spatial, k, s, d)]


def transposed_oracle_pads(in_spatial, k, s, d, op, auto_pad, pads, output_shape):
    n = len(in_spatial)
    if output_shape is None and auto_pad in ("NOTSET", "VALID"):
        return list(zip(pads[:n], pads[n:])) if pads else [(0, 0)] * n
    target = output_shape or [i * si for i, si in zip(in_spatial, s)]
    return [same_split(si * (i - 1) + p + (ki - 1) * di + 1 - o, auto_pad == "SAME_UPPER")
            for i, ki, si, di, p, o in zip(in_spatial, k, s, d, op, target)]


def torch_pad_tuple(pairs):
    return tuple(v for lo, hi in reversed(pairs) for v in (lo, hi))


TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
TORCH_CONV_T = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}


def torch_conv(x, w, b, s, d, g, pairs):
    xt = TF.pad(torch.from_numpy(x), torch_pad_tuple(pairs))
    y = TORCH_CONV[x.ndim - 2](xt, torch.from_numpy(w), None if b is None else torch.from_numpy(b), s, 0, d, g)
    return y.numpy()


def torch_conv_transpose(x, w, b, s, d, g, op, pairs):
    """The window [begin, begin + out) of PyTorch's full scatter extended with zeros, plus b."""
    full = TORCH_CONV_T[x.ndim - 2](torch.from_numpy(x), torch.from_numpy(w), None, s, 0, 0, g, d).numpy()
    window = [slice(None), slice(None)]
    widths = [(0, 0), (0, 0)]
    for axis, ((lo, hi), p) in enumerate(zip(pairs, op)):
        size = full.shape[axis + 2]
        out = size + p - lo - hi
        widths.append((max(-lo, 0), max(lo + out - size, 0)))
        window.append(slice(max(lo, 0), max(lo, 0) + out))
    y = np.pad(full, widths)[tuple(window)]
    return y if b is None else y + b.reshape((-1,) + (1,) * (x.ndim - 2))


SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 5)}
CHANNELS = {"dense": (3, 4, 1), "grouped": (4, 6, 2), "depthwise": (4, 4, 4)}


def per_axis(value, n):
    return list(value[:n]) if isinstance(value, (tuple, list)) else [value] * n


CONV_GRID = {
    "asym-pads": dict(k=3, pads=(2, 0, 1, 0, 1, 2)),
    "asym-pads-s2-d2": dict(k=3, s=2, d=2, pads=(0, 1, 3, 2, 0, 1)),
    "same-upper-s2": dict(k=3, s=2, auto_pad="SAME_UPPER"),
    "same-lower-s2": dict(k=4, s=2, auto_pad="SAME_LOWER"),
    "same-upper-s3-d2": dict(k=2, s=3, d=2, auto_pad="SAME_UPPER"),
    "same-lower-s2-d2": dict(k=3, s=(2, 1, 2), d=2, auto_pad="SAME_LOWER"),
    "valid-s2": dict(k=(3, 2, 1), s=2, auto_pad="VALID"),
}


def _conv_operands(n, channels, geometry, dtype, seed, transposed=False):
    c_in, c_out, g = CHANNELS[channels]
    k = per_axis(geometry["k"], n)
    rng = np.random.default_rng(seed)
    shape = (c_in, c_out // g) if transposed else (c_out, c_in // g)
    x = rng.standard_normal((2, c_in) + SPATIAL[n]).astype(dtype)
    w = rng.standard_normal(shape + tuple(k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b, g, k


def _ids(grid, n_values=(1, 2, 3)):
    return [(n, c, g) for n in n_values for c in CHANNELS for g in grid]


def _pick_pads(pads, n):
    return None if pads is None else list(pads[:n]) + list(pads[3:3 + n])


@pytest.mark.parametrize("n,channels,geometry", _ids(CONV_GRID), ids=lambda v: str(v))
def test_conv_against_torch(n, channels, geometry):
    case = CONV_GRID[geometry]
    x, w, b, g, k = _conv_operands(n, channels, case, np.float64, zlib.crc32(f"{n}{channels}{geometry}".encode()))
    s, d = per_axis(case.get("s", 1), n), per_axis(case.get("d", 1), n)
    auto_pad, pads = case.get("auto_pad", "NOTSET"), _pick_pads(case.get("pads"), n)
    got = nx.conv(x, w, b, auto_pad=auto_pad, dilations=d, group=g, kernel_shape=k, pads=pads, strides=s)
    want = torch_conv(x, w, b, s, d, g, conv_oracle_pads(x.shape[2:], k, s, d, auto_pad, pads))
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if auto_pad.startswith("SAME"):
        assert got.shape[2:] == tuple(-(-i // si) for i, si in zip(x.shape[2:], s))


# output_shape: "full" = the scatter's own size, "-k"/"+k" smaller/larger by k on every axis
TRANSPOSED_GRID = {
    "plain": dict(k=3),
    "s2-op1-asym-pads": dict(k=3, s=2, op=1, pads=(1, 0, 2, 0, 2, 1)),
    "d2-op1": dict(k=3, d=2, op=1, pads=(1, 1, 0, 0, 1, 1)),
    "notset-shape-minus3": dict(k=3, s=2, output_shape=-3),
    "notset-shape-plus1": dict(k=3, s=2, output_shape=+1),
    "notset-shape-plus5": dict(k=2, s=(3, 2, 1), output_shape=+5),
    "valid-shape-minus1": dict(k=3, s=2, auto_pad="VALID", output_shape=-1),
    "valid-shape-plus2": dict(k=3, s=2, auto_pad="VALID", output_shape=+2),
    "upper-s2": dict(k=3, s=2, auto_pad="SAME_UPPER"),
    "lower-s2": dict(k=3, s=2, auto_pad="SAME_LOWER"),
    "upper-s3-k2": dict(k=2, s=3, auto_pad="SAME_UPPER"),
    "lower-s3-k2-op2": dict(k=2, s=3, op=2, auto_pad="SAME_LOWER"),
    "upper-shape-minus3-d2": dict(k=3, s=2, d=2, auto_pad="SAME_UPPER", output_shape=-3),
    "lower-shape-plus3": dict(k=3, s=2, auto_pad="SAME_LOWER", output_shape=+3),
    "lower-shape-minus2-op1": dict(k=3, s=2, op=1, auto_pad="SAME_LOWER", output_shape=-2),
}


def _full(in_spatial, k, s, d, op):
    return [si * (i - 1) + p + (ki - 1) * di + 1 for i, ki, si, di, p in zip(in_spatial, k, s, d, op)]


@pytest.mark.parametrize("n,channels,geometry", _ids(TRANSPOSED_GRID), ids=lambda v: str(v))
def test_conv_transpose_against_torch(n, channels, geometry):
    case = TRANSPOSED_GRID[geometry]
    seed = zlib.crc32(f"{n}{channels}{geometry}".encode())
    x, w, b, g, k = _conv_operands(n, channels, case, np.float64, seed, transposed=True)
    s, d, op = (per_axis(case.get(a, v), n) for a, v in (("s", 1), ("d", 1), ("op", 0)))
    auto_pad, pads = case.get("auto_pad", "NOTSET"), _pick_pads(case.get("pads"), n)
    shape = case.get("output_shape")
    if shape is not None:
        shape = [f + shape for f in _full(x.shape[2:], k, s, d, op)]
    got = nx.conv_transpose(x, w, b, auto_pad=auto_pad, dilations=d, group=g, kernel_shape=k,
                            output_padding=op, output_shape=shape, pads=pads, strides=s)
    pairs = transposed_oracle_pads(x.shape[2:], k, s, d, op, auto_pad, pads, shape)
    want = torch_conv_transpose(x, w, b, s, d, g, op, pairs)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if shape is not None or auto_pad.startswith("SAME"):
        assert list(got.shape[2:]) == (shape or [i * si for i, si in zip(x.shape[2:], s)])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept(dtype):
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(shape).astype(dtype) for shape in ((1, 2, 5, 5), (2, 2, 3, 3), (2,)))
    y = nx.conv_transpose(x, w, b, strides=[2, 2], output_shape=[13, 12])  # grown by zeros + B
    want = torch_conv_transpose(*(a.astype(np.float64) for a in (x, w, b)), [2, 2], [1, 1], 1, [0, 0],
                                [(-1, -1), (0, -1)])
    assert y.dtype == dtype and nx.conv(x, w, b).dtype == dtype
    assert nx.col2im(np.ones((1, 4, 4), dtype), [3, 3], [2, 2]).dtype == dtype
    np.testing.assert_allclose(y, want, rtol=0, atol={np.float16: 2e-2, np.float32: 1e-5}.get(dtype, 1e-12))


# ---- the onnx package's reference evaluator on random one-node models ------------------------

def _reference(op_type, inputs, attributes):
    names = ["X", "W", "B"][:len(inputs)] if op_type != "Col2Im" else ["input", "image_shape", "block_shape"]
    node = helper.make_node(op_type, names, ["Y"], **{k: v for k, v in attributes.items() if v is not None})
    infos = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
             for nm, a in zip(names, inputs)]
    graph = helper.make_graph([node], "one", infos, [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22 if op_type != "Col2Im" else 18)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))[0]


def _random_conv_case(rng):
    n = int(rng.integers(1, 4))
    g = int(rng.choice([1, 2]))
    k = [int(v) for v in rng.integers(1, 4, n)]
    s, d = ([int(v) for v in rng.integers(1, 4, n)] for _ in range(2))
    auto_pad = str(rng.choice(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = [int(v) for v in rng.integers(0, 3, 2 * n)] if auto_pad == "NOTSET" else None
    spatial = [int(v) + (ki - 1) * di + 1 for v, ki, di in zip(rng.integers(1, 6, n), k, d)]
    x = rng.standard_normal([2, 2 * g] + spatial).astype(np.float32)
    w = rng.standard_normal([2 * g, 2] + k).astype(np.float32)
    b = rng.standard_normal(2 * g).astype(np.float32)
    return (x, w, b), dict(auto_pad=auto_pad, dilations=d, group=g, kernel_shape=k, pads=pads, strides=s)


def _random_transposed_case(rng):
    n = int(rng.integers(1, 4))
    k = [int(v) for v in rng.integers(1, 4, n)]
    s, d = ([int(v) for v in rng.integers(1, 4, n)] for _ in range(2))
    auto_pad = str(rng.choice(["NOTSET", "SAME_UPPER", "SAME_LOWER"]))
    # the reference evaluator counts blocks as floor((out + pads - ek) / stride) + 1, so it only
    # runs output_padding < stride, and none where the pads come from output_shape
    op = [int(rng.integers(0, si)) if auto_pad == "NOTSET" else 0 for si in s]
    x = rng.standard_normal([1, 3] + [int(v) for v in rng.integers(1, 5, n)]).astype(np.float32)
    full = _full(x.shape[2:], k, s, d, op)
    pads = [int(v) for v in rng.integers(0, 2, 2 * n)] if auto_pad == "NOTSET" else None
    if pads and any(f - lo - hi < 1 for f, lo, hi in zip(full, pads[:n], pads[n:])):
        pads = None
    shape = None
    if auto_pad != "NOTSET" and rng.random() < 0.5:  # the reference reads NOTSET + output_shape otherwise
        shape = [max(1, f + int(v)) for f, v in zip(full, rng.integers(-3, 4, n))]
    w = rng.standard_normal([3, 2] + k).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    return (x, w, b), dict(auto_pad=auto_pad, dilations=d, kernel_shape=k, output_padding=op,
                           output_shape=shape, pads=pads, strides=s)


def _random_col2im_case(rng):
    n = int(rng.integers(1, 4))
    block = [int(v) for v in rng.integers(1, 4, n)]
    s, d = ([int(v) for v in rng.integers(1, 3, n)] for _ in range(2))
    pads = [int(v) for v in rng.integers(0, 3, 2 * n)]  # asymmetric, per side
    image = [int(v) + (bk - 1) * dk + 1 for v, bk, dk in zip(rng.integers(1, 5, n), block, d)]
    blocks = [(i + pads[a] + pads[a + n] - (bk - 1) * dk - 1) // sk + 1
              for a, (i, bk, sk, dk) in enumerate(zip(image, block, s, d))]
    cols = rng.standard_normal((2, 2 * int(np.prod(block)), int(np.prod(blocks)))).astype(np.float32)
    return (cols, np.array(image, np.int64), np.array(block, np.int64)), dict(dilations=d, pads=pads, strides=s)


REFERENCE_GRID = ([("Conv", i) for i in range(20)] + [("ConvTranspose", i) for i in range(20)]
                  + [("Col2Im", i) for i in range(12)])
MAKERS = {"Conv": _random_conv_case, "ConvTranspose": _random_transposed_case, "Col2Im": _random_col2im_case}


@pytest.mark.parametrize("op_type,seed", REFERENCE_GRID, ids=[f"{o}-{i}" for o, i in REFERENCE_GRID])
def test_against_onnx_reference_evaluator(op_type, seed):
    inputs, attributes = MAKERS[op_type](np.random.default_rng(1000 + seed))
    want = _reference(op_type, inputs, attributes)
    got = OPS[op_type](*inputs, **attributes)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_reference_evaluator_reads_notset_output_shape_otherwise():
    """Where onnx's reference evaluator departs from the spec text (we follow the text, as the
    node test test_convtranspose_output_shape and ONNX Runtime do): with auto_pad NOTSET and
    output_shape, the reference adds no pads, so it only runs outputs of full .. full + stride - 1
    and grows them at the end; the spec splits total = full - output_shape as
    begin = total - total // 2, end = total // 2 (here total = -2: one zero on each side)."""
    x = np.array([[[1.0, 2.0]]], np.float32)
    w = np.ones((1, 1, 1), np.float32)
    attributes = dict(strides=[3], output_shape=[6])  # full scatter [1, 0, 0, 2]
    np.testing.assert_array_equal(nx.conv_transpose(x, w, **attributes)[0, 0], [0, 1, 0, 0, 2, 0])
    np.testing.assert_array_equal(_reference("ConvTranspose", (x, w), attributes)[0, 0], [1, 0, 0, 2, 0, 0])


# ---- refusals ---------------------------------------------------------------------------------

X2, W2 = np.zeros((1, 4, 5, 5)), np.zeros((6, 2, 3, 3))
XT, WT = np.zeros((1, 4, 3, 3)), np.zeros((4, 3, 3, 3))
CONV_REFUSALS = {
    "pads-length": (dict(group=2, pads=[1, 1, 1]), ValueError, r"pads must have 4 values .*got 3"),
    "pads-negative": (dict(group=2, pads=[1, -1, 0, 0]), ValueError, r"pads must be >= 0.*-1"),
    "pads-type": (dict(group=2, pads=[1.5, 0, 0, 0]), TypeError, r"pads must be a list of ints"),
    "strides-zero": (dict(group=2, strides=[0, 1]), ValueError, r"strides must be >= 1.*\[0, 1\]"),
    "strides-length": (dict(group=2, strides=[1, 1, 1]), ValueError, r"strides must have 2 values.*got 3"),
    "dilations-zero": (dict(group=2, dilations=[1, 0]), ValueError, r"dilations must be >= 1"),
    "auto_pad-unknown": (dict(group=2, auto_pad="SAME"), ValueError, r"auto_pad must be one of"),
    "auto_pad-with-pads": (dict(group=2, auto_pad="SAME_UPPER", pads=[0, 0, 0, 0]), ValueError,
                           r"pads cannot be used together with auto_pad='SAME_UPPER'"),
    "kernel_shape": (dict(group=2, kernel_shape=[2, 3]), ValueError,
                     r"kernel_shape=\[2, 3\] must match W's spatial shape \[3, 3\]"),
    "group-zero": (dict(group=0), ValueError, r"group must be a positive integer, got group=0"),
    "group-not-dividing": (dict(group=3), ValueError, r"C=4 .*C % group == 0.*group=3"),
    "channels": (dict(group=1), ValueError, r"C=4 .*W.shape\[1\] \* group = 2 \* 1 = 2"),
    "kernel-too-big": (dict(group=2, dilations=[3, 1]), ValueError, r"\(3 - 1\) \* 3 \+ 1 = 7 .*5 \+ 0 \+ 0 = 5"),
}


@pytest.mark.parametrize("name", CONV_REFUSALS)
def test_conv_refusals(name):
    attributes, error, message = CONV_REFUSALS[name]
    with pytest.raises(error, match=message):
        nx.conv(X2, W2, **attributes)


def test_conv_operand_refusals():
    with pytest.raises(ValueError, match=r"M = 5 must be divisible by group=2"):
        nx.conv(X2, np.zeros((5, 2, 3, 3)), group=2)
    with pytest.raises(ValueError, match=r"B must be 1-D with M=6 values, got B of shape \[4\]"):
        nx.conv(X2, W2, np.zeros(4), group=2)
    with pytest.raises(ValueError, match=r"same rank >= 3.*\[4, 5, 5\]"):
        nx.conv(X2[0], W2, group=2)
    with pytest.raises(TypeError, match=r"share one type T, got X float64 and W float32"):
        nx.conv(X2, W2.astype(np.float32), group=2)


TRANSPOSED_REFUSALS = {
    "output_padding": (dict(strides=[2, 2], output_padding=[2, 0]), ValueError,
                       r"output_padding=\[2, 0\].*2 >= max\(2, 1\)"),
    "output_shape-length": (dict(output_shape=[5, 5, 5]), ValueError, r"output_shape must have 2 values"),
    "output_shape-zero": (dict(output_shape=[0, 5]), ValueError, r"output_shape must be >= 1.*\[0, 5\]"),
    "pads-too-big": (dict(pads=[3, 0, 2, 0]), ValueError,
                     r"3 \* \(1 - 1\) \+ 0 \+ \(3 - 1\) \* 1 \+ 1 - 3 - 2 = -2 on spatial axis 0"),
    "channels": (dict(group=2), ValueError, r"C=4 .*C == W.shape\[0\]"),
    "auto_pad-with-pads": (dict(auto_pad="SAME_LOWER", pads=[1, 0, 0, 0]), ValueError, r"pads cannot be used"),
    "kernel_shape": (dict(kernel_shape=[3]), ValueError, r"kernel_shape must have 2 values"),
}


@pytest.mark.parametrize("name", TRANSPOSED_REFUSALS)
def test_conv_transpose_refusals(name):
    attributes, error, message = TRANSPOSED_REFUSALS[name]
    w = np.zeros((2, 3, 3, 3)) if name == "channels" else WT
    x = np.zeros((1, 4, 3, 3)) if name != "pads-too-big" else np.zeros((1, 4, 1, 3))
    if name == "pads-too-big":
        attributes = dict(attributes, strides=[3, 1])
    with pytest.raises(error, match=message):
        nx.conv_transpose(x, w, **attributes)


COL2IM_REFUSALS = {
    "lengths": ((np.zeros((1, 4, 4)), [3, 3], [2]), {}, ValueError, r"same length.*\[3, 3\].*\[2\]"),
    "rank": ((np.zeros((4, 4)), [3, 3], [2, 2]), {}, ValueError, r"input must be 3-D .*\[4, 4\]"),
    "divisible": ((np.zeros((1, 6, 4)), [3, 3], [2, 2]), {}, ValueError, r"input.shape\[1\]=6 .*prod\(block_shape\)=4"),
    "blocks": ((np.zeros((1, 4, 5)), [3, 3], [2, 2]), {}, ValueError, r"L=5 must equal .*prod\(\[2, 2\]\) = 4"),
    "pads": ((np.zeros((1, 4, 4)), [3, 3], [2, 2]), dict(pads=[1, 1]), ValueError, r"pads must have 4 values"),
    "shape-type": ((np.zeros((1, 4, 4)), [3.0, 3.0], [2, 2]), {}, TypeError, r"image_shape must be a 1-D list of ints"),
    "block-zero": ((np.zeros((1, 4, 4)), [3, 3], [0, 2]), {}, ValueError, r"block_shape must be >= 1"),
}


@pytest.mark.parametrize("name", COL2IM_REFUSALS)
def test_col2im_refusals(name):
    inputs, attributes, error, message = COL2IM_REFUSALS[name]
    with pytest.raises(error, match=message):
        nx.col2im(*inputs, **attributes)


def test_pads_helpers():
    """The pure pad rules on the spec's own examples."""
    assert nx.conv_pads((5, 5), (3, 3), auto_pad="SAME_LOWER", strides=(2, 2)) == ((1, 1), (1, 1))
    assert nx.conv_pads((6,), (4,), auto_pad="SAME_LOWER", strides=(2,)) == ((1, 1),)
    assert nx.conv_pads((7,), (4,), auto_pad="SAME_UPPER") == ((1, 2),)
    assert nx.conv_pads((7,), (4,), auto_pad="SAME_LOWER") == ((2, 1),)
    assert nx.conv_transpose_pads((3,), (3,), strides=(3,), output_shape=(10,)) == ((0, -1),)
    assert nx.conv_transpose_pads((3,), (3,), strides=(3,), output_shape=(10,), auto_pad="SAME_UPPER") == ((-1, 0),)
    assert nx.conv_transpose_pads((3,), (3,), strides=(2,), auto_pad="SAME_LOWER") == ((1, 0),)
    for pairs, op, s in itertools.product([((0, -3),), ((-2, -2),), ((1, 0),)], [(0,), (1,)], [(2,), (4,)]):
        engine, engine_op, grow = nx.transposed_engine_pads(pairs, op, s, (1,))
        (lo, hi), (e_lo, e_hi), (g_lo, g_hi) = pairs[0], engine[0], grow[0]
        assert min(e_lo, e_hi, g_lo, g_hi) >= 0 and engine_op[0] < s[0]
        assert (e_lo - g_lo, e_hi - engine_op[0] - g_hi) == (lo, hi - op[0])  # the same window


def test_review_regressions_keep_onnx_refusals():
    """ConvTranspose with W.shape[0] not divisible by group says the channel rule (it raised
    KeyError once); float arrays for ints attributes are refused, not truncated."""
    with pytest.raises(ValueError, match=r"X has C=2 channels; the rule is C % group == 0 .*group=3"):
        nx.conv_transpose(np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3)), group=3)
    with pytest.raises(TypeError, match=r"strides must be a list of ints"):
        nx.conv(np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), strides=np.array([2.5, 2.5]))
    assert nx.conv(np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), strides=np.array([2, 2])).shape == (1, 2, 2, 2)
