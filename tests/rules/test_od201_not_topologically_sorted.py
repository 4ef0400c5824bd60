from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_every_early_reader_is_reported_not_just_the_first():
    report = diagnose(planted("od201_unsorted"))
    assert rules_of(report) == ["OD201"]
    findings = findings_of(report, "OD201")
    assert [finding.nodes[0] for finding in findings] == ["mul", "relu"]
    mul, relu = findings
    assert set(mul.tensors) == {"relu_out", "sigmoid_out"}
    assert set(mul.nodes[1:]) == {"relu", "sigmoid"}
    assert relu.tensors == ("conv_out",)
    assert relu.nodes == ("relu", "conv")


def test_cycle_is_not_reported_as_unsorted():
    assert "OD201" not in rules_of(diagnose(planted("od202_cycle")))


def test_unsorted_subgraph_body(tmp_path):
    report = diagnose(planted("subgraph_defects"))
    (finding,) = findings_of(report, "OD201")
    assert finding.graph == "main / branch.then_branch"
    assert finding.nodes == ("then_neg", "then_relu")


def test_silent_on_sorted_yolo_exports(yolo):
    for path in yolo.values():
        assert "OD201" not in rules_of(diagnose(path, select=["OD2"]))
