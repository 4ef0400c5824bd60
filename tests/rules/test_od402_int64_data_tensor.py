from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_every_entry_of_int64_into_the_data_path():
    report = diagnose(planted("od402_int64_data_tensor"))
    assert rules_of(report) == ["OD402"]
    found = {(f.tensors, f.nodes) for f in findings_of(report, "OD402")}
    assert found == {
        (("ids",), ()),  # INT64 graph input
        (("shifted",), ("add_offset",)),  # INT64 graph output
        (("offset_output",), ("offset",)),  # INT64 constant added to data
        (("best",), ("argmax",)),  # ArgMax turns float data into INT64 data
    }


def test_shape_arithmetic_is_not_data(yolo):
    # Range(int64) → Cast(float) anchors in dynamic exports are computed from shapes only.
    for path in yolo.values():
        assert findings_of(diagnose(path), "OD402") == []
