"""How messages word things, in one place: node names, counts, shortened lists, error text.

No model library here: renderers and the CLI may use it without loading onnx or numpy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ONNX Runtime's own framing around its message, and the C++ source location it appends.
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_ORT_SOURCE = re.compile(r"\S*onnxruntime_src/\S+:\d+\s+.*?\)\s*(?:\[with [^\]]*\]\s*)?")
# Longer error texts are cut: a report line, not a log.
ERROR_TEXT_LIMIT = 500


def node_label(node, index: int | None = None) -> str:
    """The name users search for in Netron (an onnx.NodeProto's). An unnamed node is named by
    its op and the first tensor it produces, or by its position `index` when it produces none."""
    if node.name:
        return node.name
    produced = next((name for name in node.output if name), None)
    if produced:
        return f"{node.op_type}→{produced}"
    return f"{node.op_type}#{index}" if index is not None else f"{node.op_type}→?"


def plural(count: int, word: str) -> str:
    """'1 node', '6 nodes'."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def shortened(items: Iterable[str], limit: int, separator: str = ", ") -> str:
    """Items joined, at most `limit` shown: past that, the first `limit` - 1 and how many more
    ('a, b, … (3 more)')."""
    items = list(items)
    if len(items) > limit:
        items = items[: limit - 1] + [f"… ({len(items) - limit + 1} more)"]
    return separator.join(items)


def error_text(error: BaseException | str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """An error as one readable line: whitespace collapsed, ONNX Runtime's framing, source paths
    and C++ signatures removed, cut at `limit` characters; the error's type when it says nothing."""
    text = " ".join(str(error).split())
    text = _ORT_PREFIX.sub("", text)
    text = _ORT_SOURCE.sub("", text).strip()
    return text[:limit] or type(error).__name__
