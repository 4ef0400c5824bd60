"""doctor end to end on the CPU: the seed case from Ultralytics' yaml (random weights, realistic
BatchNorm statistics) at a small image size, an .onnx input with no export, and bad inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner
from conftest import planted, screenshot_colors

from onnxdoctor import api
from onnxdoctor.cli import main
from onnxdoctor.doctor import BUILT_WEIGHTS, FILES, DoctorReport, doctor
from onnxdoctor.engines.torch_runner import load_torch_model
from onnxdoctor.render import doctor_html, doctor_markdown

# Small images and short bench runs keep the CPU runs quick; the graph is the same at any size.
QUICK = ["--imgsz", "128", "--batch", "1", "--runs", "5", "--seconds", "2"]


@pytest.fixture(scope="module")
def seed_case(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("doctor") / "out"
    result = CliRunner().invoke(main, ["doctor", *QUICK, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_the_seed_case_writes_its_files_and_nothing_else(seed_case):
    out, result = seed_case
    # Built from the yaml: its weights too. No work folder left.
    assert sorted(path.name for path in out.iterdir()) == sorted([*FILES.values(), *BUILT_WEIGHTS.values()])
    assert "summary.md" in result.output.splitlines()[-1]
    # The inputs every stage ran on run again as they are: the model's outputs from them are finite.
    inputs = dict(np.load(out / "inputs.npz"))
    session = onnxruntime.InferenceSession(str(out / "fixed.onnx"), providers=["CPUExecutionProvider"])
    assert all(np.isfinite(value).all() for value in session.run(None, inputs))
    # And the weights load in Ultralytics: `bench fixed.onnx --torch model.pt` runs them again.
    assert load_torch_model(str(out / "model.pt")).module is not None


def test_the_report_round_trips_through_json(seed_case):
    out, _ = seed_case
    text = (out / "report.json").read_text(encoding="utf-8")
    report = DoctorReport.from_json(text)
    assert report.to_json() == text
    assert report.source == "ultralytics-yaml" and report.model == "the seed case, yolov8n-pose.yaml"
    assert report.inputs == {"images": [1, 3, 128, 128]}
    # The files render again from the JSON alone, as written.
    assert doctor_markdown.render(report) == (out / "summary.md").read_text(encoding="utf-8")
    assert doctor_html.render(report) == (out / "report.html").read_text(encoding="utf-8")


def test_the_fix_is_real_and_the_summary_names_it(seed_case):
    out, _ = seed_case
    report = DoctorReport.from_json((out / "report.json").read_text(encoding="utf-8"))
    od301 = next(change for change in report.changes if change["rule"] == "OD301")
    assert (od301["before"], od301["after"]) == (1, 0)
    assert "OD301" in [f.rule for f in api.diagnose(out / "original.onnx").findings]
    assert "OD301" not in [f.rule for f in api.diagnose(out / "fixed.onnx").findings]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| warning | OD301 unfolded-constant | 1 → 0 |" in summary
    assert "| fold-constants | applied | OD301 |" in summary
    steps = {row["step"]: row for row in report.bench["rows"]}
    applied = [step["pass"] for step in report.fix["passes"] if step["status"] == "applied"]
    assert "fold-constants" in applied
    assert set(steps) == {"original", *(f"after {name}" for name in applied), "PyTorch"}
    # Each verdict the bench gave is in the summary, on its row.
    after = steps["after fold-constants"]
    verdict = after["versus_original"]["verdict"]
    row = next(line for line in summary.splitlines() if line.startswith("| after fold-constants | ort-cpu"))
    assert verdict in row and steps["original"]["versus_torch"]["verdict"] in summary
    # PyTorch ran the same weights as the export (saved .pt), on the same inputs: equal terms.
    assert not report.bench["differences"]


def test_the_seed_case_times_ultralytics_predict_stage_by_stage(seed_case):
    out, _ = seed_case
    report = DoctorReport.from_json((out / "report.json").read_text(encoding="utf-8"))
    predict = report.ultralytics_predict
    models = {model["name"]: model for model in predict["models"]}
    assert list(models) == ["PyTorch (.pt)", "ONNX export", "ONNX fixed"]
    # 1280x960 frames at 128 px: the .pt letterboxes 96x128, the fixed-shape exports 128x128.
    assert [model["input_shapes"] for model in models.values()] == [[[1, 3, 96, 128]], *[[[1, 3, 128, 128]]] * 2]
    assert all(model["stages"][stage]["median"] > 0 for model in models.values()
               for stage in ("preprocess", "inference", "postprocess"))
    letterbox = next(cause for cause in predict["causes"] if cause["cause"] == "letterbox")
    assert letterbox["applies"] and "ONNX fixed computes 1.33x the pixels of PyTorch (.pt)" in letterbox["text"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    section = summary.split("## Ultralytics predict(), stage by stage\n", 1)[1].split("\n## ", 1)[0]
    assert "| ONNX fixed | ONNX Runtime, CPUExecutionProvider on cpu | 128x128 | float32 |" in section
    assert "- **applies**: letterbox (height x width per image): PyTorch (.pt) 96x128 (12,288 px, rectangular)" in section
    assert "Ultralytics predict(), stage by stage" in (out / "report.html").read_text(encoding="utf-8")


def test_the_html_report_renders_in_chromium(seed_case, tmp_path):
    out, _ = seed_case
    page = out / "report.html"
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 5  # bench, op types, blocks, slowest layers, beside PyTorch
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    colors = screenshot_colors(page, tmp_path, 2400)
    assert len(colors) > 50, "the page is blank"
    assert colors.get((0x09, 0x69, 0xDA), 0) > 2000, "no bar chart drawn"
    assert colors.get((0x82, 0x50, 0xDF), 0) > 500, "no PyTorch bar drawn"


def test_an_onnx_input_needs_no_export_and_is_only_read(yolo, tmp_path, monkeypatch):
    source = yolo["yolov8n-pose-dynamic"]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    fixes = []
    real_fix = api.fix
    # Counted, not replaced: the model is fixed once, and bench times what that fix kept.
    monkeypatch.setattr(api, "fix", lambda *arguments, **options: fixes.append(1) or real_fix(*arguments, **options))
    report = doctor(source, tmp_path / "out", batch=1, imgsz=128, runs=5, seconds=2)
    assert len(fixes) == 1
    passes = [step["pass"] for step in report.fix["passes"] if step["status"] == "applied"]
    assert [row["step"] for row in report.bench["rows"]] == ["original", *(f"after {name}" for name in passes)]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    assert report.source == "onnx" and report.export is None and report.ultralytics_predict is None
    # The dynamic dims ran at --batch x 3 x --imgsz x --imgsz in every stage.
    assert report.inputs == {"images": [1, 3, 128, 128]}
    assert report.profile["inputs"] == {"images": [1, 3, 128, 128]}
    assert not any(row["runner"].startswith("torch-") for row in report.bench["rows"])
    assert any(line.startswith("the model has dynamic dims (images[0], images[2], images[3])") for line in report.decisions)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(FILES.values())


@pytest.mark.parametrize("arguments, expected", [
    (["missing.onnx"], "missing.onnx: no such file"),
    (["model.txt"], "expected an Ultralytics .pt or .yaml, or an .onnx"),
    (["not-a-model.onnx"], "not an ONNX model"),
    (["no-such-model.yaml"], "Ultralytics cannot load it"),
])
def test_a_bad_input_is_one_line_and_exit_2(arguments, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("model.txt").write_text("hello")
    Path("not-a-model.onnx").write_bytes(b"\x00not onnx")
    result = CliRunner().invoke(main, ["doctor", *arguments, *QUICK, "-o", "out"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("onnxdoctor: ") and result.output.count("\n") == 1
    assert expected in result.output
    # Nothing left behind: not the work folder, not the output folder doctor made.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.txt", "not-a-model.onnx"]


def test_the_output_folder_never_aliases_the_input(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    model = out / "original.onnx"
    shutil.copyfile(planted("clean"), model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    result = CliRunner().invoke(main, ["doctor", str(model), *QUICK, "-o", str(out)])
    assert result.exit_code == 2 and "refusing to overwrite the input model" in result.output
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
    file_out = tmp_path / "a-file"
    file_out.write_text("")
    result = CliRunner().invoke(main, ["doctor", str(model), *QUICK, "-o", str(file_out)])
    assert result.exit_code == 2 and "not a folder" in result.output


def test_doctor_help_imports_no_model_library():
    script = ("import sys\nfrom onnxdoctor.cli import main\nsys.argv = ['onnxdoctor', 'doctor', '--help']\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print(__import__('json').dumps(sorted({m.split('.')[0] for m in sys.modules} & "
              "{'onnx', 'numpy', 'torch', 'ultralytics', 'onnxruntime'})))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert "--imgsz" in result.stdout
