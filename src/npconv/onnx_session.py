"""Run a whole ONNX model on npconv: :class:`InferenceSession`, onnxruntime's interface.

The model is read once with the ``onnx`` package (an optional dependency, imported by the
constructor): every node's operator is checked against :data:`SUPPORTED_OPS` before anything
runs, initializers become NumPy arrays, nodes whose inputs are all known (Constant, shape
arithmetic on weights) are computed once, and every other node gets its kernel
(:mod:`npconv.onnx_ops`, :mod:`npconv.onnx_ops_nn`); :meth:`InferenceSession.run` only calls
them in topological order, dropping each value after its last use.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

from .onnx_ops import BUILDERS as _PLAIN, Kernel, Node, ONNX_DTYPES
from .onnx_ops_nn import BUILDERS as _NETWORK

__all__ = ["InferenceSession", "NodeArg", "SUPPORTED_OPS"]

_BUILDERS = {**_PLAIN, **_NETWORK}
#: The operators (default ONNX domain) a session runs.
SUPPORTED_OPS = frozenset(_BUILDERS)
_TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 16: "bfloat16"}
Dim = Union[int, str, None]


@dataclass(frozen=True)
class NodeArg:
    """A graph input or output as onnxruntime describes it.

    Parameters
    ----------
    name : str
    type : str
        e.g. ``'tensor(float)'``.
    shape : list of (int, str or None)
        Fixed sizes as ints, symbolic ones by name, unknown ones as None.

    Examples
    --------
    >>> NodeArg("input.1", "tensor(float)", ["batch", 3, 64, 64]).shape
    ['batch', 3, 64, 64]
    """

    name: str
    type: str
    shape: list[Dim]


@dataclass(frozen=True)
class _Step:
    kernel: Kernel
    node: Node
    release: tuple[str, ...]  # values no later step (nor the result) reads


class InferenceSession:
    """An ONNX model run by npconv, with onnxruntime's ``InferenceSession`` interface.

    Parameters
    ----------
    path_or_bytes : str, os.PathLike or bytes
        A ``.onnx`` file or the serialised model.
    sess_options, providers : optional
        Accepted for onnxruntime compatibility and ignored (npconv runs on the CPU).
    **kwargs
        Ignored likewise (e.g. ``provider_options``).

    Raises
    ------
    ImportError
        The ``onnx`` package is not installed.
    ValueError
        An operator outside :data:`SUPPORTED_OPS` (all of them named, with their nodes), an
        unsupported attribute value, or a node input nothing produces.

    Examples
    --------
    >>> from onnx import helper, TensorProto
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    >>> node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    >>> model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    >>> session = InferenceSession(model.SerializeToString())
    >>> session.get_inputs()[0]
    NodeArg(name='x', type='tensor(float)', shape=[1, 1, 4, 4])
    >>> session.run(None, {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)})[0][0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    def __init__(self, path_or_bytes: str | bytes | os.PathLike[str], sess_options: Any = None,
                 providers: Sequence[Any] | None = None, **kwargs: Any) -> None:
        onnx = _import_onnx()
        if isinstance(path_or_bytes, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(path_or_bytes))
        else:
            model = onnx.load(os.fspath(path_or_bytes))
        graph = model.graph
        _refuse_unsupported(graph.node)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        from onnx import numpy_helper

        initial = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self._inputs = [_node_arg(v) for v in graph.input if v.name not in initial]
        self._outputs = [_node_arg(v) for v in graph.output]
        self._dtypes = {v.name: v.type.tensor_type.elem_type for v in graph.input}
        overridable = {v.name for v in graph.input} & set(initial)
        self._constants = {k: v for k, v in initial.items()}
        known = {k: v for k, v in initial.items() if k not in overridable}
        nodes = [_read_node(n, opset, known) for n in _topological(graph, set(initial) | set(self._dtypes))]
        self._steps = self._fold(nodes, known)

    # ---- construction ----------------------------------------------------------------------

    def _fold(self, nodes: list[Node], known: dict[str, np.ndarray]) -> list[_Step]:
        """Run the nodes whose inputs are all known now; make the kernels of the others."""
        kept: list[tuple[Kernel, Node]] = []
        for node in nodes:
            kernel = _BUILDERS[node.op_type](node)
            if all(not name or name in known for name in node.inputs):
                outputs = _call(kernel, node, [known[n] if n else None for n in node.inputs])
                for name, value in zip(node.outputs, outputs):
                    if name:
                        known[name] = self._constants[name] = value
            else:
                kept.append((kernel, node))
        wanted = {o.name for o in self._outputs}
        steps, later = [], set(wanted)
        for kernel, node in reversed(kept):
            reads = {n for n in node.inputs if n and n not in self._constants}
            steps.append(_Step(kernel, node, tuple(sorted(reads - later))))
            later |= reads
        return steps[::-1]

    # ---- onnxruntime's interface -----------------------------------------------------------

    def get_inputs(self) -> list[NodeArg]:
        """The graph inputs a run needs (initializers excluded).

        Returns
        -------
        list of NodeArg
        """
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        """The graph outputs.

        Returns
        -------
        list of NodeArg
        """
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """onnxruntime's provider list, for code that asks.

        Returns
        -------
        list of str
            ``['CPUExecutionProvider']``.
        """
        return ["CPUExecutionProvider"]

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: Any = None) -> list[np.ndarray]:
        """Run the graph.

        Parameters
        ----------
        output_names : sequence of str or None
            The outputs wanted, in this order; None: all, in the graph's order.
        input_feed : mapping of str to array_like
            A value for every input of :meth:`get_inputs` (an initializer listed among the
            graph inputs may be fed too, replacing it).
        run_options : optional
            Ignored (onnxruntime compatibility).

        Returns
        -------
        list of numpy.ndarray

        Raises
        ------
        ValueError
            Unknown output names, missing or unknown inputs (named), an input of the wrong
            rank or fixed size.
        TypeError
            An input of another element type than the graph declares.
        """
        names = self._output_names(output_names)
        values = dict(self._constants)
        values.update(self._feed(input_feed))
        for step in self._steps:
            outputs = _call(step.kernel, step.node, [values[n] if n else None for n in step.node.inputs])
            for name, value in zip(step.node.outputs, outputs):
                if name:
                    values[name] = value
            for name in step.release:
                values.pop(name, None)
        return [self._owned(values[name], input_feed) for name in names]

    def _owned(self, value: Any, input_feed: Mapping[str, Any]) -> Any:
        """``value``, or a copy where it is the session's constant or the caller's input (an
        Identity output, a folded constant): the caller may change what run returns."""
        held = [*self._constants.values(), *input_feed.values()]
        if isinstance(value, np.ndarray) and any(isinstance(h, np.ndarray) and np.shares_memory(value, h)
                                                 for h in held):
            return value.copy()
        return value

    def _output_names(self, output_names: Sequence[str] | None) -> list[str]:
        every = [o.name for o in self._outputs]
        if output_names is None:
            return every
        unknown = [n for n in output_names if n not in every]
        if unknown:
            raise ValueError(f"run: unknown output names {unknown}; the graph's outputs are {every}")
        return list(output_names)

    def _feed(self, input_feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        required = [i.name for i in self._inputs]
        missing = [n for n in required if n not in input_feed]
        unknown = [n for n in input_feed if n not in self._dtypes]
        if missing or unknown:
            raise ValueError(f"run: input_feed must give every graph input {required}; "
                             + (f"missing {missing}" if missing else "") + ("; " if missing and unknown else "")
                             + (f"unknown names {unknown}" if unknown else ""))
        feed = {}
        for name, value in input_feed.items():
            array = np.asarray(value)
            _check_input(name, array, self._dtypes[name], next((i for i in self._inputs if i.name == name), None))
            feed[name] = array
        return feed


# ---- reading the model -------------------------------------------------------------------

def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("npconv.onnx.InferenceSession reads models with the onnx package: "
                          "pip install onnx (or pip install 'npconv[onnx]')") from error
    return onnx


def _refuse_unsupported(nodes: Sequence[Any]) -> None:
    """One ValueError naming every unsupported operator and the nodes that use it."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if op not in SUPPORTED_OPS:
            found.setdefault(op, []).append(node.name or f"<unnamed {node.op_type}>")
    if found:
        listed = "; ".join(f"{op} (nodes {names})" for op, names in sorted(found.items()))
        raise ValueError(f"InferenceSession: unsupported ONNX operators: {listed}. npconv runs "
                         f"{sorted(SUPPORTED_OPS)}")


def _node_arg(value_info: Any) -> NodeArg:
    tensor = value_info.type.tensor_type
    shape: list[Dim] = []
    for dim in tensor.shape.dim:
        shape.append(dim.dim_value if dim.HasField("dim_value") else dim.dim_param or None)
    return NodeArg(value_info.name, f"tensor({_TYPE_NAMES.get(tensor.elem_type, tensor.elem_type)})", shape)


def _read_node(proto: Any, opset: int, known: dict[str, np.ndarray]) -> Node:
    from onnx import helper, numpy_helper

    attributes = {}
    for attribute in proto.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif attribute.type == attribute.TENSOR:
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        attributes[attribute.name] = value
    return Node(proto.name, proto.op_type, attributes, opset, tuple(proto.input), tuple(proto.output), known)


def _topological(graph: Any, available: set[str]) -> list[Any]:
    """The nodes in an order where every input is made before it is read."""
    made = set(available) | {""}
    nodes = list(graph.node)
    waiting = [len({i for i in node.input if i not in made}) for node in nodes]  # unmet inputs per node
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in {i for i in node.input if i not in made}:
            readers.setdefault(name, []).append(index)
    queue = collections.deque(index for index, count in enumerate(waiting) if count == 0)
    ordered = []
    while queue:  # Kahn's algorithm: linear in the graph's size
        node = nodes[queue.popleft()]
        ordered.append(node)
        for name in node.output:
            if name in made:
                continue
            made.add(name)
            for reader in readers.get(name, ()):
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    queue.append(reader)
    if len(ordered) < len(nodes):
        pending = [node for node, count in zip(nodes, waiting) if count]
        produced = {o for node in pending for o in node.output}
        missing = sorted({i for node in pending for i in node.input if i not in made and i not in produced})
        stuck = [node.name or node.op_type for node in pending]
        raise ValueError(f"InferenceSession: node inputs {missing} are neither graph inputs, initializers "
                         f"nor any node's outputs (nodes {stuck} cannot run)")
    return ordered


def _check_input(name: str, array: np.ndarray, elem_type: int, info: NodeArg | None) -> None:
    want = ONNX_DTYPES.get(elem_type)
    if want is not None and array.dtype != want:
        raise TypeError(f"run: input {name!r} must be tensor({_TYPE_NAMES[elem_type]}) ({want}), got {array.dtype}")
    if info is None or not info.shape:
        return
    if array.ndim != len(info.shape) or any(isinstance(d, int) and d != s for d, s in zip(info.shape, array.shape)):
        raise ValueError(f"run: input {name!r} must have shape {info.shape} (strings and None: any size), "
                         f"got {list(array.shape)}")


def _call(kernel: Kernel, node: Node, args: list[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """The kernel's outputs as arrays; an error says which node raised it."""
    while args and args[-1] is None:  # omitted trailing optional inputs: the kernel's defaults
        args.pop()
    try:
        result = kernel(*args)
    except (ValueError, TypeError) as error:
        if hasattr(error, "add_note"):  # Python >= 3.11: the node goes into the traceback
            error.add_note(f"(in {node.op_type} node {node.name!r})")
        raise
    return tuple(np.asarray(r) for r in (result if isinstance(result, tuple) else (result,)))
