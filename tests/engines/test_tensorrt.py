"""TensorRT for real: TensorRT-RTX (the trt-rtx extra) parses and builds on this machine, no GPU.

These also hold the rule catalog to what it says about TensorRT.
"""

from __future__ import annotations

from conftest import planted

from onnxdoctor import api
from onnxdoctor.engines.tensorrt import build_engine


def test_fixed_yolo_parses_and_builds(yolo, tmp_path):
    api.fix(yolo["yolov8n-pose-static"], tmp_path / "fixed.onnx")
    build = build_engine(tmp_path / "fixed.onnx")
    assert build.parsed and build.built, build.errors
    assert build.layers > 100 and build.engine_bytes > 1_000_000


def test_unsorted_graph_parses_as_od201_says():
    # OD201: "TensorRT 10 and TensorRT-RTX sort the graph while parsing".
    build = build_engine(planted("od201_unsorted"), build=False)
    assert build.parsed, build.errors


def test_cycle_fails_to_parse_as_od202_says():
    # OD202: TensorRT's parser fails on a cycle, and no sorting can help.
    build = build_engine(planted("od202_cycle"), build=False)
    assert not build.parsed
    assert any("sort" in error.lower() for error in build.errors), build.errors


def test_int64_model_builds_before_and_after_fix_and_its_log_is_tied_to_rules(tmp_path):
    # TensorRT-RTX warns about every INT64 graph input and output; fix keeps the interface, so
    # the same warnings come back after it, and none is added.
    source = planted("od402_int64_data_tensor")
    api.fix(source, tmp_path / "fixed.onnx")
    builds = [build_engine(path) for path in (source, tmp_path / "fixed.onnx")]
    for build in builds:
        assert build.parsed and build.built, build.errors
        warnings = [(message.rule, message.text.split(": ", 1)[-1]) for message in build.log]
        assert warnings == [("OD402", "Make sure input ids has Int64 binding."),
                            ("OD402", "Make sure output shifted has Int64 binding.")]


def test_a_log_line_names_the_nodes_it_mentions():
    build = build_engine(planted("od601_rejected_nodes"), build=False)
    assert not build.parsed
    assert any("custom_scale" in message.nodes and message.rule == "OD601" for message in build.log)


def test_engines_are_cached_by_model_and_shapes(tmp_path, monkeypatch):
    import onnx

    from onnxdoctor.engines.base import RunnerUnavailable
    from onnxdoctor.engines.tensorrt import ENGINE_CACHE_VARIABLE, TensorRTRunner

    monkeypatch.setenv(ENGINE_CACHE_VARIABLE, str(tmp_path))
    model = onnx.load(planted("clean"))

    def activate(shapes):
        runner = TensorRTRunner(model, rtx=True, input_shapes=shapes)
        try:
            runner.activate()
        except RunnerUnavailable as reason:  # no GPU here: the engine is built, never run
            return runner.build, str(reason)
        raise AssertionError("an engine ran without a GPU")

    first, said = activate(None)
    assert first.built and not first.cached and "in " in said
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".engine", ".json"]
    again, said = activate(None)
    assert again.cached and again.engine == first.engine and "from the engine cache" in said
    assert [message.text for message in again.log] == [message.text for message in first.log]
    monkeypatch.setenv(ENGINE_CACHE_VARIABLE, "off")
    uncached, _ = activate(None)
    assert not uncached.cached
