"""No output overwrites an input: the model, another model diagnosed with it, its external data,
fix's --inputs file, by any name (a symlink, a hard link). A write that fails is one line."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import planted

from onnxdoctor import OnnxDoctorError, api


def cli(*arguments, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnxdoctor", *map(str, arguments)], capture_output=True, text=True,
                          timeout=300, **options)


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir() if path.is_file()}


def assert_refused(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.startswith("onnxdoctor: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr, result.stderr
    assert not result.stdout


@pytest.fixture
def models(tmp_path) -> Path:
    """A folder with a plain model and one with external data."""
    for name in ("clean.onnx", "external_data.onnx", "external_data.bin"):
        (tmp_path / name).write_bytes((planted("clean").parent / name).read_bytes())
    return tmp_path


def aliases(folder: Path, target: str) -> list[Path]:
    """Other names of `target`: itself, a symlink, a hard link, a path through '..'."""
    (folder / "symlink.onnx").symlink_to(folder / target)
    os.link(folder / target, folder / "hardlink.onnx")
    (folder / "sub").mkdir()
    return [folder / target, folder / "symlink.onnx", folder / "hardlink.onnx", folder / "sub" / ".." / target]


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_diagnose_never_writes_its_report_over_a_model(models, output_format):
    for output in aliases(models, "clean.onnx"):
        before = digests(models)
        result = cli("diagnose", models / "clean.onnx", "--format", output_format, "-o", output)
        assert_refused(result, "refusing to overwrite an input model")
        assert digests(models) == before, output


def test_diagnose_of_several_models_never_overwrites_any(models):
    before = digests(models)
    result = cli("diagnose", models / "external_data.onnx", models / "clean.onnx", "-o", models / "clean.onnx")
    assert_refused(result, "refusing to overwrite an input model")
    # A folder given as input: every model found in it is an input.
    result = cli("diagnose", models, "-o", models / "external_data.onnx")
    assert_refused(result, "refusing to overwrite an input model")
    assert digests(models) == before


def test_diagnose_never_writes_its_report_over_external_data(models):
    (models / "data_link.bin").symlink_to(models / "external_data.bin")
    before = digests(models)
    for output in (models / "external_data.bin", models / "data_link.bin"):
        # The plain model comes first: nothing is written for it either once the second is refused.
        result = cli("diagnose", models / "clean.onnx", models / "external_data.onnx", "-o", output)
        assert_refused(result, "refusing to overwrite an external data file of the model")
        assert digests(models) == before


def test_fix_never_writes_over_the_input_by_another_name(models):
    for output in aliases(models, "clean.onnx"):
        before = digests(models)
        assert_refused(cli("fix", models / "clean.onnx", "-o", output), "refusing to overwrite the input")
        assert digests(models) == before


def test_fix_never_writes_over_external_data_by_another_name(models):
    (models / "data_link.onnx").symlink_to(models / "external_data.bin")
    os.link(models / "external_data.bin", models / "data_hardlink.onnx")
    before = digests(models)
    for output in (models / "data_link.onnx", models / "data_hardlink.onnx"):
        with pytest.raises(OnnxDoctorError):
            # The hard link makes the data file itself refused (two names); the symlink is caught as the output.
            api.fix(models / "external_data.onnx", output)
    assert digests(models) == before
    (models / "data_hardlink.onnx").unlink()
    with pytest.raises(OnnxDoctorError, match="refusing to overwrite an external data file of the input"):
        api.fix(models / "external_data.onnx", models / "data_link.onnx")
    assert digests(models) == {name: digest for name, digest in before.items() if name != "data_hardlink.onnx"}


def test_fix_never_writes_over_its_inputs_file(models):
    inputs = models / "inputs.npz"
    np.savez(inputs, x=np.ones((1, 3, 8, 8), np.float32))
    before = digests(models)
    result = cli("fix", models / "clean.onnx", "--inputs", inputs, "-o", inputs)
    assert_refused(result, "refusing to overwrite the --inputs file")
    assert digests(models) == before


def test_fix_writes_a_model_whose_external_weights_are_all_small(tmp_path):
    # Every tensor is under the 1 KiB external threshold: the fixed model holds them all, no data file.
    weight = onnx.numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "weight"], ["y"])], "small",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8])], initializer=[weight])
    model = tmp_path / "small.onnx"
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), model,
                    save_as_external_data=True, location="small.bin", size_threshold=0)
    result = cli("fix", model, "-o", tmp_path / "fixed.onnx")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fixed.onnx", "small.bin", "small.onnx"]
    fixed = onnx.load(tmp_path / "fixed.onnx")
    onnx.checker.check_model(fixed)
    assert np.array_equal(onnx.numpy_helper.to_array(fixed.graph.initializer[0]), np.arange(64).reshape(8, 8))


def _limit_file_size() -> None:
    # A file-size limit fails writes the way a full disk does (EFBIG); Python ignores SIGXFSZ.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_diagnose_report_that_cannot_be_written_is_one_line(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("the previous report\n")
    result = cli("diagnose", planted("od301_unfolded_constant"), "--format", "json", "-o", report,
                 preexec_fn=_limit_file_size)
    assert_refused(result, f"{report}: cannot write: File too large")
    assert report.read_text() == "the previous report\n"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]  # no temporary file left
