"""Small real models for the graph/ tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor.graph import GraphView, TensorType, build_views


def model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    """A model of `nodes`; inputs and outputs as (name, elem_type, shape) triples."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(*value) for value in inputs],
        [helper.make_tensor_value_info(*value) for value in outputs],
        initializer=[numpy_helper.from_array(np.asarray(value), name) for name, value in initializers],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def view_of(proto: onnx.ModelProto, probed_dims: dict | None = None) -> GraphView:
    """The main graph's view, with the types shape inference gives."""
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    types = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        found = TensorType.from_type_proto(value.type)
        if found is not None:
            types[value.name] = found
    return build_views(proto, types, probed_dims)


FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
