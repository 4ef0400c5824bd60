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
