"""Renderers: turn reports into text, JSON, SARIF or GitHub annotations. They never compute."""

from __future__ import annotations

import re
from json import dumps  # not `import json`: that name is this package's JSON renderer

from onnxdoctor.catalog import Rule, load_catalog
from onnxdoctor.report import Finding

FORMATS = ("text", "json", "sarif", "github")

# Names come from the model: a newline in one would start a new line of output (in a CI log,
# a new `::error` workflow command), an escape code would reach the terminal, and a
# bidirectional override would reorder what the reader sees. Control characters (C0, DEL,
# C1), line and paragraph separators, and bidirectional controls are shown escaped instead.
_LEFT_RAW_BY_JSON = "\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\x00-\x1f{_LEFT_RAW_BY_JSON}]")
_RAW_IN_JSON = re.compile(f"[{_LEFT_RAW_BY_JSON}]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    character = match.group()
    code = ord(character)
    return _SHORT_ESCAPES.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """Text as one line with no control characters: 'a\\nb' is shown as `a\\nb`, ESC as `\\x1b`.

    Every renderer passes text from the model (messages, names, paths, notes) through here,
    so a finding reads the same in every format.
    """
    return _UNPRINTABLE.sub(_escaped, text)


def json_text(value) -> str:
    """JSON with no raw control character: json.dumps escapes C0 itself but leaves DEL, C1
    and the separators as they are (valid JSON, yet raw on a terminal); those become \\uXXXX."""
    dumped = dumps(value, indent=2, ensure_ascii=False)
    return _RAW_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", dumped) + "\n"


def rule_of(finding: Finding) -> Rule:
    return load_catalog()[finding.rule]


def fix_command(rule: Rule, finding: Finding | None = None) -> str | None:
    """The command that fixes a finding ('' when none can), or the rule's pass in general."""
    if finding is not None and finding.fix is not None:
        return finding.fix
    return f"onnxdoctor fix --passes {rule.fix_pass}" if rule.fix_pass else None


def output_console():
    """The console reports print to: the terminal's width there; piped or captured, wide enough
    for whole tables instead of cropping them to 80 columns."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=220)
    return console
