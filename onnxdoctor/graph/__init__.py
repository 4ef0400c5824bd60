"""The shared view of a graph that analyzers and passes read, in parts: topology, constness,
shapes and dynamic dims, tensor roles; GraphView puts them together per graph."""

from onnxdoctor.graph.constness import Constness, constant_node_tensor, constant_node_type, constant_node_value
from onnxdoctor.graph.shapes import shape_slice
from onnxdoctor.graph.topology import outer_scope_names
from onnxdoctor.graph.types import DynamicDim, TensorType, Use, reshape_keeps_shape
from onnxdoctor.graph.view import GraphView, build_views
from onnxdoctor.model import attribute_subgraphs

__all__ = [
    "Constness", "DynamicDim", "GraphView", "TensorType", "Use", "attribute_subgraphs", "build_views",
    "constant_node_tensor", "constant_node_type", "constant_node_value", "outer_scope_names", "reshape_keeps_shape",
    "shape_slice",
]
