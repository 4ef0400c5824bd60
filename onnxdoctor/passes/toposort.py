"""toposort (OD201): put nodes in execution order; refuse on a cycle (OD202), naming it."""

from __future__ import annotations

import onnx

from onnxdoctor.graph import build_views
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models, edit_with_graphsurgeon


class Toposort(Pass):
    name = "toposort"
    resolves = ("OD201",)
    description = "sort nodes topologically (onnx-graphsurgeon toposort), subgraphs included"

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        views = list(build_views(model, {}).walk())
        for view in views:
            if view.cycles:
                cycle = view.cycles[0]
                path = " → ".join(view.labels(cycle + cycle[:1]))
                raise PassRefused(f"cycle in {view.scope}: {path}; no order can run it (OD202)")
        early = sorted({view.label(consumer) for view in views for consumer, _, _ in view.out_of_order_uses})
        if not early:
            # A sorted graph stays as it is: graphsurgeon would re-sort it into another valid order.
            return PassResult(model, False, "already sorted")
        sorted_model = edit_with_graphsurgeon(model, lambda graph: graph.toposort(recurse_subgraphs=True))
        result = compare_models(model, sorted_model, "")
        # Order is the change here, which compare_models does not count.
        result.changed, result.model = True, sorted_model
        shown = ", ".join(early[:5]) + (" …" if len(early) > 5 else "")
        result.summary = f"sorted; {len(early)} nodes read tensors before they were produced ({shown})"
        return result
