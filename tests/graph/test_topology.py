from graph_models import FLOAT, model, view_of
from onnx import helper

from onnxdoctor.graph.topology import Topology, outer_scope_names
from onnxdoctor.graph.types import Use


def _neg(name, source):
    return helper.make_node("Neg", [source], [name], name=name)


def test_producers_consumers_and_a_stable_order():
    # c reads b before b is produced; the sorted parts keep their file order.
    nodes = [_neg("a", "x"), _neg("c", "b"), _neg("b", "a"), _neg("d", "x")]
    topology = Topology(nodes, ["c", "d"])
    assert topology.producers["b"] == [2]
    assert topology.consumers["x"] == [Use(0, 0), Use(3, 0)]
    assert topology.out_of_order_uses == [(1, "b", 2)]
    assert topology.topological_order == [0, 2, 1, 3]
    assert topology.cycles == []


def test_a_cycle_is_named_in_running_order_and_left_out_of_early_uses():
    nodes = [_neg("a", "x"), _neg("p", "q"), _neg("q", "p")]
    topology = Topology(nodes, ["a"])
    assert topology.cycles == [[1, 2]]
    assert topology.nodes_in_cycles == {1, 2}
    assert topology.out_of_order_uses == []
    # Nodes of a cycle keep file order among themselves.
    assert topology.topological_order == [0, 1, 2]


def test_live_and_dead_nodes_and_groups():
    nodes = [_neg("a", "x"), _neg("dead1", "x"), _neg("dead2", "dead1"), _neg("b", "a")]
    topology = Topology(nodes, ["b"])
    assert topology.live_nodes == {0, 3}
    assert topology.dead_nodes == [1, 2]
    assert topology.connected_groups([1, 2, 0]) == [[0], [1, 2]]
    assert topology.group_outputs([1, 2]) == []
    assert topology.group_outputs([0]) == ["a"]


def test_what_a_body_reads_from_outside_is_an_input_of_its_node():
    then_body = helper.make_graph([helper.make_node("Identity", ["outer"], ["then_out"])], "then", [],
                                  [helper.make_tensor_value_info("then_out", FLOAT, [1])])
    else_body = helper.make_graph([helper.make_node("Identity", ["outer"], ["else_out"])], "else", [],
                                  [helper.make_tensor_value_info("else_out", FLOAT, [1])])
    branch = helper.make_node("If", ["condition"], ["result"], name="branch", then_branch=then_body,
                              else_branch=else_body)
    # The If comes first in the file, before the node producing what its bodies read.
    nodes = [branch, _neg("outer", "x")]
    assert outer_scope_names(then_body) == {"outer"}
    topology = Topology(nodes, ["result"])
    assert topology.implicit_inputs(0) == {"outer"}
    assert topology.node_inputs(0) == ["condition", "outer"]
    assert Use(0, -1) in topology.consumers["outer"]
    assert topology.out_of_order_uses == [(0, "outer", 1)]
    assert topology.topological_order == [1, 0]


def test_undefined_inputs_and_duplicate_producers():
    nodes = [_neg("a", "x"), _neg("a", "nowhere"), _neg("weight", "x")]
    topology = Topology(nodes, ["a"])
    assert topology.undefined_inputs(lambda name: name == "x") == [(1, "nowhere")]
    assert topology.duplicate_producers(["weight"]) == {"a": [0, 1], "weight": [2]}


def test_the_view_hands_out_its_topology():
    proto = model([_neg("b", "a"), _neg("a", "x")], [("x", FLOAT, [2])], [("b", FLOAT, [2])])
    view = view_of(proto)
    assert view.topological_order == view.topology.topological_order == [1, 0]
    assert view.labels(view.topological_order) == ["a", "b"]
