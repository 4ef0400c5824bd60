"""The TensorRT targets: facts as data, the installed default, texts that follow the target."""

from __future__ import annotations

import pytest
from conftest import findings_of, planted

from onnxdoctor import diagnose
from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.ops.tensorrt import TARGETS, installed_target, resolve_target


def test_every_op_fact_names_its_source():
    for target in TARGETS.values():
        assert target.int64_source and target.typing_source and target.plugin_source
        for support in target.ops.values():
            assert support.source and support.note


def test_default_is_the_installed_parser():
    # Only TensorRT-RTX is installed in this environment.
    assert installed_target() == "trt-rtx" and resolve_target(None).name == "trt-rtx"
    with pytest.raises(OnnxDoctorError, match="no TensorRT target 'trt7'"):
        resolve_target("trt7")


def test_od402_advice_follows_the_target():
    def messages(target):
        return [f.message for f in findings_of(diagnose(planted("od402_int64_data_tensor"), target=target), "OD402")]

    assert all("TensorRT 8.6: INT64 data is cast down to INT32" in message for message in messages("trt8"))
    assert all("TensorRT 10: INT64 tensors are native" in message for message in messages("trt10"))
    # Without a target, the rule's own text is unchanged.
    assert not any("TensorRT 10:" in message for message in messages(None))


@pytest.fixture(scope="module")
def torchvision_detector(tmp_path_factory):
    """SSDlite from torchvision, random weights, exported as a user would (TorchScript exporter):
    the case that started the TensorRT rules (no error from diagnose, refused by TensorRT-RTX)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                       num_classes=3).eval()
    path = tmp_path_factory.mktemp("detector") / "ssdlite.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 320, 320),), str(path), opset_version=17, dynamo=False)
    return path


def test_a_torchvision_detector_is_refused_by_tensorrt_rtx_for_its_nonzero_and_not_by_tensorrt_10(
        torchvision_detector):
    refused = findings_of(diagnose(torchvision_detector, tensorrt=True, select=["OD6"]), "OD601")
    nonzero = [finding for finding in refused if "NonZero plugin creator" in finding.message]
    assert nonzero and all(finding.nodes[0].startswith("/NonZero") for finding in nonzero)
    # TensorRT 10 has NonZero natively (since 8.5): a data-dependent shape, a warning, no refusal.
    report = diagnose(torchvision_detector, target="trt10", select=["OD6"])
    assert not findings_of(report, "OD601")
    assert {finding.nodes[0] for finding in findings_of(report, "OD603")} >= {f.nodes[0] for f in nonzero}
