"""profile --backend trt-rtx: the engine is built for real by TensorRT-RTX; without a GPU its
layers come untimed, mapped to the ONNX nodes, with the reason they have no time."""

from __future__ import annotations

import json
import subprocess
import sys

from onnxdoctor import api
from onnxdoctor.profile.tensorrt_profile import profile_tensorrt

SMALL = {"images": (1, 3, 128, 128)}


def test_untimed_layers_map_to_nodes_and_say_why(yolo, tmp_path):
    report = profile_tensorrt(yolo["yolov8n-pose-dynamic"], rtx=True, input_shapes=SMALL)
    assert report.not_timed and "no NVIDIA GPU" in report.not_timed
    assert all(layer.time is None for layer in report.layers)
    import onnx

    names = {node.name for node in onnx.load(yolo["yolov8n-pose-dynamic"]).graph.node}
    own = {layer.name: layer.nodes for layer in report.layers if not layer.inserted}
    assert all(len(nodes) == 1 and nodes[0] in names for nodes in own.values())
    # Named after the node; a node imported as several layers carries a counter (Split: one Slice per
    # output); a layer named after a tensor maps to the node that produces it.
    assert own["/model.0/conv/Conv"] == ["/model.0/conv/Conv"] and own["/model.2/Split_7"] == ["/model.2/Split"]
    assert own["/model.22/Constant_output_0"] == ["/model.22/Constant"]
    assert report.engine_bytes > 1_000_000 and dict(report.types)["CONVOLUTION"] == 73
    def shape_arithmetic(profile):
        return sum(layer.name.startswith("ONNXTRT_") for layer in profile.layers)

    dynamic_inserted = shape_arithmetic(report)
    assert dynamic_inserted > 100 and "shape arithmetic" in report.notes[0]
    # Folded at a static shape, the parser has far less shape arithmetic to add.
    api.fix(yolo["yolov8n-pose-dynamic"], tmp_path / "static.onnx", static_shapes=SMALL)
    fixed = profile_tensorrt(tmp_path / "static.onnx", rtx=True)
    assert shape_arithmetic(fixed) < dynamic_inserted / 2  # measured: 333 → 102


def test_cli_json_and_refused_options(yolo):
    done = subprocess.run([sys.executable, "-m", "onnxdoctor", "profile", str(yolo["yolov8n-pose-static"]),
                           "--backend", "trt-rtx", "--format", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["not_timed"] and record["layers"][0]["nodes"] == ["/model.0/conv/Conv"]
    refused = subprocess.run([sys.executable, "-m", "onnxdoctor", "profile", str(yolo["yolov8n-pose-static"]),
                              "--backend", "trt-rtx", "--torch", "yolov8n-pose.yaml"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
