"""npconv.convert.onnx: ONNX nodes -> npconv calls/modules -> ONNX attributes, round trips.

Oracle for the calls: npconv.onnx with the same attributes (itself checked against ONNX's node
tests, its reference evaluator and PyTorch in test_onnx.py), and PyTorch for torch modules.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

import npconv.nn as nn
import npconv.onnx as nx
from npconv.convert.onnx import NpconvCall, module_to_onnx_attributes, node_attributes, onnx_node_to_call
from helpers import require

helper = require("onnx.helper", "building ONNX nodes")

SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}


def per_axis(value, n):
    return list(value[:n]) if isinstance(value, (list, tuple)) else [value] * n


def pads_for(value, n):
    return None if value is None else list(value[:n]) + list(value[3:3 + n])


# name: (op_type, attributes with per-axis values cut to n; "grow" = output_shape minus the full size)
CASES = {
    "conv-asym": ("Conv", dict(pads=(2, 0, 1, 0, 1, 2), strides=2)),
    "conv-upper-s2": ("Conv", dict(auto_pad="SAME_UPPER", strides=2, dilations=2)),
    "conv-lower-s2": ("Conv", dict(auto_pad="SAME_LOWER", strides=(2, 3, 2))),
    "conv-upper-s1": ("Conv", dict(auto_pad="SAME_UPPER")),
    "conv-lower-s1-k4": ("Conv", dict(auto_pad="SAME_LOWER", k=4)),
    "conv-valid-g2": ("Conv", dict(auto_pad="VALID", group=2, strides=2)),
    "convT-pads-op": ("ConvTranspose", dict(pads=(1, 0, 2, 2, 1, 0), strides=2, output_padding=1)),
    "convT-lo-gt-hi": ("ConvTranspose", dict(pads=(2, 1, 2, 0, 0, 1), strides=3, group=2)),
    "convT-upper": ("ConvTranspose", dict(auto_pad="SAME_UPPER", strides=2)),
    "convT-lower-d2": ("ConvTranspose", dict(auto_pad="SAME_LOWER", strides=2, dilations=2)),
    "convT-shape-minus2": ("ConvTranspose", dict(grow=-2, strides=2)),
    "convT-shape-plus1": ("ConvTranspose", dict(grow=1, strides=2)),
    "convT-shape-plus4-upper": ("ConvTranspose", dict(grow=4, strides=2, auto_pad="SAME_UPPER")),
}


def _attributes(op_type, spec, n, x_shape, k):
    attributes = {"kernel_shape": k}
    for name, value in spec.items():
        if name in ("strides", "dilations", "output_padding"):
            attributes[name] = per_axis(value, n)
        elif name == "pads":
            attributes[name] = pads_for(value, n)
        elif name in ("auto_pad", "group"):
            attributes[name] = value
    if "grow" in spec:
        s, d = attributes["strides"], per_axis(spec.get("dilations", 1), n)
        attributes["output_shape"] = [si * (i - 1) + (ki - 1) * di + 1 + spec["grow"]
                                      for i, ki, si, di in zip(x_shape[2:], k, s, d)]
    return attributes


def _operands(op_type, spec, n, dtype=np.float64, seed=0):
    g = spec.get("group", 1)
    k = per_axis(spec.get("k", 3), n)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2 * g) + SPATIAL[n]).astype(dtype)
    w_shape = (2 * g, 3) if op_type == "ConvTranspose" else (3 * g, 2)
    w = rng.standard_normal(w_shape + tuple(k)).astype(dtype)
    b = rng.standard_normal(3 * g).astype(dtype)
    return x, w, b, k


GRID = [(name, n) for name in CASES for n in (1, 2, 3)]
IDS = [f"{name}-{n}d" for name, n in GRID]
FUNCTIONS = {"Conv": nx.conv, "ConvTranspose": nx.conv_transpose}


@pytest.mark.parametrize("name,n", GRID, ids=IDS)
def test_call_matches_npconv_onnx(name, n):
    """attrs -> NpconvCall -> the same outputs as npconv.onnx with the same attributes."""
    op_type, spec = CASES[name]
    x, w, b, k = _operands(op_type, spec, n)
    attributes = _attributes(op_type, spec, n, x.shape, k)
    want = FUNCTIONS[op_type](x, w, b, **attributes)
    call = onnx_node_to_call(attributes, op_type, input_shape=x.shape)
    assert isinstance(call, NpconvCall)
    assert all(isinstance(p, tuple) and len(p) == 2 for p in call.padding)  # explicit per-side pairs
    np.testing.assert_array_equal(call(x, w, b), want)
    node = helper.make_node(op_type, ["X", "W", "B"], ["Y"], **attributes)  # the same through a NodeProto
    assert onnx_node_to_call(node, input_shape=x.shape) == call
    assert node_attributes(node) == {key: (list(v) if isinstance(v, list) else v) for key, v in attributes.items()}


@pytest.mark.parametrize("name,n", GRID, ids=IDS)
def test_call_to_modules(name, n):
    """The npconv.nn module (and the torch.nn module where PyTorch can say it) gives the same outputs."""
    op_type, spec = CASES[name]
    x, w, b, k = _operands(op_type, spec, n, seed=1)
    attributes = _attributes(op_type, spec, n, x.shape, k)
    want = FUNCTIONS[op_type](x, w, b, **attributes)
    call = onnx_node_to_call(attributes, op_type, input_shape=x.shape)
    if call.output_pads is not None:  # the output reaches past the scatter: no module says that
        with pytest.raises(ValueError, match=r"reaches past the full scatter .*call the NpconvCall"):
            call.to_module(w, b)
        return
    module = call.to_module(w, b)
    assert type(module).__name__ == ("ConvTranspose" if op_type == "ConvTranspose" else "Conv") + f"{n}d"
    np.testing.assert_allclose(module(x), want, rtol=1e-12, atol=1e-12)
    try:
        torch_module = call.to_torch_module(w, b)
    except ValueError as error:  # PyTorch's symmetric padding + output_padding cannot say these pads
        assert op_type == "ConvTranspose" and "need output_padding" in str(error)
        assert any(not 0 <= p + lo - hi < max(s, d) for (lo, hi), p, s, d in
                   zip(call.padding, call.output_padding, call.stride, call.dilation))
        return
    np.testing.assert_allclose(torch_module(torch.from_numpy(x)).detach().numpy(), want, rtol=1e-12, atol=1e-12)


def test_conv_same_without_input_shape_is_npconvs_rule():
    """Without input_shape, Conv's SAME_* stays a rule npconv resolves per input: 'same'/'same_lower'."""
    x, w, b, _ = _operands("Conv", {}, 2)
    for auto_pad, rule in (("SAME_UPPER", "same"), ("SAME_LOWER", "same_lower")):
        call = onnx_node_to_call({"auto_pad": auto_pad, "strides": [2, 3]}, "Conv")
        assert call.padding == rule and call.function == "conv2d" and call.input_spatial is None
        for size in ((7, 6), (8, 11)):
            xs = np.resize(x, (2, 2) + size)
            np.testing.assert_allclose(call(xs, w, b), nx.conv(xs, w, b, auto_pad=auto_pad, strides=[2, 3]),
                                       rtol=1e-12, atol=1e-12)
        module = call.to_module(w, b)
        np.testing.assert_allclose(module(x), nx.conv(x, w, b, auto_pad=auto_pad, strides=[2, 3]), rtol=1e-12)


