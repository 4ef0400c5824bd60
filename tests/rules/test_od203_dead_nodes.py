from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_dead_nodes_and_unused_initializers():
    report = diagnose(planted("od203_dead_nodes"))
    assert rules_of(report) == ["OD203"]
    nodes, initializers = findings_of(report, "OD203")
    assert nodes.nodes == ("dead_mul", "dead_sigmoid")
    assert nodes.tensors == ("dead_sigmoid_out",)
    # dead_scale is only read by a dead node, so it is dead too.
    assert set(initializers.tensors) == {"dead_scale", "unused_weight"}


def test_dead_node_inside_if_branch():
    (finding,) = findings_of(diagnose(planted("subgraph_defects")), "OD203")
    assert finding.graph == "main / branch.else_branch"
    assert finding.nodes == ("else_dead",)


def test_silent_on_yolo_exports(yolo):
    for path in yolo.values():
        assert "OD203" not in rules_of(diagnose(path, select=["OD203"]))
