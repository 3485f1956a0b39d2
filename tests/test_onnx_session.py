"""npconv.onnx_session.InferenceSession against the onnx package's backend node cases (expected
outputs written by the ONNX authors) and against onnxruntime on torch.onnx exports of small
CNN blocks and of the four zoo networks (tests/torch_zoo.py)."""

import io
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn

from helpers import onnx_node_case_data, onnx_node_cases, require

onnx = require("onnx", "InferenceSession's node cases")
ort = require("onnxruntime", "InferenceSession's parity with ONNX Runtime")
from onnx import helper, numpy_helper, TensorProto  # noqa: E402

from npconv.onnx_session import InferenceSession, SUPPORTED_OPS  # noqa: E402

# ---- (a) the onnx package's node cases ------------------------------------------------------
FLOAT, DOUBLE, INT32, INT64 = 1, 11, 6, 7
# Cases of our operators that are selected (float outputs) but not run, and why:
EXCLUDED = {
    "test_batchnorm_example_training_mode": "training_mode=1 (batch statistics): the session is inference only",
    "test_batchnorm_epsilon_training_mode": "training_mode=1 (batch statistics): the session is inference only",
}
# Cases whose expected outputs were written rounded (ORT gives our values, to 1e-7):
LOOSER = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-3}
# Not selected at all (by the rule in _is_float_case), e.g.: int/bool-only or int-output cases
# (test_add_int8, test_div_int32_trunc, test_pow_types_int*, test_constantofshape_int_*,
# test_cast_* to or from other types, test_maxpool_with_argmax_* with MaxPool's int64
# Indices output, which the session refuses), float16/bfloat16 cases, and cases with any operator
# outside SUPPORTED_OPS (e.g. test_averagepool_*_expanded with ReduceSum, DepthToSpace).


def _is_float_case(case) -> bool:
    """Every node one of ours; outputs float32/float64; inputs float or int32/int64 (shapes, indices)."""
    graph = case.model.graph if case.model is not None else None
    return (graph is not None and all(n.op_type in SUPPORTED_OPS and n.domain in ("", "ai.onnx") for n in graph.node)
            and all(v.type.tensor_type.elem_type in (FLOAT, DOUBLE) for v in graph.output)
            and all(v.type.tensor_type.elem_type in (FLOAT, DOUBLE, INT32, INT64) for v in graph.input))


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _ALL = onnx_node_cases("test_", "\0")  # every node case (each name starts with test_)
SELECTED = {name: case for name, case in _ALL.items() if _is_float_case(case)}
RUN = sorted(set(SELECTED) - set(EXCLUDED))


def test_node_case_selection():
    """The selection is not silently empty, covers every operator, and every exclusion is in it."""
    assert set(EXCLUDED) <= set(SELECTED)
    assert len(RUN) >= 220, len(RUN)
    ops = {n.op_type for name in RUN for n in SELECTED[name].model.graph.node}
    assert ops == set(SUPPORTED_OPS), sorted(set(SUPPORTED_OPS) - ops)


def _array(value):
    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else np.asarray(value)


def _assert_close(got, want, tolerance, what):
    """Same dtype and shape; NaN and inf where expected; finite values within tolerance * max|want|."""
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=what)
    if finite.any():
        scale = max(float(np.abs(want[finite]).max()), np.finfo(np.float64).tiny)
        err = float(np.abs(got[finite].astype(np.float64) - want[finite]).max()) / scale
        assert err <= tolerance, f"{what}: relative error {err:.3e} > {tolerance:.0e}"


@pytest.mark.parametrize("name", RUN)
def test_node_case(name):
    model, data_sets = onnx_node_case_data(SELECTED[name])
    session = InferenceSession(model.SerializeToString())
    feeds = [i.name for i in model.graph.input]
    assert data_sets
    for inputs, outputs in data_sets:
        got = session.run(None, dict(zip(feeds, map(_array, inputs))))
        assert len(got) == len(outputs)
        for index, (g, w) in enumerate(zip(got, map(_array, outputs))):
            tolerance = LOOSER.get(name, 1e-5 if w.dtype == np.float64 else 1e-4)
            _assert_close(g, w, tolerance, f"{name} output {index}")


