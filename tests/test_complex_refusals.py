"""The faces whose peers have no complex convolution refuse complex operands with a TypeError that
says why (issue 19): Keras, ONNX, torchvision's deformable conv, and the companion layers torch
itself refuses complex in (ReLU, pooling); npconv's Linear is real-only."""

import re

import numpy as np
import pytest
import torch

import npconv
import npconv.keras as K
import npconv.nn as nn
import npconv.ops as ops
from npconv import onnx, onnx_stream
from npconv.convert.onnx import onnx_node_to_call
from npconv.stream import StreamingConv

Z = np.ones((1, 2, 5, 5), np.complex64)
R = np.ones((1, 2, 5, 5), np.float32)
W = np.ones((3, 2, 3, 3), np.float32)
OFFSET = np.zeros((1, 18, 3, 3), np.float32)
TAKES = r"\(npconv\.conv, npconv\.functional, npconv\.grad and npconv\.nn's conv modules take complex\)"


def _keras_layer():
    layer = K.Conv2D(3, 3)
    layer(np.zeros((1, 5, 5, 2), np.float32))
    return layer


def _keras_backward():
    layer = _keras_layer()
    y = layer(np.zeros((1, 5, 5, 2), np.float32))
    layer.backward(np.ones(y.shape, np.complex64))


def _deform_backward():
    layer = nn.DeformConv2d(2, 3, 3)
    y = layer(R, OFFSET)
    layer.backward(np.ones(y.shape, np.complex64))


def _keras_stream():
    layer = K.Conv1D(2, 3, padding="causal")
    layer(np.zeros((1, 5, 2), np.float32))
    StreamingConv(layer).step(np.ones((1, 4, 2), np.complex128))


REFUSALS = {
    "keras-call": (lambda: _keras_layer()(np.ones((1, 5, 5, 2), np.complex64)),
                   r"Conv2D: inputs is complex \(complex64\): Keras has no complex convolution"),
    "keras-backward": (_keras_backward, r"grad_output is complex \(complex64\): Keras has no complex convolution"),
    "keras-stream": (_keras_stream, r"chunk is complex \(complex128\): Keras has no complex convolution"),
    "onnx-conv-X": (lambda: onnx.conv(Z, W), r"Conv: X is complex \(complex64\): ONNX's Conv takes float tensors "
                                             r"only \(its type T has no complex\)"),
    "onnx-conv-W": (lambda: onnx.conv(R, W.astype(np.complex128)), r"Conv: W is complex \(complex128\): ONNX's Conv"),
    "onnx-conv-transpose": (lambda: onnx.conv_transpose(Z, np.ones((2, 3, 3, 3))),
                            r"ConvTranspose: X is complex \(complex64\): ONNX's ConvTranspose takes float tensors"),
    "onnx-col2im": (lambda: onnx.col2im(np.ones((1, 4, 4), complex), [3, 3], [2, 2]),
                    r"Col2Im: input is complex \(complex128\): ONNX's Col2Im takes float tensors only"),
    "onnx-deform": (lambda: onnx.deform_conv(Z, W, OFFSET), r"DeformConv: X is complex \(complex64\): ONNX's "
                                                            r"DeformConv takes float tensors only"),
    "onnx-causal-conv": (lambda: onnx_stream.causal_conv_with_state(np.ones((1, 2, 4), complex), np.ones((2, 1, 3))),
                         r"CausalConvWithState: input is complex \(complex128\): ONNX Runtime's CausalConvWithState"),
    "onnx-call-W": (lambda: onnx_node_to_call({"kernel_shape": [3, 3]}, "Conv")(R, W.astype(np.complex64)),
                    r"W is complex \(complex64\): ONNX's Conv and ConvTranspose take float tensors only"),
    "onnx-call-X": (lambda: onnx_node_to_call({"kernel_shape": [3, 3]}, "Conv")(Z, W),
                    r"X is complex \(complex64\): ONNX's Conv and ConvTranspose take float tensors only"),
    "deform-op": (lambda: ops.deform_conv2d(Z, OFFSET, W), r"deform_conv2d: input is complex \(complex64\): "
                                                           r"torchvision's deform_conv2d has no complex kernel"),
    "deform-op-backward": (lambda: ops.deform_conv2d_backward(np.ones((1, 3, 3, 3), complex), R, OFFSET, W),
                           r"grad_output is complex \(complex128\): torchvision's deform_conv2d has no complex"),
    "deform-module": (lambda: nn.DeformConv2d(2, 3, 3)(Z, OFFSET), r"input is complex \(complex64\): torchvision's "
                                                                    r"deform_conv2d has no complex kernel"),
    "deform-module-backward": (_deform_backward, r"grad_output is complex \(complex64\): torchvision's deform_conv2d"),
    "linear-input": (lambda: nn.Linear(5, 2)(Z), r"Linear: input is complex \(complex64\): npconv's Linear takes "
                                                  r"real numbers only"),
    "relu": (lambda: nn.ReLU()(Z), r"ReLU: input is complex \(complex64\): complex numbers have no order"),
    "max-pool": (lambda: nn.MaxPool2d(2)(Z), r"MaxPool2d: input is complex \(complex64\): PyTorch's MaxPool2d has "
                                             r"no complex kernel"),
    "avg-pool": (lambda: nn.AvgPool1d(2)(Z[0]), r"AvgPool1d: input is complex \(complex64\): PyTorch's AvgPool1d has "
                                                r"no complex kernel"),
    "cross-entropy": (lambda: nn.CrossEntropyLoss()(np.ones((2, 3), complex), np.array([0, 1])),
                      r"CrossEntropyLoss: input is complex \(complex128\): PyTorch's log_softmax has no complex"),
    "keras-set-weights": (lambda: _keras_layer().set_weights([np.ones((3, 3, 2, 3), complex), np.zeros(3)]),
                          r"Conv2D.set_weights: weight 'kernel' is complex \(complex128\): Keras has no complex"),
}


