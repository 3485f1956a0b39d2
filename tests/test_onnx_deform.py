"""npconv.onnx.deform_conv (ONNX DeformConv) and its node conversion, against ONNX's own oracles.

- every DeformConv node case the onnx package ships (expected outputs written by the ONNX
  authors), generated in memory, the list pinned;
- ``onnx.reference.ReferenceEvaluator`` and ONNX Runtime on random one-node models (groups,
  offset groups, strides, asymmetric pads, dilations, masks, biases, offsets that reach past
  the image), float32 and float64;
- refusals in ONNX's words; ``npconv.convert`` reading a DeformConv node.
"""

import re

import numpy as np
import pytest

import npconv.nn as nn
import npconv.onnx as nx
from npconv.convert.onnx import DeformConvCall, onnx_node_to_call
from helpers import onnx_node_case_data, onnx_node_cases, require

onnx = require("onnx", "ONNX's DeformConv node cases and reference evaluator")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

ort = require("onnxruntime", "ONNX Runtime's DeformConv")

INPUTS = ["X", "W", "offset", "B", "mask"]  # ONNX's order


# ---- the onnx package's node cases -------------------------------------------------------------


NODE_CASES = onnx_node_cases("deform_conv", "DeformConv")
EXPECTED_CASES = {"test_basic_deform_conv_with_padding", "test_basic_deform_conv_without_padding",
                  "test_deform_conv_with_mask_bias", "test_deform_conv_with_multiple_offset_groups"}


def test_node_case_list_is_pinned():
    """A silently empty (or grown) list fails here."""
    assert set(NODE_CASES) == EXPECTED_CASES


