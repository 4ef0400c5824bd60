"""OD505 fp16-activation-range: activations measured beyond FP16's range or a threshold (opt-in).

Runs only with `diagnose --fp16-activations` (API: `fp16_activations=True`): the model runs
once in ONNX Runtime on the CPU, on the user's inputs (`--inputs data.npz`, calibration data)
or on generated ones, and every float node output up to `--max-elements` elements is measured.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnxdoctor.activations import intermediate_float_tensors, run_with_intermediates, tensor_range
from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.analyzers import analyzer
from onnxdoctor.model import load_full_model
from onnxdoctor.ops.fp16 import FP16_MAX
from onnxdoctor.report import Finding
from onnxdoctor.verify import make_inputs


@analyzer("OD505", whole_model=True)
def fp16_activation_range(graph: GraphAnalysis) -> Iterator[Finding]:
    options = graph.options
    if not options.fp16_activations:
        return
    view = graph.view
    model = load_full_model(graph.model) if graph.model.external else graph.model.proto
    feeds = make_inputs(model, None, options.activation_inputs)
    source = (f"on the inputs in {options.activation_inputs}" if options.activation_inputs
              else "on generated inputs (seeded random values in [0, 1), not calibration data; give --inputs)")
    tensors = intermediate_float_tensors(model, view.types, options.element_limit)
    results = run_with_intermediates(model, feeds, tensors)
    threshold = options.activation_threshold
    for index in view.topological_order:
        for name in view.nodes[index].output:
            if name not in results or results[name].dtype.kind != "f":
                continue
            measured = tensor_range(name, results[name])
            if measured.largest <= threshold:
                continue
            overflows = measured.largest > FP16_MAX
            spacing = 0.0 if overflows else float(np.spacing(np.float16(measured.largest)))
            effect = ("beyond FP16's 65504: inf in FP16" if overflows
                      else f"above the threshold {threshold:g}; FP16 steps there are {spacing:g} apart")
            yield graph.finding(
                "OD505",
                f"{name} from {view.nodes[index].op_type} {view.label(index)} reached {measured.largest:.6g} {source}: {effect}",
                nodes=[index],
                tensors=[name],
                largest=measured.largest,
                overflows=overflows,
                threshold=threshold,
                generated_inputs=options.activation_inputs is None,
            )
