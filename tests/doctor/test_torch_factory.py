"""doctor --torch package.module:factory on the CPU: a small CNN written to a temporary folder,
exported with both of torch.onnx.export's exporters, benched beside the very module that was
exported; bad specs are one line and exit 2."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

from onnxdoctor.bench.run import BenchOptions, bench
from onnxdoctor.cli import main
from onnxdoctor.doctor import FILES, DoctorReport
from onnxdoctor.render import doctor_html, doctor_markdown

QUICK = ["--runs", "5", "--seconds", "1"]
ROOT = Path(__file__).resolve().parents[2]

# Each factory counts its calls: doctor must call it once and hand that module to bench and profile.
NETS = '''
import torch

CALLS = []


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = small_cnn_module()

    def forward(self, images, scale):
        return self.features(images) * scale


def small_cnn_module():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 4))


def small_cnn():
    CALLS.append("small_cnn")
    torch.manual_seed(0)
    return small_cnn_module()


def two_inputs():
    CALLS.append("two_inputs")
    torch.manual_seed(0)
    return TwoInputs()


class Counting(torch.nn.Module):
    """Python state that tracing fixes at export time: each call scales by how often it was called."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        self.calls += 1
        return self.linear(x) * self.calls


def counting():
    torch.manual_seed(0)
    return Counting()


def raises():
    raise RuntimeError("no weights here")


def not_a_module():
    return 42
