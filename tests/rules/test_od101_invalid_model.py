from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_type_clash_names_the_node():
    report = diagnose(planted("od101_type_mismatch"))
    assert rules_of(report) == ["OD101"]
    (finding,) = findings_of(report, "OD101")
    assert finding.nodes == ("add_mixed_types",)
    assert "inconsistent type" in finding.message


def test_undefined_input_names_node_and_tensor():
    report = diagnose(planted("od101_undefined_input"))
    assert rules_of(report) == ["OD101"]
    (finding,) = findings_of(report, "OD101")
    assert finding.nodes == ("reads_ghost",)
    assert finding.tensors == ("ghost",)


def test_duplicate_producers_are_reported_once_with_both_writers():
    report = diagnose(planted("od101_duplicate_producer"))
    assert rules_of(report) == ["OD101"]
    (finding,) = findings_of(report, "OD101")
    assert finding.nodes == ("write_first", "write_second")
    assert finding.tensors == ("twice",)


def test_unsorted_graph_is_not_called_invalid():
    # The checker stops at "must be topologically sorted": that is OD201's job, not OD101's.
    assert "OD101" not in rules_of(diagnose(planted("od201_unsorted")))


def test_silent_on_clean_models():
    assert rules_of(diagnose(planted("clean"))) == []
    assert rules_of(diagnose(planted("external_data"))) == []


def test_opset_from_the_future(tmp_path):
    import onnx

    model = onnx.load(planted("clean"))
    model.opset_import[0].version = 40
    onnx.save(model, tmp_path / "future.onnx")
    (finding,) = findings_of(diagnose(tmp_path / "future.onnx"), "OD101")
    assert "opset ai.onnx 40 is newer than any ONNX release" in finding.message


def test_tensor_data_that_does_not_match_its_dims(tmp_path):
    import onnx

    model = onnx.load(planted("od301_unfolded_constant"))
    model.graph.initializer[0].dims[:] = [1_000_000_000, 1_000_000_000]  # data is 8x4 floats
    onnx.save(model, tmp_path / "lying_dims.onnx")
    report = diagnose(tmp_path / "lying_dims.onnx")
    (finding,) = [f for f in findings_of(report, "OD101") if f.tensors == ("fc.weight",)]
    assert "declares 1,000,000,000,000,000,000 elements" in finding.message
