"""The rule catalog: rules/*.toml read into Rule objects. The single home of a rule's words."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import tomllib

from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.report import Severity

_PACKAGE = Path(__file__).resolve().parent
# Installed wheels carry the catalog inside the package; a source checkout keeps it at the top.
_CATALOG_FOLDERS = (_PACKAGE / "rules", _PACKAGE.parent / "rules")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    title: str
    description: str
    tensorrt: str
    fix: str
    fix_pass: str | None
    example: str


def catalog_folder() -> Path:
    for folder in _CATALOG_FOLDERS:
        if folder.is_dir():
            return folder
    raise RuntimeError(f"rule catalog not found in {', '.join(map(str, _CATALOG_FOLDERS))}")


def _paragraphs(text: str) -> str:
    """Catalog prose is wrapped for reading in the file; unwrap it so terminals wrap it to fit."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.strip().split("\n\n"))


def _read_rule(path: Path) -> Rule:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for key in ("description", "tensorrt", "fix", "example"):
        data[key] = _paragraphs(data[key])
    rule = Rule(
        code=data["code"],
        name=data["name"],
        severity=Severity.parse(data["severity"]),
        title=data["title"],
        description=data["description"].strip(),
        tensorrt=data["tensorrt"].strip(),
        fix=data["fix"].strip(),
        fix_pass=data.get("fix_pass") or None,
        example=data["example"].strip(),
    )
    if path.stem != rule.code:
        raise RuntimeError(f"{path}: file name does not match rule code {rule.code}")
    return rule


@functools.cache
def load_catalog() -> dict[str, Rule]:
    """Every rule by code, in code order."""
    rules = [_read_rule(path) for path in sorted(catalog_folder().glob("OD*.toml"))]
    return {rule.code: rule for rule in rules}


def find_rule(code_or_name: str) -> Rule | None:
    """A rule by its code (OD301, od301) or its name (unfolded-constant)."""
    wanted = code_or_name.strip()
    for rule in load_catalog().values():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None


def select_rules(select: list[str] | None, ignore: list[str] | None) -> set[str]:
    """Codes kept by ruff-style --select/--ignore: each entry a code, a code prefix (OD3) or a name."""

    def matches(rule: Rule, pattern: str) -> bool:
        pattern = pattern.strip()
        return rule.code.startswith(pattern.upper()) or rule.name == pattern.lower()

    rules = load_catalog().values()
    for pattern in (select or []) + (ignore or []):
        if not any(matches(rule, pattern) for rule in rules):
            raise OnnxDoctorError(f"no rule matches {pattern!r} (see `onnxdoctor rules`)")
    kept = {rule.code for rule in rules if not select or any(matches(rule, p) for p in select)}
    return {code for code in kept if not any(matches(load_catalog()[code], p) for p in ignore or [])}
