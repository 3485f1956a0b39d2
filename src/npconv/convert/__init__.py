"""Translation between the faces of the engine: ONNX nodes and Keras layers to npconv calls
and PyTorch-style modules, and back.  Round trips give identical outputs."""

from .keras import keras_to_torch, torch_to_keras
from .onnx import DeformConvCall, NpconvCall, module_to_onnx_attributes, node_attributes, onnx_node_to_call

__all__ = ["keras_to_torch", "torch_to_keras", "NpconvCall", "DeformConvCall", "module_to_onnx_attributes",
           "node_attributes", "onnx_node_to_call"]
