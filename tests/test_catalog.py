"""The rule catalog: every rule has an analyzer, a fixture and a test module, and ships in the wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile

from conftest import ROOT

from onnxdoctor.analyzers import load_analyzers
from onnxdoctor.catalog import find_rule, load_catalog, select_rules
from onnxdoctor.passes import all_passes
from onnxdoctor.report import Severity

FIX_PASSES = {rewrite.name for rewrite in all_passes()}


def test_every_rule_has_an_analyzer_and_every_analyzer_a_rule():
    assert set(load_catalog()) == set(load_analyzers())


def test_every_rule_has_a_test_module_and_a_planted_fixture():
    fixtures = "".join(path.read_text() for path in (ROOT / "fixtures").glob("planted*.py"))
    for rule in load_catalog().values():
        module = ROOT / "tests" / "rules" / f"test_{rule.code.lower()}_{rule.name.replace('-', '_')}.py"
        assert module.exists(), module
        assert f"def {rule.code.lower()}_" in fixtures, f"no planted fixture for {rule.code}"


def test_rules_are_complete_and_consistent():
    for code, rule in load_catalog().items():
        assert re.fullmatch(r"OD\d{3}", code)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
        assert isinstance(rule.severity, Severity)
        for text in (rule.title, rule.description, rule.tensorrt, rule.fix, rule.example):
            assert text.strip()
        assert rule.fix_pass is None or rule.fix_pass in FIX_PASSES


def test_lookup_by_code_or_name():
    assert find_rule("od301").name == "unfolded-constant"
    assert find_rule("unfolded-constant").code == "OD301"
    assert find_rule("OD999") is None
    assert select_rules(["OD2"], ["cycle"]) == {"OD201", "OD203"}


def test_wheel_ships_the_catalog(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("onnxdoctor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"onnxdoctor/rules/{code}.toml" for code in load_catalog()} <= names
    assert "onnxdoctor/render/report.schema.json" in names
