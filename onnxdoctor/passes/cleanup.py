"""cleanup (OD203): remove dead nodes and unused initializers; unused graph inputs are kept
(removing them would change the model's interface) and reported."""

from __future__ import annotations

import onnx

from onnxdoctor.graph import build_views
from onnxdoctor.passes import Pass, PassOptions, PassResult, compare_models, edit_with_graphsurgeon


class Cleanup(Pass):
    name = "cleanup"
    provable = True
    resolves = ("OD203",)
    description = "remove nodes and initializers no output uses (onnx-graphsurgeon cleanup)"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        views = list(build_views(model, {}).walk())
        if not any(view.dead_nodes or view.unused_initializers for view in views):
            # Nothing dead: no graphsurgeon round trip (a copy of every weight) for nothing.
            return PassResult(model, False, "nothing dead" + _unused_inputs_note(model))
        cleaned = edit_with_graphsurgeon(
            model, lambda graph: graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True)
        )
        result = compare_models(model, cleaned, "")
        removed = f"removed {len(result.nodes_removed)} nodes and {len(result.tensors_changed)} initializers"
        result.summary = (removed if result.changed else "nothing dead") + _unused_inputs_note(cleaned)
        return result


def _unused_inputs_note(model: onnx.ModelProto) -> str:
    view = build_views(model, {})
    outputs = set(view.outputs)
    # Read by a node (or a body inside it), or passed straight through as an output, is used.
    unused = [name for name in view.inputs if not view.consumers.get(name) and name not in outputs]
    return f"; graph inputs no node reads (kept): {', '.join(unused)}" if unused else ""
