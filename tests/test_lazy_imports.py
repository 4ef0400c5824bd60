"""diagnose must start fast and work without the heavy optional packages."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import planted

HEAVY = ("torch", "ultralytics", "tensorrt", "tensorrt_rtx")


def diagnosed_then(expression: str) -> tuple[str, str]:
    """`onnxdoctor diagnose --format json` on od301_unfolded_constant in a fresh interpreter, then
    `expression` (of sys.modules) printed: its JSON report and the expression's last line."""
    script = (
        "import sys\nfrom onnxdoctor.cli import main\n"
        f"sys.argv = ['onnxdoctor', 'diagnose', {str(planted('od301_unfolded_constant'))!r}, '--format', 'json']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print({expression})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return result.stdout, result.stdout.splitlines()[-1]


def test_diagnose_imports_no_heavy_package():
    report, heavy = diagnosed_then(
        f"__import__('json').dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert json.loads(heavy) == []
    assert '"OD301"' in report


def test_diagnose_works_with_heavy_packages_unimportable(tmp_path):
    # A stub path that makes every heavy package fail to import, as on a machine without them.
    for name in HEAVY:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('not installed here')\n")
    result = subprocess.run([sys.executable, "-m", "onnxdoctor", "diagnose", str(planted("od202_cycle"))],
                            capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode == 1, result.stderr
    assert "OD202" in result.stdout


LIGHT_COMMANDS = (["--help"], ["rules"], ["explain", "OD301"], ["bench", "--help"], ["profile", "--help"], ["doctor", "--help"],
                  ["fix", "--help"], ["diagnose", "--help"])
NOT_FOR_HELP = ("onnx", "numpy", "networkx", "onnxruntime", "onnx_graphsurgeon", "polygraphy", *HEAVY)


def test_help_rules_and_explain_import_no_model_library():
    for command in LIGHT_COMMANDS:
        script = (
            "import sys\nfrom onnxdoctor.cli import main\n"
            f"sys.argv = ['onnxdoctor', *{command!r}]\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as stop:\n"
            "    assert not stop.code, stop.code\n"
            f"print(__import__('json').dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({NOT_FOR_HELP!r}))))\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stderr)
        assert json.loads(result.stdout.splitlines()[-1]) == [], command


def test_the_package_exposes_its_api_lazily():
    script = ("import sys, onnxdoctor\n"
              "assert 'onnx' not in sys.modules and 'numpy' not in sys.modules\n"
              "assert callable(onnxdoctor.diagnose) and 'onnx' in sys.modules\n"
              "print(sorted(dir(onnxdoctor)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("diagnose", "fix", "bench", "profile", "Finding", "Report", "OnnxDoctorError"):
        assert name in result.stdout


def test_api_functions_stay_callable_after_their_packages_are_imported():
    # bench, profile and doctor are packages as well as API functions: importing a module of the
    # package rebinds the name to the package, which must still be the function when called.
    script = ("import onnxdoctor, onnxdoctor.cli, onnxdoctor.bench.stats, onnxdoctor.profile.report, "
              "onnxdoctor.doctor.report\n"
              "from onnxdoctor.bench.run import BenchOptions\n"
              f"report = onnxdoctor.bench({str(planted('clean'))!r}, BenchOptions(backends=('ort-cpu',), runs=3, "
              "seconds=0.2))\n"
              "assert report.rows[0].summary.median > 0\n"
              "assert callable(onnxdoctor.profile) and callable(onnxdoctor.doctor)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_diagnose_of_an_acyclic_model_imports_no_networkx():
    # networkx is for describing cycles; building its graph for every model cost seconds at 100k nodes.
    report, imported = diagnosed_then("'networkx' in sys.modules")
    assert imported == "False"
    assert '"OD301"' in report
