"""The context analyzers read: one graph's view, with the model, validation and evaluation around it."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from onnxdoctor.evaluation import DEFAULT_ELEMENT_LIMIT, Evaluation, evaluate_constants
from onnxdoctor.graph import GraphView
from onnxdoctor.model import LoadedModel
from onnxdoctor.report import Finding
from onnxdoctor.validation import ValidationResult


@dataclass(frozen=True)
class AnalysisOptions:
    # Evaluate constant subgraphs with ONNX Runtime (OD301 values, OD302, OD403 on computed values).
    evaluate: bool = True
    # Tensors above this many elements are not read or computed.
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    # One evaluation run stops after this many seconds (None: isolation.EVALUATION_TIME_LIMIT).
    time_limit: float | None = None
    # Run the model once and measure its activations against FP16's range (OD505); opt-in.
    fp16_activations: bool = False
    # The inputs for that run (.npz, calibration data); None: generated ones.
    activation_inputs: str | None = None
    # Activations above this magnitude are reported (ModelOpt AutoCast's default).
    activation_threshold: float = 512.0
    # Run TensorRT's ONNX parser on the model (the OD601/OD602 rules); needs tensorrt or tensorrt_rtx.
    tensorrt: bool = False
    # The TensorRT target the OD6xx rules speak for (onnxdoctor.ops.tensorrt.TARGETS); None: the
    # installed one. Given, or with `tensorrt`, the table-based OD603/OD604 run too.
    target: str | None = None

    @property
    def tensorrt_facts(self) -> bool:
        """Whether the TensorRT target's facts apply (rules OD603, OD604)."""
        return self.tensorrt or self.target is not None


class GraphAnalysis:
    """Everything known about one graph (main graph, subgraph body or function)."""

    def __init__(
        self,
        view: GraphView,
        model: LoadedModel,
        validation: ValidationResult,
        options: AnalysisOptions,
        parent: GraphAnalysis | None = None,
    ) -> None:
        self.view = view
        self.model = model
        self.validation = validation
        self.options = options
        self.parent = parent
        self.children = [GraphAnalysis(sub, model, validation, options, self) for sub in view.subviews]

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def is_function(self) -> bool:
        return self.view.scope.startswith("function ")

    @functools.cached_property
    def evaluation(self) -> Evaluation:
        # Function bodies have no values to start from: their constants are found by structure only.
        if self.is_function:
            return Evaluation()
        outer = self.parent.evaluation.values if self.parent else {}
        return evaluate_constants(self.view, self.model, self.options.element_limit, outer, run=self.options.evaluate,
                                  time_limit=self.options.time_limit)

    @functools.cached_property
    def tensorrt_capability(self):
        """TensorRT's parser run on the whole model, once, for the OD601/OD602 rules (only with
        options.tensorrt): (Capability, Target), see onnxdoctor.engines.tensorrt.model_capability."""
        if self.parent is not None:
            return self.parent.tensorrt_capability
        from onnxdoctor.engines.tensorrt import model_capability

        return model_capability(self.model, self.options.target)

    def value(self, tensor: str):
        """A constant's value if known (read or evaluated), else None."""
        return self.evaluation.values.get(tensor)

    def describe_result(self, tensor: str) -> str | None:
        """What evaluating a tensor gave: its value when small, else its type and shape."""
        value = self.value(tensor)
        if value is not None:
            return describe_value(value)
        if tensor in self.evaluation.shapes:
            dtype, shape = self.evaluation.shapes[tensor]
            return f"{dtype}[{', '.join(map(str, shape))}]"
        return None

    def finding(
        self,
        rule: str,
        message: str,
        *,
        nodes: Iterable[int] = (),
        node_names: Iterable[str] = (),
        tensors: Iterable[str] = (),
        fix: str | None = None,
        **details,
    ) -> Finding:
        return Finding(
            rule=rule,
            message=message,
            nodes=tuple(self.view.labels(nodes)) + tuple(node_names),
            tensors=tuple(tensors),
            graph=self.view.scope,
            details=details,
            fix=fix,
        )


def describe_value(value, limit: int = 8) -> str:
    """A constant's value in a message: '[2]', '4', 'float32[64, 3, 3, 3]' when large."""
    if value.size > limit:
        return f"{value.dtype}[{', '.join(map(str, value.shape))}]"
    if value.ndim == 0:
        return str(value.item())
    return "[" + ", ".join(str(item) for item in value.reshape(-1).tolist()) + "]"
