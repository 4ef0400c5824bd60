"""The fp16 pass: FP16 where it holds, FP32 where rules or bisection say, verified, built by TensorRT-RTX."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner
from conftest import planted

from onnxdoctor import fix
from onnxdoctor.cli import main
from onnxdoctor.engines.compare import Tolerance
from onnxdoctor.engines.tensorrt import build_engine
from onnxdoctor.passes import PassOptions
from onnxdoctor.passes.fp16 import Fp16, convert_to_fp16
from onnxdoctor.verify import FP16_CONVERSION_TOLERANCE, FP32_TOLERANCE

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    found = {value.name: value.type.tensor_type.elem_type for value in (*inferred.graph.value_info, *inferred.graph.output)}
    found.update({tensor.name: tensor.data_type for tensor in model.graph.initializer})
    return found


def test_not_in_the_default_set_and_verified_at_the_fp16_tolerance(tmp_path):
    report = fix(planted("clean"), None)
    assert "fp16" not in [step.name for step in report.steps]
    report = fix(planted("clean"), tmp_path / "clean_fp16.onnx", passes=["fp16"])
    (step,) = report.steps
    assert step.status == "applied" and report.tolerances == {"fp16": FP16_CONVERSION_TOLERANCE}
    assert report.tolerance == FP32_TOLERANCE  # the other passes keep the model's own
    converted = onnx.load(tmp_path / "clean_fp16.onnx")
    # The interface keeps its FP32 types; the computation is FP16 between one Cast in and one out.
    assert [value.type.tensor_type.elem_type for value in (*converted.graph.input, *converted.graph.output)] == [FLOAT, FLOAT]
    assert [node.op_type for node in converted.graph.node].count("Cast") == 2
    types = _types(converted)
    assert types["conv_out"] == FLOAT16 and types["fc.weight_fp16"] == FLOAT16
    assert "fc.weight" not in types  # stored once, in the precision its reader uses


def test_precision_fp16_adds_the_pass_after_the_default_ones(tmp_path):
    output = tmp_path / "out.onnx"
    result = CliRunner().invoke(main, ["fix", str(planted("clean")), "-o", str(output), "--precision", "fp16",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    steps = [step["pass"] for step in json.loads(result.output)["passes"]]
    assert steps[-1] == "fp16" and "fold-constants" in steps
    record = json.loads(result.output)
    # fp16 at its own criterion; the exact passes before it at the model's, every element.
    assert record["tolerances"]["fp16"]["quantile"] == 0.99 and record["tolerance"]["quantile"] == 1.0
    assert any(tensor.data_type == FLOAT16 for tensor in onnx.load(output).graph.initializer)


def test_flagged_nodes_stay_fp32_and_say_why(tmp_path):
    report = fix(planted("od503_layernorm_epsilon"), None, passes=["fp16"])
    (step,) = report.steps
    # The only node is kept (OD503), so nothing changes at all.
    assert step.status == "unchanged" and "layer_norm (OD503" in step.summary
    report = fix(planted("od504_long_reduction"), tmp_path / "reduction.onnx", passes=["fp16"])
    (step,) = report.steps
    assert step.status == "applied"
    assert "divide_tiny (reaches 4.2e+09 in FP32, beyond FP16's 65504)" in step.summary
    types = _types(onnx.load(tmp_path / "reduction.onnx"))
    assert types["exps"] == FLOAT16 and types["y"] == FLOAT
    # sum_anchors reads the FP32 input and feeds only FP32 divide_tiny: it joins them rather than add two Casts.
    assert types["sums"] == FLOAT


def test_bisection_keeps_what_the_given_inputs_overflow(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=np.full((1, 8), 300, np.float32))
    # Without inputs: all FP16. With them: Mul amplify reaches 90000 and stays FP32.
    plain = fix(planted("od505_activation_overflow"), None, passes=["fp16"]).steps[0]
    assert plain.status == "applied" and "amplify" not in plain.summary
    measured = fix(planted("od505_activation_overflow"), None, passes=["fp16"], inputs=data).steps[0]
    assert "amplify (reaches 9e+04 in FP32" in measured.summary


def test_bisection_finds_nodes_that_break_the_tolerance():
    # FP16 stores 1000.3 as 1000.5: MatMul project is then 2e-4 off, beyond rtol 1e-4, and must
    # stay FP32 with Neg negate. Relu → Sigmoid is exact enough in FP16 and stays there.
    x = onnx.helper.make_tensor_value_info("x", FLOAT, [1, 64])
    outputs = [onnx.helper.make_tensor_value_info(name, FLOAT, [1, 64]) for name in ("y", "probability")]
    nodes = [onnx.helper.make_node("MatMul", ["x", "weight"], ["projected"], name="project"),
             onnx.helper.make_node("Neg", ["projected"], ["y"], name="negate"),
             onnx.helper.make_node("Relu", ["x"], ["r"], name="relu"),
             onnx.helper.make_node("Sigmoid", ["r"], ["probability"], name="sigmoid")]
    weight = onnx.numpy_helper.from_array(np.full((64, 64), 1000.3, np.float32), "weight")
    graph = onnx.helper.make_graph(nodes, "project", [x], outputs, [weight])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    # An absolute atol, every element (by range, 1e-3 of y's 3e4 would forgive the MatMul's rounding).
    assert "project" not in Fp16().run(model, PassOptions(tolerances={"fp16": Tolerance(1e-2, 1e-3)})).summary
    result = Fp16().run(model, PassOptions(tolerances={"fp16": Tolerance(1e-4, 1e-3)}))
    # Bisection keeps one of the two in FP32 and the other joins it rather than add two Casts.
    assert "(bisection)" in result.summary and ("project (adds" in result.summary or "negate (adds" in result.summary)
    types = _types(result.model)
    assert types["r"] == FLOAT16 and types["projected"] == FLOAT and types["weight"] == FLOAT


def test_keep_io_types_off_converts_the_interface():
    converted = convert_to_fp16(onnx.load(planted("clean")), set(), keep_io_types=False)
    assert [value.type.tensor_type.elem_type for value in (*converted.graph.input, *converted.graph.output)] == [FLOAT16, FLOAT16]
    session = onnxruntime.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": np.zeros((1, 3, 16, 16), np.float16)})
    assert logits.dtype == np.float16


@pytest.mark.parametrize("name", ["yolov8n-opset12", "yolov8n-pose-dynamic-slim"])
def test_yolo_verified_and_built_by_tensorrt_rtx(yolo, tmp_path, name):
    output = tmp_path / f"{name}-fp16.onnx"
    report = fix(yolo[name], output, passes=["fp16"])
    (step,) = report.steps
    assert step.status == "applied", step.summary
    # Verified with atol a share of each output's range (boxes and keypoints are in pixels), on
    # 99% of each output's elements.
    assert report.tolerances["fp16"] == Tolerance(1e-2, 1e-3, atol_by_range=True, quantile=0.99)
    assert all(difference.passed for difference in step.verification.outputs)
    converted = onnx.load(output)
    assert sum(tensor.data_type == FLOAT16 for tensor in converted.graph.initializer) > 0
    build = build_engine(output, input_shapes=dict(report.inputs))
    assert build.parsed and build.built, build.errors
