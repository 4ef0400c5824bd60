import numpy as np
from conftest import findings_of, planted

from onnxdoctor import diagnose


def test_only_measured_when_asked():
    assert findings_of(diagnose(planted("od505_activation_overflow")), "OD505") == []


def test_overflow_only_on_the_given_input(tmp_path):
    model = planted("od505_activation_overflow")
    # Generated inputs in [0, 1) stay below 300 (and the threshold 512).
    assert findings_of(diagnose(model, fp16_activations=True), "OD505") == []
    data = tmp_path / "data.npz"
    np.savez(data, x=np.full((1, 8), 300, np.float32))
    found = findings_of(diagnose(model, fp16_activations=True, inputs=data), "OD505")
    assert [(f.nodes, f.tensors) for f in found] == [(("amplify",), ("amplified",)), (("relu",), ("y",))]
    assert all(f.details["overflows"] and f.details["largest"] == 90000 for f in found)
    assert "on the inputs in" in found[0].message and "inf in FP16" in found[0].message


def test_threshold_and_generated_inputs_are_said(yolo):
    report = diagnose(yolo["yolov8n-opset12"], select=["OD505"], fp16_activations=True)
    found = findings_of(report, "OD505")
    # Box coordinates in pixels exceed AutoCast's 512 on the output path; nothing overflows.
    assert found and all(not f.details["overflows"] and f.details["generated_inputs"] for f in found)
    assert "output0" in {tensor for f in found for tensor in f.tensors}
    assert all("not calibration data" in f.message for f in found)


def test_command_line_measures_only_when_asked(tmp_path):
    from click.testing import CliRunner

    from onnxdoctor.cli import main

    data = tmp_path / "data.npz"
    np.savez(data, x=np.full((1, 8), 300, np.float32))
    model = str(planted("od505_activation_overflow"))
    measured = CliRunner().invoke(main, ["diagnose", model, "--fp16-activations", "--inputs", str(data)])
    assert measured.exit_code == 0 and "OD505" in measured.output and "reached 90000" in measured.output
    refused = CliRunner().invoke(main, ["diagnose", model, "--inputs", str(data)])
    assert refused.exit_code == 2 and "--inputs is used only with --fp16-activations" in refused.output
