"""npconv.onnx.causal_conv_with_state (ONNX CausalConvWithState, opset 27) against ONNX's own oracles.

- every CausalConvWithState node case the onnx package ships (expected outputs written by the
  ONNX authors), plain and "_expanded" (the function-body form, same data), generated in
  memory, the list pinned;
- ``onnx.reference.ReferenceEvaluator`` and ONNX Runtime on random one-node models (k from 1,
  inputs shorter than k - 1, bias, past state, each activation), float32 and float16;
- the state carried chunk by chunk equals one call on the whole sequence, and
  ``npconv.stream.StreamingConv`` over a depthwise ``nn.Conv1d`` serves the operator;
- refusals naming the rule.
"""

import re
import warnings

import numpy as np
import pytest

import npconv.nn as nn
import npconv.onnx as nx
from helpers import onnx_node_case_data, onnx_node_cases, require

onnx = require("onnx", "ONNX's CausalConvWithState node cases and reference evaluator")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

ROLES = ["input", "weight", "bias", "past_state"]  # ONNX's order
OPSET = 27


# ---- the onnx package's node cases -------------------------------------------------------------

NODE_CASES = onnx_node_cases("causal_conv_with_state", "CausalConvWithState")
_PLAIN = {"b1_c1_degenerate", "basic", "decode_step", "fp16", "kernel_size_one", "short_input_no_past_state",
          "silu", "silu_fp16", "silu_with_past_state", "swish_alias", "with_bias", "with_bias_and_past_state",
          "with_past_state"}
EXPECTED_CASES = ({f"test_causal_conv_with_state_{p}" for p in _PLAIN}
                  | {f"test_causal_conv_with_state_{p}_expanded" for p in _PLAIN})


def test_node_case_list_is_pinned():
    """A silently empty (or grown) list fails here: 13 cases, each also in its expanded form."""
    assert set(NODE_CASES) == EXPECTED_CASES
    assert len(NODE_CASES) == 26


def _plain_node(name):
    """The CausalConvWithState node of a case (an expanded case's is its plain twin's)."""
    model, _ = onnx_node_case_data(NODE_CASES[re.sub(r"_expanded$", "", name)])
    (node,) = model.graph.node
    assert node.op_type == "CausalConvWithState"
    return node


def _named_inputs(model, inputs) -> dict:
    """A case's inputs by role: the graph's inputs carry the roles' names (skipped ones absent)."""
    names = [i.name for i in model.graph.input]
    assert set(names) <= set(ROLES)
    return dict(zip(names, inputs))


def _attributes(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}  # strings stay bytes


@pytest.mark.parametrize("name", sorted(EXPECTED_CASES))
def test_onnx_node_case(name):
    model, data_sets = onnx_node_case_data(NODE_CASES[name])
    attributes = _attributes(_plain_node(name))
    assert data_sets
    for inputs, (want_y, want_state) in data_sets:
        y, state = nx.causal_conv_with_state(**_named_inputs(model, inputs), **attributes)
        assert y.dtype == want_y.dtype and y.shape == want_y.shape
        assert state.dtype == want_state.dtype and state.shape == want_state.shape
        np.testing.assert_array_equal(state, want_state)  # copied samples: exact
        if y.dtype == np.float16:  # one float16 rounding apart (the reference's order of sums differs)
            np.testing.assert_allclose(y.astype(np.float32), want_y.astype(np.float32), rtol=2e-3, atol=2e-3)
        else:
            np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)


def test_node_cases_reach_every_form():
    """Between them the cases pass each optional input, each activation and float16."""
    nodes = [_plain_node(n) for n in EXPECTED_CASES]
    assert {len(n.input) for n in nodes} >= {2, 3, 4} and any(n.input[2] == "" for n in nodes if len(n.input) == 4)
    assert {_attributes(n).get("activation", b"none") for n in nodes} == {b"none", b"silu", b"swish"}


# ---- random nodes against the reference evaluator and ONNX Runtime -----------------------------

