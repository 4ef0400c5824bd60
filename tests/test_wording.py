from onnx import helper

from onnxdoctor.wording import error_text, node_label, plural, shortened


def test_node_label():
    assert node_label(helper.make_node("Add", ["a", "b"], ["c"], name="add")) == "add"
    assert node_label(helper.make_node("Add", ["a", "b"], ["c"])) == "Add→c"
    assert node_label(helper.make_node("Print", ["a"], []), 7) == "Print#7"
    assert node_label(helper.make_node("Print", ["a"], [])) == "Print→?"


def test_plural_and_shortened():
    assert (plural(1, "node"), plural(6, "node")) == ("1 node", "6 nodes")
    assert shortened(["a", "b", "c"], 3) == "a, b, c"
    assert shortened(["a", "b", "c", "d", "e"], 3) == "a, b, … (3 more)"
    assert shortened(["Shape", "Gather"], 8, " → ") == "Shape → Gather"


def test_error_text_drops_onnxruntime_framing_and_source_paths():
    raw = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Div node.\n"
           "/onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:540 void f() "
           "Integer division by zero")
    assert error_text(raw) == "Non-zero status code returned while running Div node. Integer division by zero"
    assert error_text(ValueError("")) == "ValueError"
    assert error_text("x" * 900) == "x" * 500
    assert error_text("abc def", limit=3) == "abc"
