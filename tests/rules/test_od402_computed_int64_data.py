from collections import Counter

from conftest import findings_of, planted

from onnxdoctor import api, diagnose


def test_int64_computed_from_constants_is_found_where_it_meets_data():
    found = {(f.tensors, f.nodes) for f in findings_of(diagnose(planted("od402_computed_int64_data")), "OD402")}
    # The levels meet the box indices in gather_levels; the class ids expanded to the boxes' count
    # are bounded by the dims and meet no data.
    assert found == {(("levels",), ("flatten_levels",))}


def test_fix_finds_what_diagnose_found(tmp_path):
    # fold-constants turns the levels into an initializer: the same finding, not a new one.
    report = api.fix(planted("od402_computed_int64_data"), tmp_path / "fixed.onnx")
    before = Counter(finding.rule for finding in report.before.findings)
    after = Counter(finding.rule for finding in report.after.findings)
    assert before["OD402"] == after["OD402"] == 1
    assert [f.tensors for f in findings_of(report.after, "OD402")] == [("levels",)]