# ---- (b) torch.onnx exports vs ONNX Runtime ------------------------------------------------
def _export(model, shape, opset=17, **options) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(*shape),), buffer, dynamo=False, opset_version=opset, **options)
    return buffer.getvalue()


def _parity(data: bytes, shape, seed=0, tolerance=1e-4):
    """Our session and ORT on the same bytes and input: within tolerance * max|ref|, float32."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    ours, theirs = InferenceSession(data), ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = ours.run(None, {ours.get_inputs()[0].name: x})
    want = theirs.run(None, {theirs.get_inputs()[0].name: x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        err = float(np.abs(g - w).max()) / float(np.abs(w).max())
        assert err <= tolerance, f"relative error {err:.3e}"
    return ours, theirs


def _randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (tnn.BatchNorm2d, tnn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


class ResidualBlock(tnn.Module):
    """ResNet stem and basic block: conv-bn-relu, max pool, identity and projected shortcuts."""

    def __init__(self):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 8, 7, 2, 3, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
                                   tnn.MaxPool2d(3, 2, 1))
        self.body = tnn.Sequential(tnn.Conv2d(8, 16, 3, 2, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU(),
                                   tnn.Conv2d(16, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16))
        self.down = tnn.Sequential(tnn.Conv2d(8, 16, 1, 2, bias=False), tnn.BatchNorm2d(16))
        self.fc = tnn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        y = torch.relu(self.body(x) + self.down(x))
        return self.fc(torch.flatten(tnn.functional.adaptive_avg_pool2d(y, 1), 1))


class InvertedResidual(tnn.Module):
    """MobileNet blocks: 1x1 expand, depthwise 3x3 with ReLU6 and Hardswish, squeeze-excite
    with Hardsigmoid, 1x1 project, residual add; softmax head."""

    def __init__(self):
        super().__init__()
        self.expand = tnn.Sequential(tnn.Conv2d(4, 16, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU6())
        self.depthwise = tnn.Sequential(tnn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), tnn.BatchNorm2d(16),
                                        tnn.Hardswish())
        self.excite = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Conv2d(16, 16, 1), tnn.Hardsigmoid())
        self.project = tnn.Sequential(tnn.Conv2d(16, 4, 1, bias=False), tnn.BatchNorm2d(4))
        self.head = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(4, 5))

    def forward(self, x):
        y = self.depthwise(self.expand(x))
        y = x + self.project(y * self.excite(y))
        return self.head(y.mean((2, 3))).softmax(-1)


class ChannelsLastLayerNorm(tnn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(tnn.Module):
    """ConvNeXt: depthwise 7x7, LayerNorm over a channels-last permute, Linear-GELU-Linear, layer
    scale, residual; a patchify stem and a channels-first LayerNorm downsample."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 8, 4, 4), ChannelsLastLayerNorm(8, eps=1e-6))
        self.dw = tnn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = tnn.LayerNorm(8, eps=1e-6)
        self.mlp = tnn.Sequential(tnn.Linear(8, 32), tnn.GELU(approximate=approximate), tnn.Linear(32, 8))
        self.gamma = tnn.Parameter(torch.full((8,), 0.5))
        self.down = tnn.Sequential(ChannelsLastLayerNorm(8, eps=1e-6), tnn.Conv2d(8, 16, 2, 2))

    def forward(self, x):
        x = self.stem(x)
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1)))
        return self.down(x + (self.gamma * y).permute(0, 3, 1, 2))


class Decoder(tnn.Module):
    """The rest: reflect pad, ConvTranspose, ceil-mode average pool without pads counted,
    sigmoid gate, and a reshape through the dynamic batch size (Shape, Gather, Unsqueeze,
    Concat, Reshape)."""

    def __init__(self):
        super().__init__()
        self.pad = tnn.ReflectionPad2d((1, 2, 0, 1))
        self.up = tnn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.pool = tnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.edge = tnn.ReplicationPad2d(1)

    def forward(self, x):
        y = self.pool(self.up(self.pad(x)))
        y = self.edge(y) * torch.sigmoid(y.mean(1, keepdim=True) - 0.1)[..., :1, :1]
        return y.reshape(x.shape[0], 4, -1).softmax(1) / 2


def _seeded(cls, *args):
    torch.manual_seed(0)
    return _randomise_bn(cls(*args))


