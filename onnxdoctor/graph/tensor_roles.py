"""The role of each tensor in a graph: read only as a shape, axis or index value, or as data; and
whether every use of it clamps out-of-range values (a Slice end, a "no limit" count).

What each op input means is op knowledge (onnxdoctor.ops.roles); here it is followed through
the graph, backwards in execution order, so each tensor is decided after everything that reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnxdoctor.ops.roles import input_role, passes_elements, slot_roles

if TYPE_CHECKING:
    from onnxdoctor.graph.view import GraphView


def shape_valued_tensors(view: GraphView) -> frozenset[str]:
    """Tensors read only as shapes, axes or indices, directly or through computations whose
    results are themselves read only that way. A graph output is data."""
    shape_valued: set[str] = set()
    outputs = set(view.outputs)
    # A node is asked about once per input it reads, and again when a later step revisits a
    # tensor: its roles are looked up once. (The uses are judged inline, not by a function per
    # use: hundreds of thousands of them on a large graph.)
    roles_by_node: dict[int, dict] = {}
    for index in reversed(view.topological_order):
        for name in view.node_inputs(index):
            if name in shape_valued or name in outputs:
                continue
            uses = view.consumers.get(name)
            if not uses:
                continue
            for reader, slot in uses:
                if slot < 0:
                    # Read inside an If/Loop body: a shape use if every body reading it reads it as one.
                    bodies = [sub for sub in view.subviews_of.get(reader, ()) if sub.consumers.get(name)]
                    if bodies and all(name in sub.shape_valued_tensors for sub in bodies):
                        continue
                    break
                roles = roles_by_node.get(reader)
                if roles is None:
                    roles = roles_by_node[reader] = slot_roles(view.nodes[reader], view.opsets)
                if slot in roles:
                    continue
                # Not a shape input itself: a shape use when all it computes is shape-valued.
                written = view.node_outputs(reader)
                if not written or not all(output in shape_valued for output in written):
                    break
            else:
                shape_valued.add(name)
    return frozenset(shape_valued)


def clamped_only_tensors(view: GraphView) -> frozenset[str]:
    """Tensors every use of which is a clamped input, directly or through ops that pass
    elements on unchanged: out-of-range values there are clamped, not corrupted.

    Readers come after producers, so walking the order backwards decides what carries a
    tensor's elements on before the tensor itself: linear in the graph, and no recursion
    along chains as long as the model makes them (thousands of Identity nodes). A carrier
    not yet decided sits on a cycle with the tensor: never clamped.
    """
    backwards = [name for index in reversed(view.topological_order) for name in view.nodes[index].output if name]
    unproduced = [name for name in view.consumers if name not in view.producers]
    clamped: set[str] = set()
    for name in backwards + unproduced:
        carriers = _element_carriers(view, name)
        if carriers is not None and all(carrier in clamped for carrier in carriers):
            clamped.add(name)
    return frozenset(clamped)


def _element_carriers(view: GraphView, name: str) -> list[str] | None:
    """The tensors that pass a tensor's elements on unchanged, when every other use of it is a
    clamped input; None when some use is neither (or it has no use, or is an output)."""
    uses = view.consumers.get(name, [])
    if not uses or name in view.outputs:
        return None
    carriers = []
    for use in uses:
        node = view.nodes[use.node]
        role = input_role(node, use.slot, view.opsets) if use.slot >= 0 else None
        if role is not None and role.clamped:
            continue
        outputs = [output for output in node.output if output]
        if not (use.slot >= 0 and passes_elements(node, use.slot) and outputs):
            return None
        carriers.extend(outputs)
    return carriers