'''


@pytest.fixture
def nets(tmp_path, monkeypatch, request):
    """The factory module in a folder of its own, as the current directory (not on sys.path:
    doctor puts it there as `python -m` does), under a name of its own per test, so that no test
    sees another's import."""
    name = f"nets_{request.node.name.split('[')[0]}_{abs(hash(request.node.name)) % 10**6}"
    (tmp_path / f"{name}.py").write_text(NETS)
    (tmp_path / "broken.py").write_text("import torch\ndef (:\n")
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def run_doctor(*arguments: str) -> tuple[object, DoctorReport | None]:
    result = CliRunner().invoke(main, ["doctor", *arguments, *QUICK, "-o", "out"])
    report = DoctorReport.from_json(Path("out/report.json").read_text()) if result.exit_code == 0 else None
    return result, report


def onnx_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_the_dynamo_exporter_and_the_baseline_share_one_module(nets):
    result, report = run_doctor("--torch", f"{nets}:small_cnn", "--input-shape", "1x3x32x32")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in Path("out").iterdir()) == sorted(FILES.values())
    assert report.source == "torch" and report.model == f"{nets}:small_cnn"
    assert report.export["exporter"] == "torch.onnx.export, dynamo exporter"
    assert report.export["torch"] == torch.__version__ and report.export["opset"] >= 18
    assert report.inputs == {"input": [1, 3, 32, 32]}
    assert "Exported with torch.onnx.export, dynamo exporter (torch " in (Path("out") / "summary.md").read_text()
    # Called once: bench's and profile's PyTorch model is the module the export came from.
    assert sys.modules[nets].CALLS == ["small_cnn"]
    assert str(Path.cwd()) not in sys.path  # the current directory was on sys.path for the import only
    assert report.export["verification"]["passed"] and report.export["verification"]["outputs"][0]["max_absolute"] < 1e-4
    assert "Its outputs match the module's on the CPU" in Path("out/summary.md").read_text()
    assert not report.decisions
    # The files render again from the JSON alone, as written.
    assert doctor_markdown.render(report) == Path("out/summary.md").read_text(encoding="utf-8")
    assert doctor_html.render(report) == Path("out/report.html").read_text(encoding="utf-8")
    torch_row = next(row for row in report.bench["rows"] if row["runner"] == "torch-eager")
    assert torch_row["summary"] is not None and torch_row["unavailable"] is None
    assert all(row["versus_torch"] is not None for row in report.bench["rows"] if row["runner"] == "ort-cpu")
    # The exported ONNX model computes what the factory's module computes: the same weights.
    image = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = sys.modules[nets].small_cnn().eval()(torch.from_numpy(image)).numpy()
    for name in ("original.onnx", "fixed.onnx"):
        np.testing.assert_allclose(onnx_outputs(Path("out") / name, {"input": image})[0], expected, rtol=1e-4, atol=1e-5)


def test_bench_takes_the_same_factory_spec_from_the_current_directory(nets):
    model = Path("tiny.onnx")
    torch.onnx.export(sys_module(nets).small_cnn().eval(), (torch.rand(1, 3, 16, 16),), model, dynamo=False,
                      input_names=["input"])
    report = bench(model, BenchOptions(backends=("ort-cpu",), torch=f"{nets}:small_cnn", runs=5, seconds=1,
                                       warm_up_seconds=0.5))
    torch_row = next(row for row in report.rows if row.runner == "torch-eager")
    assert torch_row.summary is not None and torch_row.description.options["source"] == f"{nets}:small_cnn"
    assert sys_module(nets).CALLS == ["small_cnn", "small_cnn"]  # the test's export, then bench's load


def sys_module(name: str):
    """The factory module, imported here as doctor and bench import it: from the current directory."""
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(Path.cwd()))


@pytest.mark.parametrize("exporter, label", [("torchscript", "TorchScript"), ("dynamo", "dynamo")])
def test_two_named_inputs_with_a_dynamic_batch(nets, exporter, label):
    result, report = run_doctor("--torch", f"{nets}:two_inputs", "--input-shape", "images:2x3x32x32",
                                "--input-shape", "scale:2x1", "--exporter", exporter, "--dynamic")
    assert result.exit_code == 0, result.output
    assert report.export["exporter"] == f"torch.onnx.export, {label} exporter" and report.export["dynamic"]
    assert report.inputs == {"images": [2, 3, 32, 32], "scale": [2, 1]}
    # Axis 0 of both inputs is dynamic in the file; every stage ran at the shapes given.
    model = onnx.load("out/original.onnx")
    assert [value.name for value in model.graph.input] == ["images", "scale"]
    assert all(not value.type.tensor_type.shape.dim[0].HasField("dim_value") for value in model.graph.input)
    assert report.profile["inputs"] == {"images": [2, 3, 32, 32], "scale": [2, 1]}
    assert f"{label} exporter" in Path("out/summary.md").read_text() and "dynamic batch" in Path("out/summary.md").read_text()
    assert sys.modules[nets].CALLS == ["two_inputs"]
    feeds = {"images": np.random.default_rng(2).random((3, 3, 32, 32), dtype=np.float32),
             "scale": np.full((3, 1), 2.0, dtype=np.float32)}  # another batch than the export's
    with torch.no_grad():
        expected = sys.modules[nets].two_inputs().eval()(*map(torch.from_numpy, feeds.values())).numpy()
    np.testing.assert_allclose(onnx_outputs(Path("out/original.onnx"), feeds)[0], expected, rtol=1e-4, atol=1e-5)


def test_an_export_that_computes_something_else_is_a_decision(nets):
    # TorchScript traces forward once: the call count is a constant in the ONNX model, not in PyTorch.
    result, report = run_doctor("--torch", f"{nets}:counting", "--input-shape", "2x4", "--exporter", "torchscript")
    assert result.exit_code == 0, result.output
    assert not report.export["verification"]["passed"]
    assert report.decisions[0].startswith("the export does not compute what the PyTorch module computes (output ")
    assert "Its outputs do not match the module's on the CPU" in Path("out/summary.md").read_text()


@pytest.mark.parametrize("arguments, expected", [
    (["--torch", "no_such_module_here:make", "--input-shape", "1x3x8x8"],
     "--torch no_such_module_here:make: cannot import (ModuleNotFoundError: No module named 'no_such_module_here')"),
    (["--torch", "NETS:nothing", "--input-shape", "1x3x8x8"], "--torch NETS:nothing: module NETS ("),
    (["--torch", "NETS:CALLS", "--input-shape", "1x3x8x8"], ".py) has no function CALLS"),
    (["--torch", "broken:make", "--input-shape", "1x3x8x8"], "--torch broken:make: cannot import (SyntaxError"),
    (["--torch", "NETS:raises", "--input-shape", "1x3x8x8"],
     "--torch NETS:raises: the factory raised RuntimeError: no weights here"),
    (["--torch", "NETS:not_a_module", "--input-shape", "1x3x8x8"], "the factory returned int, not a torch.nn.Module"),
    (["--torch", "NETS", "--input-shape", "1x3x8x8"], "expected package.module:factory"),
    (["--torch", "NETS:small_cnn"], "--torch needs --input-shape"),
    (["--torch", "NETS:small_cnn", "--input-shape", "1x0x8x8"], "--input-shape '1x0x8x8': expected [NAME:]DxDxD"),
    (["--torch", "NETS:small_cnn", "--input-shape", "tokens:1x8:int64"], "float32 inputs only"),
    (["--torch", "NETS:small_cnn", "--input-shape", "a:1x3x8x8", "--input-shape", "a:1x3x8x8"], "'a' is given twice"),
    (["--torch", "NETS:small_cnn", "--input-shape", "1x3x8x8", "--imgsz", "64"], "--imgsz are for Ultralytics"),
    (["model.onnx", "--torch", "NETS:small_cnn", "--input-shape", "1x3x8x8"], "give MODEL (model.onnx) or --torch"),
    (["model.onnx", "--input-shape", "1x3x8x8"], "--input-shape goes with --torch"),
    # A shape the module cannot take fails in the exporter: one line, what failed rather than the exporter's advice.
    (["--torch", "NETS:small_cnn", "--input-shape", "1x5x8x8"],
     "NETS:small_cnn: torch.onnx.export (dynamo exporter) cannot export it (RuntimeError: Given groups=1, weight of "
     "size [8, 3, 3, 3], expected input[1, 5, 8, 8] to have 3 channels"),
    (["--torch", "NETS:small_cnn", "--input-shape", "1x5x8x8", "--exporter", "torchscript"],
     "NETS:small_cnn: torch.onnx.export (torchscript exporter) cannot export it (RuntimeError: Given groups=1"),
])
def test_a_bad_spec_is_one_line_and_exit_2(nets, arguments, expected):
    arguments = [argument.replace("NETS", nets) for argument in arguments]
    result = CliRunner().invoke(main, ["doctor", *arguments, *QUICK, "-o", "out"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("onnxdoctor: ") and result.output.count("\n") == 1, result.output
    assert expected.replace("NETS", nets) in result.output
    assert not Path("out").exists()  # nothing left behind


def test_the_dynamo_exporter_without_onnxscript_names_it(nets, tmp_path):
    # A stub that fails to import, as on a machine without onnxscript.
    stubs = tmp_path / "stubs"
    (stubs / "onnxscript").mkdir(parents=True)
    (stubs / "onnxscript" / "__init__.py").write_text("raise ImportError('not installed here')\n")
    command = [sys.executable, "-m", "onnxdoctor", "doctor", "--torch", f"{nets}:small_cnn", "--input-shape", "1x3x8x8",
               *QUICK, "-o", "out"]
    result = subprocess.run(command, capture_output=True, text=True, env={"PYTHONPATH": f"{stubs}:{ROOT}", "PATH": ""})
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("onnxdoctor: the dynamo exporter needs onnxscript, which is not installed: "
                             "pip install onnxscript, or use --exporter torchscript\n")
    assert not Path("out").exists()