@pytest.mark.parametrize("opset", [11, 17])
def test_residual_block(opset):
    _parity(_export(_seeded(ResidualBlock), (2, 3, 32, 32), opset), (2, 3, 32, 32))


def test_residual_block_with_batchnorm_nodes():
    """Unfolded export: BatchNormalization nodes, run in inference mode."""
    data = _export(_seeded(ResidualBlock), (1, 3, 32, 32), 17, do_constant_folding=False,
                   training=torch.onnx.TrainingMode.PRESERVE)
    assert "BatchNormalization" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    _parity(data, (1, 3, 32, 32))


@pytest.mark.parametrize("opset", [11, 17])
def test_inverted_residual(opset):
    _parity(_export(_seeded(InvertedResidual), (2, 4, 8, 8), opset), (2, 4, 8, 8))


@pytest.mark.parametrize("opset,approximate", [(11, "tanh"), (17, "none"), (18, "tanh")])
def test_convnext_block(opset, approximate):
    """opset 11: LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div; 17+: LayerNormalization; 18: axes inputs."""
    _parity(_export(_seeded(ConvNeXtBlock, approximate), (1, 3, 32, 32), opset), (1, 3, 32, 32))


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_decoder_with_dynamic_batch(opset):
    data = _export(_seeded(Decoder), (2, 3, 6, 7), opset, input_names=["image"], output_names=["maps"],
                   dynamic_axes={"image": {0: "batch"}, "maps": {0: "batch"}})
    ours, theirs = _parity(data, (3, 3, 6, 7))
    assert [(a.name, a.type, a.shape) for a in ours.get_inputs()] == [("image", "tensor(float)", ["batch", 3, 6, 7])]
    assert [(a.name, a.type, a.shape) for a in ours.get_inputs()] == [
        (a.name, a.type, a.shape) for a in theirs.get_inputs()]
    # outputs: the declared shape (ORT replaces torch's symbolic 'Divmaps_dim_1' by its own
    # shape inference's 4; we report what the model declares)
    assert [(a.name, a.type) for a in ours.get_outputs()] == [(a.name, a.type) for a in theirs.get_outputs()]
    assert ours.get_outputs()[0].shape[0] == "batch"


# ---- (c) refusals and (d) metadata -------------------------------------------------------------
def _model(nodes, inputs, outputs, initializers=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_unsupported_operators_are_named_before_running():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"), helper.make_node("Einsum", ["a"], ["b"], name="e1"),
             helper.make_node("Celu", ["b"], ["y"], name="c1")]
    with pytest.raises(ValueError, match=r"unsupported ONNX operators: Celu \(nodes \['c1'\]\); Einsum \(nodes \['e1'\]\)"):
        InferenceSession(_model(nodes, [_value("x", [2])], [_value("y", [2])]))


def test_other_domains_are_unsupported():
    node = helper.make_node("FusedConv", ["x"], ["y"], name="f", domain="com.microsoft")
    with pytest.raises(ValueError, match=r"com.microsoft.FusedConv \(nodes \['f'\]\)"):
        InferenceSession(_model([node], [_value("x", [2])], [_value("y", [2])]))


def test_training_batchnorm_refused_at_construction():
    node = helper.make_node("BatchNormalization", list("xsbmv"), ["y"], name="bn", training_mode=1)
    inputs = [_value("x", [1, 2, 2])] + [_value(n, [2]) for n in "sbmv"]
    with pytest.raises(ValueError, match="bn.*training_mode=1"):
        InferenceSession(_model([node], inputs, [_value("y", [1, 2, 2])]))


def _two_input_session():
    nodes = [helper.make_node("Add", ["x", "w"], ["s"]), helper.make_node("Mul", ["s", "z"], ["y"])]
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    return InferenceSession(_model(nodes, [_value("x", ["n", 3]), _value("z", [1, 3])],
                                   [_value("y", ["n", 3]), _value("s", ["n", 3])], [w]))