def test_torch_module_for_same_lower_at_stride_one():
    x, w, b, _ = _operands("Conv", {}, 2, seed=3)
    call = onnx_node_to_call({"auto_pad": "SAME_LOWER", "kernel_shape": [3, 3]}, "Conv")
    got = call.to_torch_module(w, b)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, nx.conv(x, w, b, auto_pad="SAME_LOWER"), rtol=1e-12, atol=1e-12)


def test_calls_carry_only_what_they_need():
    call = onnx_node_to_call({"kernel_shape": [3], "pads": [1, 2], "output_padding": [1], "strides": [2]},
                             "ConvTranspose")
    assert call.function == "conv_transpose1d" and call.input_spatial is None and call.output_pads is None
    assert call.kwargs == dict(stride=(2,), padding=((1, 2),), dilation=(1,), groups=1, output_padding=(1,))
    grown = onnx_node_to_call({"output_shape": [12], "strides": [3]}, "ConvTranspose", input_shape=(1, 1, 3),
                              weight_shape=(1, 1, 2))
    # full scatter 3 * 2 + 2 = 8, total = -4: begin -2, end -2; 2 of the end as output_padding
    assert grown.padding == ((0, 0),) and grown.output_padding == (2,) and grown.output_pads == ((2, 0),)


# ---- modules -> ONNX attributes -> modules ------------------------------------------------------

MODULES = {
    "conv1d-causal": lambda: nn.Conv1d(2, 3, 3, padding="causal", dilation=2),
    "conv1d-same-s2": lambda: nn.Conv1d(2, 4, 4, stride=2, padding="same"),
    "conv2d-pairs": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=((2, 0), (1, 3)), groups=2),
    "conv2d-same-lower-s2": lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding="same_lower", dilation=(1, 2)),
    "conv2d-valid": lambda: nn.Conv2d(2, 3, 3, padding="valid", bias=False),
    "conv3d-int": lambda: nn.Conv3d(2, 2, 2, padding=1, dilation=2),
    "convT1d-op": lambda: nn.ConvTranspose1d(2, 3, 3, stride=3, padding=1, output_padding=2),
    "convT2d-pairs": lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=((1, 0), (0, 2)), groups=2),
    "convT3d": lambda: nn.ConvTranspose3d(2, 2, (2, 3, 1), stride=(1, 2, 2), output_padding=(0, 1, 1), dilation=2),
}


