"""Unusable inputs: one clear line on stderr, exit code 2, no traceback, the file untouched."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from conftest import planted

from onnxdoctor import OnnxDoctorError, diagnose


def run(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnxdoctor", "diagnose", str(path)], capture_output=True, text=True)


def assert_refused(path, expected: str) -> None:
    before = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else None
    result = run(path)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr, result.stderr
    if before:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == before


def test_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.onnx", "no such file")


def test_folder_without_models(tmp_path):
    assert_refused(tmp_path, "holds no .onnx file")


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_refused(tmp_path / "empty.onnx", "empty file")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(os.urandom(4096))
    assert_refused(path, "not an ONNX model")


def test_truncated_model(tmp_path):
    data = planted("od301_unfolded_constant").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert_refused(path, "not an ONNX model")


def test_another_protobuf_message(tmp_path):
    path = tmp_path / "tensor.onnx"
    path.write_bytes(onnx.helper.make_tensor("t", onnx.TensorProto.FLOAT, [2], [1.0, 2.0]).SerializeToString())
    assert_refused(path, "not an ONNX model")


def copy_external_model(tmp_path, *, data: bytes | None = None, location: str | None = None) -> Path:
    model_path = tmp_path / "model.onnx"
    model = onnx.load(planted("external_data"), load_external_data=False)
    if location is not None:
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
    model_path.write_bytes(model.SerializeToString())
    if data is not None:
        (tmp_path / "external_data.bin").write_bytes(data)
    return model_path


def test_external_data_is_read_from_the_model_folder(tmp_path):
    model = copy_external_model(tmp_path, data=(planted("external_data").parent / "external_data.bin").read_bytes())
    assert run(model).returncode == 0


def test_missing_external_data(tmp_path):
    assert_refused(copy_external_model(tmp_path), "external data file 'external_data.bin' is missing")


def test_too_short_external_data(tmp_path):
    assert_refused(copy_external_model(tmp_path, data=b"\0" * 100), "is too short")


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 8192)
    assert_refused(copy_external_model(folder, location=location), "refusing to read")


def test_symlink_out_of_the_model_folder_is_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 8192)
    (folder / "external_data.bin").symlink_to(tmp_path / "secret.bin")
    assert_refused(copy_external_model(folder), "leads outside the model's folder")


def test_cycle_gives_findings_not_a_crash():
    result = run(planted("od202_cycle"))
    assert result.returncode == 1 and "OD202" in result.stdout and "Traceback" not in result.stderr


def test_api_raises_the_one_error_type(tmp_path):
    with pytest.raises(OnnxDoctorError, match="no such file"):
        diagnose(tmp_path / "nope.onnx")


def test_model_path_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    # Nobody writes to the FIFO: opening it for reading would wait forever; the timeout makes that a failure.
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", "diagnose", str(fifo)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stderr == f"onnxdoctor: {fifo}: is a FIFO, not an ONNX file\n"


def test_model_path_that_is_a_symlink_to_dev_zero_is_refused(tmp_path):
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    assert_refused(tmp_path / "zero.onnx", "is a character device, not an ONNX file")


def test_external_data_that_is_a_device_is_refused(tmp_path):
    try:
        os.mknod(tmp_path / "external_data.bin", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("creating a device file needs CAP_MKNOD")
    assert_refused(copy_external_model(tmp_path), "is a character device, not a regular file")


def test_external_data_with_several_hard_links_is_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    # A hard link inside the folder may be a file from anywhere: nothing on disk says which name came first.
    (tmp_path / "secret.bin").write_bytes((planted("external_data").parent / "external_data.bin").read_bytes())
    os.link(tmp_path / "secret.bin", folder / "external_data.bin")
    assert_refused(copy_external_model(folder), "has 2 hard links; refusing to read it")


def test_control_characters_in_an_error_stay_on_one_line(tmp_path):
    path = tmp_path / "evil\n\x1b[2Jname.onnx"
    path.write_bytes(b"\x08not a model")
    result = run(path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "\x1b" not in result.stderr, result.stderr
    assert "evil\\n\\x1b[2Jname.onnx" in result.stderr
