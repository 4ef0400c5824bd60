"""Shared test fixtures: the committed planted-defect models and the YOLO exports (built once, cached)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLANTED = ROOT / "fixtures" / "planted"
sys.path.insert(0, str(ROOT / "fixtures"))


def planted(name: str) -> Path:
    path = PLANTED / f"{name}.onnx"
    assert path.exists(), f"missing fixture {path}: run python fixtures/planted.py"
    return path


@pytest.fixture(scope="session")
def yolo() -> dict[str, Path]:
    """Real Ultralytics exports (yolov8n-pose static/dynamic, with and without onnxslim; yolov8n opset 12).

    Exported from the yaml on first use and cached in fixtures/yolo/. They need the `torch`
    extra; the README's set-up installs it, so a missing one is a failure, not a skip.
    """
    import yolo as yolo_fixtures

    return yolo_fixtures.build_all()


def rules_of(report) -> list[str]:
    return sorted({finding.rule for finding in report.findings})


def findings_of(report, rule: str):
    return [finding for finding in report.findings if finding.rule == rule]


@pytest.fixture(scope="session", autouse=True)
def private_engine_cache(tmp_path_factory):
    """Engines the tests build are cached in a temporary folder, never in the user's ~/.cache."""
    import os

    from onnxdoctor.engines.tensorrt import ENGINE_CACHE_VARIABLE

    previous = os.environ.get(ENGINE_CACHE_VARIABLE)
    os.environ[ENGINE_CACHE_VARIABLE] = str(tmp_path_factory.mktemp("engines"))
    yield
    if previous is None:
        del os.environ[ENGINE_CACHE_VARIABLE]
    else:
        os.environ[ENGINE_CACHE_VARIABLE] = previous


def screenshot_colors(page: Path, folder: Path, height: int) -> dict[tuple[int, int, int], int]:
    """Render an HTML page in headless Chromium and count the pixels of each colour; the test is
    skipped, saying why, where no chromium binary is installed."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium binary to render the HTML report (apt-get install chromium)")
    screenshot = folder / "screenshot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={screenshot}", f"--window-size=1000,{height}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(screenshot) as image:
        return {color: count for count, color in image.convert("RGB").getcolors(maxcolors=1 << 20)}