@pytest.mark.parametrize("name", MODULES)
def test_module_round_trip(name):
    module = MODULES[name]()
    x = np.random.default_rng(5).standard_normal((2, module.in_channels) + SPATIAL[len(module.kernel_size)])
    x = x.astype(np.float32)
    want = module(x)
    attributes = module_to_onnx_attributes(module)
    op_type = "ConvTranspose" if module.transposed else "Conv"
    run = FUNCTIONS[op_type]
    np.testing.assert_array_equal(run(x, np.asarray(module.weight), None if module.bias is None else
                                      np.asarray(module.bias), **attributes), want)
    again = onnx_node_to_call(attributes, op_type).to_module(module.weight, module.bias)
    assert type(again) is type(module)
    np.testing.assert_array_equal(again(x), want)
    assert module_to_onnx_attributes(again) == attributes


def test_torch_module_to_attributes():
    conv = torch.nn.Conv2d(2, 4, 3, stride=2, padding=(1, 2), dilation=(2, 1), groups=2, dtype=torch.float64)
    attributes = module_to_onnx_attributes(conv)
    assert attributes == dict(kernel_shape=[3, 3], strides=[2, 2], dilations=[2, 1], group=2, pads=[1, 2, 1, 2])
    x = np.random.default_rng(2).standard_normal((1, 2, 9, 8))
    want = conv(torch.from_numpy(x)).detach().numpy()
    got = nx.conv(x, conv.weight.detach().numpy(), conv.bias.detach().numpy(), **attributes)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    convt = torch.nn.ConvTranspose1d(2, 3, 4, stride=3, padding=1, output_padding=2)
    assert module_to_onnx_attributes(convt) == dict(kernel_shape=[4], strides=[3], dilations=[1], group=1,
                                                    pads=[1, 1], output_padding=[2])


# ---- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kwargs,message", [
    (({"strides": [1]},), {}, r"op_type must be one of \('Conv', 'ConvTranspose', 'DeformConv'\)"),
    (({"strides": [1]}, "Pool"), {}, r"op_type must be one of"),
    (({"strides": [1], "alpha": 1},), dict(op_type="Conv"), r"unknown attributes \['alpha'\]"),
    (({"auto_pad": "SAME_UPPER", "strides": [2]}, "ConvTranspose"), {}, r"pads depend on the input size"),
    (({},), dict(op_type="Conv"), r"number of spatial axes is unknown"),
    (({"kernel_shape": [3, 3]}, "Conv"), dict(weight_shape=(1, 1, 3, 2)), r"kernel_shape=\[3, 3\] must match"),
    (({"kernel_shape": [3, 3]}, "Conv"), dict(input_shape=(1, 1, 5)), r"1 spatial axes, the attributes 2"),
    (({"kernel_shape": [3], "output_padding": [2]}, "ConvTranspose"), {}, r"output_padding=\[2\].*2 >= max\(1, 1\)"),
    (({"kernel_shape": [3], "group": 0}, "Conv"), {}, r"group must be a positive integer, got group=0"),
    (({"kernel_shape": [3], "auto_pad": "SAME_UPPER", "pads": [1, 0]}, "Conv"), {}, r"pads cannot be used"),
])
def test_node_refusals(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        onnx_node_to_call(*args, **kwargs)


def test_call_and_module_refusals():
    node = helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[3])
    with pytest.raises(ValueError, match=r"does not match the node's op_type 'Conv'"):
        onnx_node_to_call(node, "ConvTranspose")
    call = onnx_node_to_call({"auto_pad": "SAME_UPPER", "strides": [2]}, "Conv", input_shape=(1, 1, 7),
                             weight_shape=(1, 1, 3))
    with pytest.raises(ValueError, match=r"worked out for input spatial size \[7\].*\[1, 1, 8\]"):
        call(np.zeros((1, 1, 8)), np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"kernel_shape=\[3\] must match W's spatial shape \[2\]"):
        call(np.zeros((1, 1, 7)), np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match=r"depends on the input size"):
        onnx_node_to_call({"auto_pad": "SAME_UPPER", "strides": [2]}, "Conv").to_torch_module(np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"padding_mode='reflect' has no ONNX Conv attribute"):
        module_to_onnx_attributes(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match=r"attribute 'x' has ONNX type 4"):
        node_attributes(helper.make_node("Conv", ["X"], ["Y"], x=helper.make_tensor("t", 1, [1], [1.0])))


def test_onnx_and_torch_not_needed_at_run_time():
    code = ("import sys, numpy as np, npconv.onnx, npconv.convert.onnx as c; "
            "c.onnx_node_to_call({'kernel_shape': [3]}, 'Conv')(np.ones((1, 1, 5)), np.ones((1, 1, 3))); "
            "npconv.onnx.conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 3)), output_shape=[9]); "
            "bad = [m for m in ('onnx', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
