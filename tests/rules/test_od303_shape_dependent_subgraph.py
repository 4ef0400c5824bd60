from conftest import findings_of, planted, rules_of

from onnxdoctor import diagnose


def test_names_the_dynamic_dim_and_the_nodes():
    report = diagnose(planted("od303_shape_dependent"))
    assert rules_of(report) == ["OD303", "OD401"]
    (finding,) = findings_of(report, "OD303")
    assert finding.nodes == ("shape_images", "gather_batch", "unsqueeze_batch", "concat_shape")
    assert finding.details["dims"] == [{"input": "images", "axis": 0, "name": "batch"}]
    assert finding.details["removable_nodes"] == 4
    assert "images dim 0 'batch'" in finding.message


def test_dynamic_yolo_export_depends_on_its_named_dims(yolo):
    findings = findings_of(diagnose(yolo["yolov8n-pose-dynamic"]), "OD303")
    assert findings
    dims = {(d["input"], d["axis"], d["name"]) for f in findings for d in f.details["dims"]}
    assert dims == {("images", 0, "batch"), ("images", 2, "height"), ("images", 3, "width")}
    names = {node for f in findings for node in f.nodes}
    assert {"/model.22/Shape", "/model.22/dfl/Shape"} <= names


def test_silent_on_static_exports(yolo):
    for name in ("yolov8n-pose-static", "yolov8n-pose-static-slim", "yolov8n-opset12"):
        assert findings_of(diagnose(yolo[name]), "OD303") == []
