"""OD602 against TensorRT-RTX's real parser: the parts around rejected nodes, as the parser counts them."""

from __future__ import annotations

import tensorrt_rtx
from conftest import findings_of, planted

from onnxdoctor import diagnose
from onnxdoctor.engines.tensorrt import check_capability
from onnxdoctor.model import load_model


def test_two_parts_around_the_custom_op():
    (finding,) = findings_of(diagnose(planted("od602_partitioned"), tensorrt=True), "OD602")
    assert finding.nodes == ("custom_scale",)
    assert finding.details["subgraphs"] == [["conv1", "relu1"], ["conv2", "relu2"]]
    assert "splits into 2 TensorRT subgraphs" in finding.message


def test_the_partition_is_the_parsers_own():
    # With one rejected node, the parser's subgraph report (supports_model_v2) is the whole partition.
    loaded = load_model(planted("od602_partitioned"))
    capability = check_capability(loaded.proto, tensorrt_rtx, loaded.path)
    names = [node.name for node in loaded.proto.graph.node]
    parsers = [[names[index] for index in subgraph] for subgraph in capability.parser_subgraphs]
    (finding,) = findings_of(diagnose(planted("od602_partitioned"), tensorrt=True), "OD602")
    assert finding.details["subgraphs"] == parsers


def test_one_part_is_no_finding():
    # od603's only rejected node (nonzero) leaves one part: nms.
    assert findings_of(diagnose(planted("od603_data_dependent_shape"), tensorrt=True), "OD602") == []
