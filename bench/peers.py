"""ONNX Runtime as a benchmark peer: one Conv (or ConvTranspose) node per layer row.

The model is what an exporter would write for the layer: the input as the graph's only input,
weights and bias as initializers, a Pad(reflect) node in front of the Conv for reflect-padded
rows (torch.onnx exports ``padding_mode='reflect'`` the same way).  The session is ONNX
Runtime's CPU provider with its default graph optimisations (which rewrite the Conv into MLAS's
blocked NCHWc layout, weights pre-packed once at session creation, so not in the timed calls),
``intra_op_num_threads`` = the threads the other libraries get, ``inter_op_num_threads`` = 1.
ONNX Runtime has no float64 Conv on CPU: :func:`onnx_runtime_conv` returns None for it.
:func:`onnx_runtime_deform_conv` is the same for one DeformConv node (opset 19; offset and mask
as graph inputs beside x, as a detection model feeds them from its offset branch).

    call = onnx_runtime_conv(x, w, b, stride=1, padding=1, dilation=1, groups=1, transposed=False,
                             padding_mode="zeros", threads=2)
    y = call()                         # (N, C_out, *out) float32, the same as torch's
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17        # Pad takes its pads as an input (opset >= 11); ConvTranspose as in opset 11
IR_VERSION = 8    # the IR version of opset 17, readable by every onnxruntime >= 1.13


def onnx_runtime_conv(x, w, b, *, stride, padding, dilation, groups, transposed, padding_mode, threads):
    """A callable running the layer in ONNX Runtime on ``x`` (float32 only, else None)."""
    if x.dtype != np.float32:
        return None
    model = conv_model(x.shape, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                       transposed=transposed, padding_mode=padding_mode)
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    feed = {"x": x}
    return lambda: session.run(None, feed)[0]


def session_options(threads: int) -> ort.SessionOptions:
    """Default graph optimisation level (ORT_ENABLE_ALL); ``threads`` workers for one op."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def conv_model(x_shape, w, b, *, stride, padding, dilation, groups, transposed, padding_mode) -> onnx.ModelProto:
    """One-node graph x -> [Pad(mode) ->] Conv/ConvTranspose(W, B) -> y."""
    n = len(x_shape) - 2
    pads = _per_axis(padding, n)
    initializers = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    nodes, conv_input = [], "x"
    if padding_mode != "zeros":  # explicit Pad node, then a Conv with no padding of its own
        # ONNX pads: [begin of every axis..., end of every axis...], N and C included
        explicit = np.array([0, 0, *pads, 0, 0, *pads], np.int64)
        initializers.append(numpy_helper.from_array(explicit, "pads"))
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["x_padded"], mode=padding_mode))
        conv_input, pads = "x_padded", (0,) * n
    attributes = dict(kernel_shape=list(w.shape[2:]), strides=_per_axis(stride, n), pads=list(pads) * 2,
                      dilations=_per_axis(dilation, n), group=groups)
    op = "ConvTranspose" if transposed else "Conv"
    nodes.append(helper.make_node(op, [conv_input, "w", "b"], ["y"], **attributes))
    graph = helper.make_graph(nodes, f"npconv_bench_{op.lower()}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"y{i}" for i in range(n + 2)])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def onnx_runtime_deform_conv(x, w, b, offset, mask, *, padding, threads):
    """A callable running one DeformConv node (offset groups read from ``offset``) in ONNX Runtime."""
    k = list(w.shape[2:])
    node = helper.make_node("DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], kernel_shape=k,
                            pads=[padding] * 4, offset_group=offset.shape[1] // (2 * k[0] * k[1]))
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape))
              for name, a in (("x", x), ("offset", offset), ("mask", mask))]
    graph = helper.make_graph([node], "npconv_bench_deform_conv", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
                              initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    feed = {"x": x, "offset": offset, "mask": mask}
    return lambda: session.run(None, feed)[0]


def _per_axis(value, n: int) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value] * n