def _model(operands, activation):
    names = [r if operands.get(r) is not None else "" for r in ROLES]
    while not names[-1]:
        names.pop()
    attributes = {} if activation is None else {"activation": activation}
    node = helper.make_node("CausalConvWithState", names, ["output", "present_state"], **attributes)
    t = helper.np_dtype_to_tensor_dtype(operands["input"].dtype)
    infos = [helper.make_tensor_value_info(n, t, operands[n].shape) for n in names if n]
    outs = [helper.make_tensor_value_info(n, t, None) for n in ("output", "present_state")]
    model = helper.make_model(helper.make_graph([node], "one", infos, outs),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 11
    return model, {n: operands[n] for n in names if n}


def random_node(seed, dtype):
    """One node's operands and activation: k 1..6, L 1..9 (some shorter than k - 1), optional
    bias and past state, each activation (or the attribute left out)."""
    rng = np.random.default_rng(seed)
    n, c, k, length = int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 7)), int(rng.integers(1, 10))
    operands = dict(input=rng.standard_normal((n, c, length)), weight=rng.standard_normal((c, 1, k)),
                    bias=rng.standard_normal(c) if rng.random() < 0.5 else None,
                    past_state=rng.standard_normal((n, c, k - 1)) if rng.random() < 0.5 else None)
    operands = {key: None if v is None else (2 * v).astype(dtype) for key, v in operands.items()}
    return operands, [None, "none", "silu", "swish"][seed % 4]


def _call(operands, activation):
    return nx.causal_conv_with_state(**operands, **({} if activation is None else {"activation": activation}))


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max(initial=0) / max(np.abs(want).max(initial=0), 1e-30))


TOLERANCE = {np.float32: 1e-6, np.float16: 2e-3}  # of the largest |output|
SEEDS = range(24)
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])


@DTYPES
@pytest.mark.parametrize("seed", SEEDS)
def test_against_reference_evaluator(seed, dtype):
    operands, activation = random_node(seed, dtype)
    model, feeds = _model(operands, activation)
    want_y, want_state = ReferenceEvaluator(model).run(None, feeds)
    y, state = _call(operands, activation)
    assert y.dtype == state.dtype == want_y.dtype == dtype
    assert y.shape == want_y.shape and state.shape == want_state.shape
    np.testing.assert_array_equal(state, want_state)
    assert relative_error(y, want_y) <= TOLERANCE[dtype]


def test_random_nodes_cover_the_forms():
    """The random nodes reach k = 1, L < k - 1, bias, past state and every activation."""
    nodes = [random_node(s, np.float32) for s in SEEDS]
    assert any(o["weight"].shape[2] == 1 for o, _ in nodes)
    assert any(o["input"].shape[2] < o["weight"].shape[2] - 1 for o, _ in nodes)
    assert any(o["bias"] is not None for o, _ in nodes) and any(o["bias"] is None for o, _ in nodes)
    assert any(o["past_state"] is not None for o, _ in nodes) and any(o["past_state"] is None for o, _ in nodes)
    assert {a for _, a in nodes} == {None, "none", "silu", "swish"}


def _ort_session(model):
    ort = require("onnxruntime", "ONNX Runtime's CausalConvWithState")
    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # an ONNX Runtime without opset 27's operator: its own words
        pytest.skip(f"ONNX Runtime {ort.__version__} cannot load a CausalConvWithState (opset {OPSET}) "
                    f"model: {str(error)[:200]}")


@DTYPES
@pytest.mark.parametrize("seed", SEEDS)
def test_against_onnx_runtime(seed, dtype):
    operands, activation = random_node(seed, dtype)
    model, feeds = _model(operands, activation)
    want_y, want_state = _ort_session(model).run(None, feeds)
    y, state = _call(operands, activation)
    assert y.dtype == want_y.dtype == dtype and y.shape == want_y.shape
    np.testing.assert_array_equal(state, want_state)
    assert relative_error(y, want_y) <= TOLERANCE[dtype]


# ---- the state, chunk by chunk ------------------------------------------------------------------

def _chunks(rng, length):
    cuts = np.sort(rng.integers(0, length + 1, 4))
    return np.split(np.arange(length), cuts)  # some empty