@pytest.mark.parametrize("call, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_complex_is_refused_with_the_reason(call, message):
    with pytest.raises(TypeError, match=message) as caught:
        call()
    assert re.search(TAKES, str(caught.value)), str(caught.value)


@pytest.mark.parametrize("make", [lambda d: nn.Linear(3, 2, dtype=d), lambda d: nn.DeformConv2d(2, 3, 3, dtype=d)],
                         ids=["Linear", "DeformConv2d"])
def test_real_only_modules_refuse_a_complex_dtype(make):
    with pytest.raises(TypeError, match=r"dtype must be float32 or float64, got complex64"):
        make(np.complex64)


def test_keras_refuses_a_complex_layer_dtype():
    with pytest.raises(ValueError, match=r"float32 and float64 layers; Keras has no complex convolution\), "
                                         r"got dtype='complex64'"):
        K.Conv2D(3, 3, dtype="complex64")


@pytest.mark.parametrize("layer, torch_layer", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)), (nn.AvgPool2d(2), torch.nn.AvgPool2d(2))],
    ids=["ReLU", "MaxPool2d", "AvgPool2d"])
def test_the_refused_layers_are_refused_by_torch_too(layer, torch_layer):
    with pytest.raises(NotImplementedError):
        torch_layer(torch.ones(1, 2, 4, 4, dtype=torch.complex64))
    with pytest.raises(TypeError):
        layer(np.ones((1, 2, 4, 4), np.complex64))


def test_relu_refuses_a_complex_dask_array():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="ReLU: input is complex"):
        nn.ReLU()(da.from_array(Z, chunks=2))


def test_complex256_is_refused_by_the_conv_modules():
    with pytest.raises(TypeError, match="must hold complex64 or complex128"):
        nn.Conv2d(2, 3, 3)(Z.astype(np.clongdouble))
    assert npconv.conv(Z, W).dtype == np.complex64  # complex64 itself is taken
