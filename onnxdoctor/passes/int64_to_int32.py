"""int64-to-int32 (OD402): store INT64 data-path initializers as INT32 where that changes nothing.

An initializer is cast only when it is data (OD402), not a shape, axis or index value (OD401:
TensorRT takes those as INT64 shape tensors, and TensorRT-RTX 1.7 was seen here to reject a
Slice whose starts/ends/axes were cast to INT32: "Slice steps length 3 does not equal starts
length 1"); when every value fits INT32 (OD403 values never change); and when every node
reading it accepts INT32 there by its ONNX schema, together with every other input bound to
the same type variable. Inputs bound to a type that also types an output are left alone:
casting them would change the type of data downstream.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from onnxdoctor.graph import build_views
from onnxdoctor.ops.roles import accepts_int32
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models

_INT32 = np.iinfo(np.int32)


class Int64ToInt32(Pass):
    name = "int64-to-int32"
    resolves = ("OD402",)
    description = "cast INT64 initializers to INT32 where values fit and consumers accept INT32"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        graph = model.graph
        opsets = {opset.domain or "": opset.version for opset in model.opset_import}
        declared = {value.name for value in (*graph.input, *graph.output)}
        view = build_views(model, {})
        shape_valued = view.shape_valued_tensors
        # Read inside an If/Loop body: the body's types would have to change too; leave those.
        read_in_bodies = {name for name, uses in view.consumers.items() if any(use.slot < 0 for use in uses)}
        candidates = {
            tensor.name
            for tensor in graph.initializer
            if tensor.data_type == onnx.TensorProto.INT64
            and tensor.name not in declared
            and tensor.name not in shape_valued
            and tensor.name not in read_in_bodies
            and _fits_int32(tensor)
        }
        readers = {}
        for node in graph.node:
            for slot, name in enumerate(node.input):
                if name in candidates:
                    readers.setdefault(name, []).append((node, slot))
        # Drop candidates until every reader accepts the whole set it shares a type variable with.
        changed = True
        while changed:
            changed = False
            for name in sorted(candidates):
                if not all(accepts_int32(node, slot, candidates, opsets) for node, slot in readers.get(name, [])):
                    candidates.discard(name)
                    changed = True
        if not any(readers.get(name) for name in candidates):
            return PassResult(model, False, "no INT64 initializer can be cast safely")
        cast = onnx.ModelProto()
        cast.CopyFrom(model)
        for tensor in cast.graph.initializer:
            if tensor.name in candidates and readers.get(tensor.name):
                tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.int32), tensor.name))
        result = compare_models(model, cast, "")
        result.summary = f"cast {len(result.tensors_changed)} INT64 initializers to INT32"
        return result


def _fits_int32(tensor: onnx.TensorProto) -> bool:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    values = numpy_helper.to_array(tensor)
    return values.size == 0 or bool((values >= _INT32.min).all() and (values <= _INT32.max).all())
