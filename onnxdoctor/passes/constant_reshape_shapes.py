"""constant-reshape-shapes: a Reshape whose output shape inference knows, all dims but at most
one, reads that shape as a constant (-1 for the dim not known); what computed the old shape
goes, when nothing else reads it.

Exporters compute the target of every Reshape from Shape → Gather → Unsqueeze → Concat where a
dim is dynamic; those chains cannot fold (they read the dynamic dim), and TensorRT runs each as
shape-tensor layers. The rewrite is exact where the inferred dims are: the element count fixes
the one dim left open, as -1 asks. It trusts the inferred dims exactly as fold-constants does
when it folds Shape nodes. Shapes with a 0 (a copied dim, or an empty tensor) are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxdoctor.graph import TensorType
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon, infer_types
from onnxdoctor.wording import node_label, shortened


class ConstantReshapeShapes(Pass):
    name = "constant-reshape-shapes"
    resolves = ()
    description = "give Reshapes whose output shape inference knows a constant shape (-1 for one dynamic dim)"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        constants = {tensor.name for tensor in model.graph.initializer}
        # A graph output's shape may be only what the model declares: it is not trusted here.
        outputs = {value.name for value in model.graph.output}
        candidates = [index for index, node in enumerate(model.graph.node)
                      if node.op_type == "Reshape" and node.domain in ("", "ai.onnx") and len(node.input) == 2
                      and node.input[1] not in constants and node.output[0] not in outputs]
        if not candidates:
            return PassResult(model, False, "no computed Reshape shapes")
        # Only dims inference derives count: a dim the model merely declares (traced at batch 1)
        # would be baked into the graph, and verification runs at one size only.
        types = infer_types(model, declared=False)
        targets = {index: target for index in candidates
                   if (target := reshape_target(types.get(model.graph.node[index].output[0]))) is not None}
        if not targets:
            return PassResult(model, False, "no Reshape output shape known")
        rewritten = onnx.ModelProto()
        rewritten.CopyFrom(model)
        taken = {name for node in rewritten.graph.node for name in (*node.input, *node.output)} | constants
        for index, target in targets.items():
            node = rewritten.graph.node[index]
            name = _unused_name(f"{node.output[0]}_shape", taken)
            rewritten.graph.initializer.append(onnx.numpy_helper.from_array(target, name))
            node.input[1] = name
        # The shape computations nothing reads any more go with graphsurgeon's cleanup.
        cleaned = edit_with_graphsurgeon(
            rewritten, lambda graph: graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True))
        result = compare_models(model, cleaned, "")
        labels = [node_label(model.graph.node[index], index) for index in targets]
        result.summary = (f"{len(targets)} Reshapes read a constant shape ({shortened(labels, 6)}); "
                          f"{len(result.nodes_removed)} nodes that computed their shapes removed")
        return result


def reshape_target(output: TensorType | None) -> np.ndarray | None:
    """The constant shape a Reshape to `output` can read: its dims, -1 for the one not known;
    None where more than one is unknown, the rank is not known, or a dim is 0."""
    if output is None or output.shape is None:
        return None
    unknown = [dim for dim in output.shape if not isinstance(dim, int)]
    if len(unknown) > 1 or 0 in output.shape:
        return None
    return np.array([dim if isinstance(dim, int) else -1 for dim in output.shape], dtype=np.int64)


def _unused_name(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    taken.add(candidate)
    return candidate
