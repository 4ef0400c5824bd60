"""OD604 plugin-required: nodes of a custom domain, which TensorRT can only run as plugins."""

from __future__ import annotations

from collections.abc import Iterator

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.ops.tensorrt import resolve_target
from onnxdoctor.report import Finding

_STANDARD_DOMAINS = ("", "ai.onnx")
# TensorRT's own plugins are named <Name>_TRT (EfficientNMS_TRT, ROIAlign_TRT, ...).
_TENSORRT_PLUGIN_SUFFIX = "_TRT"


@analyzer("OD604")
def plugin_required(graph: GraphAnalysis) -> Iterator[Finding]:
    if not graph.options.tensorrt_facts:
        return
    target = resolve_target(graph.options.target)
    # A call of a function the model defines is inlined by the parser: no plugin needed.
    functions = {(function.domain, function.name) for function in graph.model.proto.functions}
    for index, node in enumerate(graph.view.nodes):
        if node.domain in _STANDARD_DOMAINS or (node.domain, node.op_type) in functions:
            continue
        version = next((attribute.s.decode(errors="replace") for attribute in node.attribute
                        if attribute.name == "plugin_version"), "1")
        if node.op_type.endswith(_TENSORRT_PLUGIN_SUFFIX):
            where = ("TensorRT's plugin library (libnvinfer_plugin) provides it: load it with the engine"
                     if target.ships_plugin_library else
                     f"{target.title} ships no plugin library: build and register this plugin yourself")
        else:
            where = "no TensorRT library provides it: register a plugin of that name, or replace the op at export"
        yield graph.finding(
            "OD604",
            f"{node.op_type} {graph.view.label(index)} (domain {node.domain}) has no TensorRT importer: the engine "
            f"needs a plugin {node.op_type} version {version} at build and run time; {where}",
            nodes=[index],
            fix="",
            domain=node.domain,
            target=target.name,
            source=target.plugin_source,
        )
