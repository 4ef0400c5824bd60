from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_cycle_names_its_nodes_and_says_sorting_cannot_fix_it():
    report = diagnose(planted("od202_cycle"))
    assert rules_of(report) == ["OD202"]
    (finding,) = findings_of(report, "OD202")
    assert set(finding.nodes) == {"add_a", "relu_b"}
    assert set(finding.tensors) == {"a_out", "b_out"}
    assert "add_a → relu_b → add_a" in finding.message
    assert "sorting cannot fix" in finding.message


def test_silent_on_acyclic_models():
    for name in ("clean", "od201_unsorted", "subgraph_defects"):
        assert "OD202" not in rules_of(diagnose(planted(name)))
