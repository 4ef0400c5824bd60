"""static-shapes (OD303): fix input shapes given with --static-shape, then fold the shape
subgraphs away. Without --static-shape it does nothing, and dynamic axes stay exactly as they are."""

from __future__ import annotations

import onnx

from onnxdoctor.model import OnnxDoctorError
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, infer_shapes
from onnxdoctor.passes.fold_constants import describe_folding, fold


class StaticShapes(Pass):
    name = "static-shapes"
    resolves = ("OD303",)
    description = "fix input shapes given with --static-shape, then fold what they make constant"

    def applies(self, options: PassOptions) -> bool:
        return bool(options.static_shapes)

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        inputs = {value.name: value for value in fixed.graph.input}
        for name, shape in options.static_shapes.items():
            set_static_shape(inputs, name, shape)
        # Dynamic dims inferred before are stale now; let inference recompute them.
        del fixed.graph.value_info[:]
        folded = fold(fixed, options)
        _set_inferred_output_shapes(folded)
        result = compare_models(model, folded, "")
        shapes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in options.static_shapes.items())
        remaining = sum(1 for node in folded.graph.node if node.op_type == "Shape")
        result.summary = f"fixed {shapes}; {describe_folding(model, result)}; {remaining} Shape nodes left"
        return result


def set_static_shape(inputs: dict, name: str, shape: tuple[int, ...]) -> None:
    if name not in inputs:
        raise OnnxDoctorError(f"--static-shape: the model has no input {name!r} (inputs: {', '.join(inputs)})")
    tensor_type = inputs[name].type.tensor_type
    if not tensor_type.HasField("shape"):
        # No shape at all means the rank is unknown too (an empty shape is a scalar): the
        # dims given make the shape, and the model passes onnx.checker, which needs one.
        tensor_type.shape.SetInParent()
        tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension(dim_value=size) for size in shape)
        return
    dims = tensor_type.shape.dim
    if len(dims) != len(shape):
        raise OnnxDoctorError(f"--static-shape: input {name!r} has rank {len(dims)}, got {len(shape)} dims")
    for axis, (dim, size) in enumerate(zip(dims, shape, strict=True)):
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise OnnxDoctorError(
                f"--static-shape: input {name!r} dim {axis} is fixed at {dim.dim_value}, cannot make it {size}"
            )
        dim.Clear()
        dim.dim_value = size


def _set_inferred_output_shapes(model: onnx.ModelProto) -> None:
    """Output shapes that inference now knows statically replace their symbolic dims."""
    inferred = infer_shapes(model)
    known = {value.name: value for value in (*inferred.graph.value_info, *inferred.graph.output)}
    for output in model.graph.output:
        found = known.get(output.name)
        if found is None or not found.type.tensor_type.HasField("shape"):
            continue
        dims = found.type.tensor_type.shape.dim
        if dims and all(dim.HasField("dim_value") for dim in dims):
            output.type.tensor_type.shape.CopyFrom(found.type.tensor_type.shape)