def test_missing_and_unknown_inputs_are_named():
    session = _two_input_session()
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"missing \['z'\]"):
        session.run(None, {"x": x})
    with pytest.raises(ValueError, match=r"unknown names \['q'\]"):
        session.run(None, {"x": x, "z": x[:1], "q": x})
    with pytest.raises(ValueError, match=r"unknown output names \['nope'\]"):
        session.run(["nope"], {"x": x, "z": x[:1]})
    with pytest.raises(TypeError, match=r"'x' must be tensor\(float\).*float64"):
        session.run(None, {"x": x.astype(np.float64), "z": x[:1]})
    with pytest.raises(ValueError, match=r"'z' must have shape \[1, 3\]"):
        session.run(None, {"x": x, "z": x})


def test_run_values_and_output_choice():
    session = _two_input_session()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    z = np.full((1, 3), 2, np.float32)
    y, s = session.run(None, {"x": x, "z": z})
    np.testing.assert_array_equal(s, x + 1)
    np.testing.assert_array_equal(y, (x + 1) * 2)
    (only,) = session.run(["s"], {"x": x, "z": z})
    np.testing.assert_array_equal(only, x + 1)


def test_metadata_matches_onnxruntime():
    data = _export(_seeded(InvertedResidual), (2, 4, 8, 8), 17, input_names=["pixels"], output_names=["probs"],
                   dynamic_axes={"pixels": {0: "n", 2: "h"}, "probs": {0: "n"}})
    ours, theirs = InferenceSession(data), ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    pairs = [(ours.get_inputs(), theirs.get_inputs()), (ours.get_outputs(), theirs.get_outputs())]
    for mine, reference in pairs:
        assert [(a.name, a.type, a.shape) for a in mine] == [(a.name, a.type, a.shape) for a in reference]
    assert ours.get_inputs()[0].shape == ["n", 4, "h", 8]


def test_missing_onnx_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match="pip install onnx"):
        InferenceSession(b"")


def _int64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


SHAPE = [2, 3, 5, 6]
# single nodes at the opsets where attributes were attributes, and the newer inputs, vs ORT
OPSET_NODES = {
    "clip-attributes-6": (6, helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.25), []),
    "pad-reflect-attributes-2": (2, helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1],
                                                     mode="reflect"), []),
    "pad-edge-axes-negative-18": (18, helper.make_node("Pad", ["x", "p", "", "a"], ["y"], mode="edge"),
                                  [_int64("p", [2, -1, -2, 3]), _int64("a", [-1, 1])]),
    "pad-constant-value-13": (13, helper.make_node("Pad", ["x", "p", "v"], ["y"]),
                              [_int64("p", [0, 0, 1, 0, 0, 1, 0, 2]), numpy_helper.from_array(np.float32(1.5), "v")]),
    "slice-attributes-9": (9, helper.make_node("Slice", ["x"], ["y"], starts=[1, -4], ends=[100, -1], axes=[1, 3]), []),
    "slice-negative-steps-13": (13, helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"]),
                                [_int64("s", [-1, 4]), _int64("e", [-100, 0]), _int64("a", [3, 2]), _int64("t", [-2, -1])]),
    "softmax-coerced-11": (11, helper.make_node("Softmax", ["x"], ["y"], axis=1), []),
    "softmax-default-13": (13, helper.make_node("Softmax", ["x"], ["y"]), []),
    "softmax-default-11": (11, helper.make_node("Softmax", ["x"], ["y"]), []),
    "unsqueeze-attributes-11": (11, helper.make_node("Unsqueeze", ["x"], ["y"], axes=[0, -1]), []),
    "reduce-mean-attributes-13": (13, helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, -1], keepdims=0), []),
    "reduce-mean-input-18": (18, helper.make_node("ReduceMean", ["x", "a"], ["y"]), [_int64("a", [2])]),
    "reduce-mean-all-18": (18, helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0), []),
    "maxpool-dilated-ceil-asymmetric": (12, helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 1], pads=[1, 0, 0, 1],
        ceil_mode=1), []),
    "averagepool-same-lower-include-pad": (19, helper.make_node(
        "AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 3], auto_pad="SAME_LOWER",
        count_include_pad=1), []),
    "averagepool-ceil-pads-exclude": (19, helper.make_node(
        "AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1), []),
    "conv-same-upper-stride": (13, helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2]),
                               [numpy_helper.from_array(np.linspace(-1, 1, 4 * 3 * 3 * 2, dtype=np.float32)
                                                        .reshape(4, 3, 3, 2), "w")]),
}