@pytest.mark.parametrize("seed", range(6))
def test_chunks_carry_the_state(seed):
    """Feeding present_state back as past_state: the chunks' outputs are one call's on the whole
    sequence, and the last state is that call's (empty chunks included)."""
    rng = np.random.default_rng(seed)
    c, k = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    x, w, b = rng.standard_normal((2, c, 17)), rng.standard_normal((c, 1, k)), rng.standard_normal(c)
    state0 = rng.standard_normal((2, c, k - 1))
    whole_y, whole_state = nx.causal_conv_with_state(x, w, b, state0, activation="silu")
    state, outputs = state0, []
    for idx in _chunks(rng, 17):
        y, state = nx.causal_conv_with_state(x[:, :, idx], w, b, state, activation="silu")
        outputs.append(y)
    np.testing.assert_allclose(np.concatenate(outputs, axis=2), whole_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(state, whole_state)


def test_against_a_loop():
    """An independent loop over taps: zeros before the first sample; SiLU; float64 kept."""
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 3, 5)), rng.standard_normal((3, 1, 4)), rng.standard_normal(3)
    padded = np.concatenate([np.zeros((2, 3, 3)), x], axis=2)
    want = b[:, None] + sum(w[None, :, 0, i, None] * padded[:, :, i:i + 5] for i in range(4))
    y, state = nx.causal_conv_with_state(x, w, b, activation=b"swish")
    np.testing.assert_allclose(y, want / (1 + np.exp(-want)), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(state, x[:, :, 2:])
    assert y.dtype == np.float64


def test_empty_chunk_and_extreme_values():
    """L = 0 gives an empty output and the past state back; SiLU of huge values neither warns
    nor overflows (-inf -> -0, +inf -> inf, a huge value is itself)."""
    state = np.arange(6.).reshape(1, 2, 3)
    y, present = nx.causal_conv_with_state(np.zeros((1, 2, 0)), np.ones((2, 1, 4)), past_state=state)
    assert y.shape == (1, 2, 0) and present is not state
    np.testing.assert_array_equal(present, state)
    x = np.array([[[1e30, -1e30, 0.0, 3e4]]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, _ = nx.causal_conv_with_state(x, np.full((1, 1, 1), 1e10, np.float32), activation="silu")
    assert np.isinf(y[0, 0, 0]) and y[0, 0, 1] == 0 and y[0, 0, 2] == 0 and y[0, 0, 3] == np.float32(3e14)


def test_streaming_conv_serves_the_operator():
    """npconv.stream.StreamingConv over nn.Conv1d(C, C, k, groups=C) with initial_state=past_state
    gives the operator's output, chunk by chunk, and the operator's present_state is the last
    k - 1 samples of the stream's state."""
    stream = pytest.importorskip("npconv.stream", reason="npconv.stream (issue 18) not there yet")
    rng = np.random.default_rng(3)
    c, k = 4, 4
    conv = nn.Conv1d(c, c, k, groups=c)
    w, b = np.asarray(conv.weight), np.asarray(conv.bias)
    assert w.shape == (c, 1, k) and w.dtype == np.float32
    past = rng.standard_normal((2, c, k - 1)).astype(np.float32)
    streaming = stream.StreamingConv(conv, initial_state=past)
    state = past
    for length in (5, 1, 0, 2, 7):
        x = rng.standard_normal((2, c, length)).astype(np.float32)
        y, state = nx.causal_conv_with_state(x, w, b, state)
        np.testing.assert_allclose(streaming.step(x), y, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(streaming.state[:, :, -(k - 1):], state)


# ---- refusals -----------------------------------------------------------------------------------

X, W = np.zeros((2, 3, 5)), np.zeros((3, 1, 4))


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((np.zeros((3, 5)), W), {}, ValueError, r"input must be rank 3 \(batch_size, channels, length\)"),
    ((X, np.zeros((3, 4))), {}, ValueError, r"weight must be \(channels, 1, k\)"),
    ((X, np.zeros((3, 2, 4))), {}, ValueError, r"weight must be \(channels, 1, k\).*\[3, 2, 4\]"),
    ((X, np.zeros((3, 1, 0))), {}, ValueError, r"k >= 1"),
    ((X, np.zeros((4, 1, 4))), {}, ValueError, r"weight.shape\[0\] must be the input's channels.*has 3 channels"),
    ((X, W, np.zeros(4)), {}, ValueError, r"bias must be \(channels,\) = \(3,\), got bias of shape \[4\]"),
    ((X, W, None, np.zeros((2, 3, 4))), {}, ValueError,
     r"past_state must be \(batch_size, channels, k - 1\) = \[2, 3, 3\].*\[2, 3, 4\]"),
    ((X, W, None, np.zeros((1, 3, 3))), {}, ValueError, r"past_state must be .* got past_state of shape \[1, 3, 3\]"),
    ((X, W), {"activation": "relu"}, ValueError, r"unsupported activation 'relu'.*'none', 'silu', 'swish'"),
    ((X, W), {"activation": 1}, TypeError, r"activation must be a string"),
    ((X, W.astype(np.float32)), {}, TypeError, r"share one type T.*float64 and weight float32"),
    ((X.astype(np.float16), W.astype(np.float16), None, np.zeros((2, 3, 3), np.float32)), {}, TypeError,
     r"share one type T.*past_state float32"),
    ((X + 0j, W), {}, TypeError, r"input"),
])
def test_refusals(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        nx.causal_conv_with_state(*args, **kwargs)