def _attributes(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _named_inputs(node, inputs) -> dict:
    """The node's inputs by ONNX role: a node names them freely ("offset_with_padding"), by position."""
    return {role: value for role, name, value in zip(INPUTS, node.input, inputs) if name}


@pytest.mark.parametrize("name", sorted(EXPECTED_CASES))
def test_onnx_node_case(name):
    model, data_sets = onnx_node_case_data(NODE_CASES[name])
    (node,) = model.graph.node
    assert node.op_type == "DeformConv" and data_sets
    for inputs, (want,) in data_sets:
        got = nx.deform_conv(**_named_inputs(node, inputs), **_attributes(node))
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # the backend's: rtol=1e-3, atol=1e-7
        call = onnx_node_to_call(node)  # and the node converted
        np.testing.assert_allclose(call(*inputs), want, rtol=1e-6, atol=1e-6)


# ---- random nodes against the reference evaluator and ONNX Runtime -----------------------------

def _model(operands, attributes, opset=19):
    names = [n if operands.get(n) is not None else "" for n in INPUTS]
    while not names[-1]:
        names.pop()
    node = helper.make_node("DeformConv", names, ["Y"], **{k: v for k, v in attributes.items() if v is not None})
    infos = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(operands[n].dtype), operands[n].shape)
             for n in names if n]
    y_type = helper.np_dtype_to_tensor_dtype(operands["X"].dtype)
    graph = helper.make_graph([node], "one", infos, [helper.make_tensor_value_info("Y", y_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9  # what ONNX Runtime reads
    return model, {n: operands[n] for n in names if n}


def reference(operands, attributes):
    model, feeds = _model(operands, attributes)
    return ReferenceEvaluator(model).run(None, feeds)[0]


def random_node(seed, dtype):
    """One DeformConv node's operands and attributes; H, W >= 2 (the reference divides by H - 1)."""
    rng = np.random.default_rng(seed)
    group, offset_group = (int(v) for v in rng.choice([1, 2], 2))
    c = 2 * int(rng.integers(1, 3)) if max(group, offset_group) > 1 else int(rng.integers(1, 4))
    oc = group * int(rng.integers(1, 3))
    k = [int(v) for v in rng.integers(1, 4, 2)]
    s, d = ([int(v) for v in rng.integers(1, 3, 2)] for _ in range(2))
    pads = [int(v) for v in rng.integers(0, 3, 4)]  # per side: [top, left, bottom, right]
    size = [int(v) + (ki - 1) * di + 1 for v, ki, di in zip(rng.integers(2, 6, 2), k, d)]
    out = [(i + lo + hi - (ki - 1) * di - 1) // si + 1
           for i, ki, di, si, lo, hi in zip(size, k, d, s, pads[:2], pads[2:])]
    n = int(rng.integers(1, 3))
    taps = k[0] * k[1]
    scale = np.where(rng.random((n, 2 * offset_group * taps) + tuple(out)) < 0.1, 6.0, 1.0)  # some far outside
    operands = dict(X=rng.standard_normal([n, c] + size), W=rng.standard_normal([oc, c // group] + k),
                    offset=rng.standard_normal((n, 2 * offset_group * taps) + tuple(out)) * scale,
                    B=rng.standard_normal(oc) if rng.random() < 0.5 else None,
                    mask=rng.uniform(-0.5, 1.5, (n, offset_group * taps) + tuple(out)) if rng.random() < 0.5 else None)
    operands = {key: None if v is None else v.astype(dtype) for key, v in operands.items()}
    return operands, dict(dilations=d, group=group, kernel_shape=k, offset_group=offset_group, pads=pads, strides=s)


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


# the reference evaluator rounds sample coordinates to float32 (GridSample), even for float64
TOLERANCE = {np.float32: 5e-6, np.float64: 3e-6}  # worst seen: 7e-7 and 5e-7 of the largest |Y|
SEEDS = range(20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", SEEDS)
def test_against_reference_evaluator(seed, dtype):
    operands, attributes = random_node(seed, dtype)
    want = reference(operands, attributes)
    got = nx.deform_conv(**operands, **attributes)
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE[dtype]


def test_random_nodes_cover_the_geometry():
    """The random nodes reach what they are meant to: groups, offset groups, asymmetric pads,
    strides, dilations, masks, biases, samples outside the image."""
    seen = {key: set() for key in ("group", "offset_group", "asym", "stride2", "dilation2", "mask", "bias")}
    outside = []
    for seed in SEEDS:
        operands, a = random_node(seed, np.float64)
        seen["group"].add(a["group"])
        seen["offset_group"].add(a["offset_group"])
        seen["asym"].add(a["pads"][:2] != a["pads"][2:])
        seen["stride2"].add(2 in a["strides"])
        seen["dilation2"].add(2 in a["dilations"])
        seen["mask"].add(operands["mask"] is not None)
        seen["bias"].add(operands["B"] is not None)
        outside.append(_outside(operands, a))
    assert seen.pop("group") == seen.pop("offset_group") == {1, 2}
    assert seen.pop("mask") == seen.pop("bias") == {True, False}
    assert all(True in values for values in seen.values()), seen
    assert min(outside) > 0 and 0.2 < np.mean(outside) < 0.6  # every node has some, most samples are inside


def _outside(operands, a):
    """The fraction of samples whose four corners are all outside the image."""
    n, c, *size = operands["X"].shape
    kh, kw = a["kernel_shape"]
    offset = operands["offset"].reshape((n, a["offset_group"], kh, kw, 2) + operands["offset"].shape[2:])
    outside = False
    for axis, (taps, out) in enumerate(zip((kh, kw), offset.shape[-2:])):
        regular = (np.arange(out) * a["strides"][axis] - a["pads"][axis])[None, :] + \
            (np.arange(taps) * a["dilations"][axis])[:, None]  # (taps, out)
        where = regular[:, None, :, None] if axis == 0 else regular[None, :, None, :]  # (kh, kw, oh, ow)
        point = where + offset[:, :, :, :, axis]  # (N, G, kh, kw, oh, ow)
        outside = outside | (point <= -1) | (point >= size[axis])
    return float(np.mean(outside))


@pytest.mark.parametrize("seed", SEEDS)
def test_against_onnx_runtime(seed):
    operands, attributes = random_node(seed, np.float32)
    model, feeds = _model(operands, attributes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    got = nx.deform_conv(**operands, **attributes)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert relative_error(got, want) <= 2e-6  # worst seen: 1.8e-7


def test_one_row_image_against_onnx_runtime():
    """H = 1, which the reference evaluator cannot run (it divides by H - 1): bilinear along W,
    the row's neighbours above and below count zero."""
    x, w = np.array([[[[1.0, 2.0, 3.0]]]], np.float32), np.ones((1, 1, 1, 1), np.float32)
    offset = np.array([[[[-0.5, 0.25, 0.0]], [[0.5, 0.0, -1.5]]]], np.float32)  # (dh, dw) per output
    model, feeds = _model(dict(X=x, W=w, offset=offset), {})
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = nx.deform_conv(x, w, offset)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.ravel(), [0.5 * 1.5, 0.75 * 2, 1.5], rtol=1e-6)


def test_opset_22_and_float16():
    """Opset 22 (bfloat16 added to T) runs the same; float16 is computed in float32 and kept."""
    operands, attributes = random_node(3, np.float32)
    model, feeds = _model(operands, attributes, opset=22)
    np.testing.assert_allclose(nx.deform_conv(**operands, **attributes), ReferenceEvaluator(model).run(None, feeds)[0],
                               rtol=1e-5, atol=1e-5)
    half = {k: None if v is None else v.astype(np.float16) for k, v in operands.items()}
    y = nx.deform_conv(**half, **attributes)
    want = nx.deform_conv(**{k: None if v is None else v.astype(np.float32) for k, v in half.items()}, **attributes)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, want.astype(np.float16), rtol=0, atol=2e-3 * np.abs(want).max())


def test_zero_offsets_are_onnx_conv():
    """Zero offsets and a unit mask: ONNX Conv with the same attributes, asymmetric pads too."""
    operands, attributes = random_node(5, np.float64)
    operands["offset"] = np.zeros_like(operands["offset"])
    operands["mask"] = None
    want = nx.conv(operands["X"], operands["W"], operands["B"],
                   **{k: v for k, v in attributes.items() if k != "offset_group"})
    np.testing.assert_allclose(nx.deform_conv(**operands, **attributes), want, rtol=1e-12, atol=1e-12)


# ---- refusals ----------------------------------------------------------------------------------

X, W, OFFSET = np.zeros((1, 4, 5, 5)), np.zeros((6, 2, 3, 3)), np.zeros((1, 18, 3, 3))
REFUSALS = {  # name: (changes to X, W, offset / attributes, error, message)
    "kernel_shape": (dict(kernel_shape=[2, 3]), ValueError,
                     r"kernel_shape=\[2, 3\] must match W's spatial shape \[3, 3\]"),
    "offset-channels": (dict(group=2, offset_group=2), ValueError,
                        r"offset has 18 channels; the rule is offset.shape\[1\] == offset_group \* kH \* kW \* 2 = "
                        r"2 \* 3 \* 3 \* 2 = 36, with offset_group=2"),
    "offset_group-divides": (dict(group=2, offset_group=3, offset=np.zeros((1, 54, 3, 3))), ValueError,
                             r"X has C=4 channels, which must be divisible by offset_group=3 \(4 % 3 = 1\)"),
    "group-not-dividing": (dict(group=3), ValueError, r"C=4 .*C % group == 0 .*group=3"),
    "group-channels": (dict(group=1), ValueError, r"C=4 .*W.shape\[1\] \* group = 2 \* 1 = 2"),
    "group-zero": (dict(group=0), ValueError, r"group must be a positive integer, got group=0"),
    "offset_group-zero": (dict(offset_group=0), ValueError, r"offset_group must be a positive integer.*=0"),
    "offset_group-type": (dict(offset_group=1.0), TypeError, r"offset_group must be an int"),
    "oc-not-dividing": (dict(group=2, W=np.zeros((5, 2, 3, 3))), ValueError, r"M = 5 must be divisible by group=2"),
    "offset-size": (dict(group=2, offset=np.zeros((1, 18, 4, 3))), ValueError,
                    r"offset's spatial shape \[4, 3\] must be the output's \[oH, oW\] = \[3, 3\]"),
    "offset-with-pads": (dict(group=2, pads=[1, 0, 0, 0]), ValueError,
                         r"offset's spatial shape \[3, 3\] must be the output's \[oH, oW\] = \[4, 3\]"),
    "mask-channels": (dict(group=2, mask=np.zeros((1, 18, 3, 3))), ValueError,
                      r"mask has 18 channels; the rule is mask.shape\[1\] == offset_group \* kH \* kW = "
                      r"1 \* 3 \* 3 = 9"),
    "mask-size": (dict(group=2, mask=np.zeros((1, 9, 3, 2))), ValueError, r"mask's spatial shape \[3, 2\]"),
    "offset-batch": (dict(group=2, offset=np.zeros((2, 18, 3, 3))), ValueError,
                     r"offset.shape\[0\]=2 must be X's batch N=1"),
    "offset-rank": (dict(group=2, offset=np.zeros((18, 3, 3))), ValueError, r"offset must be 4-D .*\[18, 3, 3\]"),
    "bias": (dict(group=2, B=np.zeros(4)), ValueError, r"B must be 1-D with M=6 values, got B of shape \[4\]"),
    "pads-length": (dict(group=2, pads=[1, 1]), ValueError, r"pads must have 4 values .*got 2"),
    "strides-zero": (dict(group=2, strides=[0, 1]), ValueError, r"strides must be >= 1"),
    "kernel-too-big": (dict(group=2, dilations=[3, 1]), ValueError, r"\(3 - 1\) \* 3 \+ 1 = 7 .*5 \+ 0 \+ 0 = 5"),
    "3-d": (dict(X=np.zeros((1, 4, 5, 5, 5)), W=np.zeros((6, 2, 3, 3, 3))), ValueError, r"2-D operator"),
    "ranks": (dict(X=np.zeros((1, 4, 5)), group=2), ValueError, r"same rank >= 3"),
    "types": (dict(group=2, offset=np.zeros((1, 18, 3, 3), np.float32)), TypeError,
              r"share one type T, got X float64 and offset float32"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals(name):
    changes, error, message = REFUSALS[name]
    operands = dict(X=X, W=W, offset=OFFSET)
    operands.update({k: v for k, v in changes.items() if k in INPUTS})
    with pytest.raises(error, match=message):
        nx.deform_conv(**operands, **{k: v for k, v in changes.items() if k not in INPUTS})


# ---- npconv.convert reads a DeformConv node ----------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_converted_node_matches_reference(seed):
    """The node as npconv calls: deform_conv2d (X padded in front where ONNX's pads differ
    per side) and, with symmetric pads, the module npconv.nn.DeformConv2d."""
    operands, attributes = random_node(100 + seed, np.float64)
    if seed % 2:  # half symmetric: the module can take them
        attributes["pads"] = [max(lo, hi) for lo, hi in zip(attributes["pads"][:2], attributes["pads"][2:])] * 2
        operands, attributes = _refit(operands, attributes, seed)
    model, feeds = _model(operands, attributes)
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    call = onnx_node_to_call(model.graph.node[0])
    assert isinstance(call, DeformConvCall) and call.function == "deform_conv2d"
    assert call.groups == attributes["group"] and call.offset_groups == attributes["offset_group"]
    assert relative_error(call(*[operands[n] for n in INPUTS]), want) <= 2e-6
    if call.front_pads is None:
        module = call.to_module(operands["W"], operands["B"])
        assert isinstance(module, nn.DeformConv2d) and module.padding == tuple(attributes["pads"][:2])
        assert relative_error(module(operands["X"], operands["offset"], operands["mask"]), want) <= 2e-6
    else:
        with pytest.raises(ValueError, match=r"pads symmetrically .*front_pads="):
            call.to_module(operands["W"], operands["B"])


def _refit(operands, attributes, seed):
    """Offset and mask resized to the output of the changed pads."""
    rng = np.random.default_rng(seed)
    x = operands["X"]
    out = [(i + 2 * p - (k - 1) * d - 1) // s + 1 for i, p, k, d, s in
           zip(x.shape[2:], attributes["pads"][:2], attributes["kernel_shape"], attributes["dilations"],
               attributes["strides"])]
    for name in ("offset", "mask"):
        if operands[name] is not None:
            shape = operands[name].shape[:2] + tuple(out)
            operands[name] = rng.standard_normal(shape) * (2.0 if name == "offset" else 0.5)
    return operands, attributes


def test_convert_reads_deform_attributes():
    call = onnx_node_to_call({"kernel_shape": [3, 3], "pads": [1, 0, 2, 1], "strides": [2, 1], "group": 2,
                              "offset_group": 4}, "DeformConv")
    assert call == DeformConvCall(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 1), groups=2,
                                  offset_groups=4, kernel_shape=(3, 3))
    assert call.front_pads == ((0, 1), (0, 1)) and call.kwargs["padding"] == (1, 0)
    assert onnx_node_to_call({"pads": [1, 1, 1, 1]}, "DeformConv", weight_shape=(4, 2, 3, 3)).front_pads is None
    with pytest.raises(ValueError, match=r"unknown attributes \['auto_pad'\]"):
        onnx_node_to_call({"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, "DeformConv")
    with pytest.raises(ValueError, match=r"2-D operator; the node has 3 spatial axes"):
        onnx_node_to_call({"kernel_shape": [3, 3, 3]}, "DeformConv")
    with pytest.raises(ValueError, match=r"offset_group must be a positive integer"):
        onnx_node_to_call({"kernel_shape": [3, 3], "offset_group": 0}, "DeformConv")
    with pytest.raises(ValueError, match=re.escape("offset has 18 channels")):
        call(np.zeros((1, 4, 6, 6)), np.zeros((6, 2, 3, 3)), np.zeros((1, 18, 3, 6)))
