"""Saving a model with external data over an earlier save of the same output leaves one data file."""

import onnx
from conftest import planted

from onnxdoctor import api
from onnxdoctor.model import save_model


def _files(folder):
    return sorted(path.name for path in folder.iterdir())


def test_repeated_fixes_leave_one_data_file(tmp_path):
    source = tmp_path / "source.onnx"
    onnx.save(onnx.load(planted("external_data")), source, save_as_external_data=True, location="source.bin",
              size_threshold=0)
    for _ in range(3):
        api.fix(source, tmp_path / "out.onnx")
    assert _files(tmp_path) == ["out.onnx", "out.onnx.data", "source.bin", "source.onnx"]
    assert not [finding for finding in api.diagnose(tmp_path / "out.onnx").findings if finding.rule == "OD101"]


def test_stale_hashed_data_files_are_removed(tmp_path):
    model = onnx.load(planted("external_data"))
    (tmp_path / "out.onnx.0123abcd.data").write_bytes(b"left by an earlier run")
    (tmp_path / "out.onnx.notes.data").write_bytes(b"not ours")
    save_model(model, tmp_path / "out.onnx", external_data=True)
    save_model(onnx.load(planted("external_data")), tmp_path / "out.onnx", external_data=True)
    assert _files(tmp_path) == ["out.onnx", "out.onnx.data", "out.onnx.notes.data"]
    assert onnx.load(tmp_path / "out.onnx") is not None


def test_another_models_data_is_never_taken_over(tmp_path):
    # other.onnx keeps its weights in out.onnx.data: saving out.onnx must not replace them.
    onnx.save(onnx.load(planted("external_data")), tmp_path / "other.onnx", save_as_external_data=True,
              location="out.onnx.data", size_threshold=0)
    data_before = (tmp_path / "out.onnx.data").read_bytes()
    save_model(onnx.load(planted("external_data")), tmp_path / "out.onnx", external_data=True)
    assert (tmp_path / "out.onnx.data").read_bytes() == data_before
    assert len([name for name in _files(tmp_path) if name.startswith("out.onnx.")]) == 2