@pytest.mark.parametrize("case", sorted(OPSET_NODES))
def test_single_node_vs_onnxruntime(case):
    opset, node, initializers = OPSET_NODES[case]
    data = _model([node], [_value("x", SHAPE)], [_value("y", None)], initializers, opset)
    ours, _ = _parity(data, SHAPE, tolerance=1e-6)
    assert ours.get_outputs()[0].name == "y"


# ---- (e) the zoo -----------------------------------------------------------------------------
ZOO = ("resnet18", "resnet50", "mobilenet_v2", "convnext_tiny")


@pytest.mark.parametrize("name", ZOO)
def test_zoo_network_matches_onnxruntime(name):
    if not os.path.exists(os.path.join(os.path.dirname(__file__), "torch_zoo.py")):
        pytest.skip("tests/torch_zoo.py (the torch.nn zoo) is not there yet")
    import torch_zoo

    torch.manual_seed(0)
    model = _randomise_bn(torch_zoo.build(name))
    _parity(_export(model, (1, 3, 64, 64), 17), (1, 3, 64, 64))


# ---- review findings: what run returns is the caller's, edge cases as ONNX Runtime -------------
def _both(data: bytes, feed):
    import onnxruntime as ort
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feed)
    return InferenceSession(data).run(None, feed), theirs


def test_outputs_never_alias_the_sessions_constants_or_the_callers_inputs():
    w = numpy_helper.from_array(np.array([0.0, 1.0, 2.0], np.float32), "w")
    nodes = [helper.make_node("Add", ["w", "w"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"]),
             helper.make_node("Identity", ["x"], ["z"])]
    session = InferenceSession(_model(nodes, [_value("x", [3])], [_value("c", [3]), _value("y", [3]),
                                                                   _value("z", [3])], [w]))
    x = np.zeros(3, np.float32)
    c, _, z = session.run(None, {"x": x})
    c += 100
    z += 7
    assert x.tolist() == [0, 0, 0]
    assert session.run(None, {"x": x})[1].tolist() == [0.0, 2.0, 4.0]


def test_integer_max_pool_gemm_with_beta_zero_and_integer_powers_as_onnx_runtime():
    pool = _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                  [_value("x", [1, 1, 4, 4], TensorProto.INT8)], [_value("y", [1, 1, 4, 4], TensorProto.INT8)],
                  opset=12)
    x = np.arange(-8, 8, dtype=np.int8).reshape(1, 1, 4, 4)
    ours, theirs = _both(pool, {"x": x})
    np.testing.assert_array_equal(ours[0], theirs[0])
    c = numpy_helper.from_array(np.array([np.nan, np.inf], np.float32), "c")
    gemm = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=0.0)],
                  [_value("a", [2, 3]), _value("b", [3, 2])], [_value("y", [2, 2])], [c])
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    ours, theirs = _both(gemm, {"a": a, "b": b})
    np.testing.assert_array_equal(ours[0], theirs[0])
    power = _model([helper.make_node("Pow", ["x", "e"], ["y"])],
                   [_value("x", [3], TensorProto.INT64), _value("e", [3], TensorProto.INT64)],
                   [_value("y", [3], TensorProto.INT64)])
    feed = {"x": np.array([2, 3, 1], np.int64), "e": np.array([-1, 2, -3], np.int64)}
    ours, theirs = _both(power, feed)
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_per_element_batch_norm_is_refused_by_name():
    arrays = [numpy_helper.from_array(np.ones((2, 3), np.float32), name) for name in ("s", "b", "m", "v")]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn0", spatial=0)
    with pytest.raises(ValueError, match="spatial=0"):
        InferenceSession(_model([node], [_value("x", [1, 2, 3])], [_value("y", [1, 2, 3])], arrays, opset=7))


def test_nodes_listed_in_any_order_run_in_dependency_order():
    chain = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"])
             for i in range(300)]
    shuffled = chain[::-1]  # every node after the one that reads it
    data = _model(shuffled, [_value("t0", [4])], [_value("t300", [4])])
    x = np.array([-1.0, 0.0, 0.5, 2.0], np.float32)
    ours, theirs = _both(data, {"t0": x})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
