"""fp16 (OD501-OD505): convert a model to FP16, keeping in FP32 the nodes FP16 breaks.

Not in the default set: `fix --passes fp16`. Strongly typed TensorRT (11, TensorRT-RTX) builds an
FP16 engine from an FP16 model, so the conversion happens here, where it can be checked.

1. Nodes kept in FP32 from the start: those the FP16 rules name (OD501 overflowing weights,
   OD502 scales that become zero, OD503 epsilons, fills and masks) and those whose FP32 output
   was measured beyond 65504 on the verification inputs.
2. Every other node computes in FP16 where its ONNX schema takes FP16 for its float inputs;
   weights are stored in the precision their readers use (both, when readers differ); one Cast
   per tensor and precision joins FP16 and FP32 nodes, and a node left alone between FP32
   neighbours joins them rather than add two Casts. Graph inputs and outputs keep their types
   by default (a Cast at each), so the interface is unchanged.
3. The candidate runs in ONNX Runtime (CUDA when present, else CPU) on the verification inputs
   against the FP32 outputs, under the pipeline's criterion for this pass
   (verify.FP16_CONVERSION_TOLERANCE: 99% of each output's elements within the bound, none made
   NaN or infinite). When it misses the tolerance, the nodes are ranked by the error each adds (measured
   on every intermediate tensor), and a bisection finds the fewest of the worst to keep in FP32
   until it passes. The summary names each node kept and why.

ONNX Runtime's CPU provider computes ops it has no FP16 kernel for in FP32 (it inserts Casts
itself), so the check here can be kinder than a GPU run; the pipeline's verification (CUDA when
present) is the one that counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxdoctor.activations import TOTAL_ELEMENT_LIMIT, intermediate_float_tensors, run_with_intermediates
from onnxdoctor.engines import isolated
from onnxdoctor.engines.compare import Tolerance, compare_output
from onnxdoctor.graph import outer_scope_names
from onnxdoctor.model import LoadedModel, attribute_subgraphs
from onnxdoctor.ops.fp16 import FLOAT_TYPE_ATTRIBUTES, FP16_MAX, SHAPE_READERS
from onnxdoctor.passes import Pass, PassOptions, PassRefused, PassResult, compare_models, infer_types
from onnxdoctor.verify import FP16_CONVERSION_TOLERANCE, make_inputs

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
FP32, FP16 = "fp32", "fp16"
# The rules whose findings name nodes to keep in FP32 (OD504's risks are left to measurement).
_KEEPING_RULES = ("OD501", "OD502", "OD503")
# Most nodes named in the summary.
_NAMED = 12


class Fp16(Pass):
    name = "fp16"
    resolves = ("OD501", "OD502", "OD503", "OD504", "OD505")
    description = "convert to FP16, keeping in FP32 the nodes FP16 breaks (named by rules, found by bisection)"
    default = False
    tolerance = FP16_CONVERSION_TOLERANCE

    def __init__(self, keep_io_types: bool = True, tolerance: Tolerance | None = None) -> None:
        # False: inputs and outputs become FP16 too. The pipeline then cannot verify the result
        # against the FP32 original (ONNX Runtime refuses FP32 feeds for FP16 inputs).
        self.keep_io_types = keep_io_types
        # Another criterion for this pass and its verification (an absolute atol, every element:
        # measured on an H200, yolov8n-pose's pixel outputs then kept 272 of 273 nodes in FP32).
        if tolerance is not None:
            self.tolerance = tolerance

    def run(self, model: onnx.ModelProto, options: PassOptions) -> PassResult:
        if not any(_float_nodes(model)):
            return PassResult(model, False, "no FP32 computation to convert")
        tolerance = options.tolerances.get(self.name, self.tolerance)
        nodes = list(model.graph.node)
        keep = _flagged_nodes(model, options)
        feeds = make_inputs(model, options.static_shapes, options.inputs)
        # Every activation the total cap allows: a node whose output is not measured cannot be ranked.
        probed = intermediate_float_tensors(model, infer_types(model), TOTAL_ELEMENT_LIMIT)
        reference = run_with_intermediates(model, feeds, probed)
        for index, node in enumerate(nodes):
            largest = max((_largest(reference[name]) for name in node.output if name in reference), default=0.0)
            if largest > FP16_MAX and index not in keep and node.op_type != "Constant":
                keep[index] = f"reaches {largest:.4g} in FP32, beyond FP16's 65504"
        outputs = [value.name for value in model.graph.output]

        def passes(candidate: onnx.ModelProto) -> bool:
            results = run_with_intermediates(candidate, feeds, [])
            return all(_within(results[name], reference[name], tolerance) for name in outputs)

        candidate, precision = _convert(model, set(keep), self.keep_io_types)
        if not passes(candidate):
            ranked = _rank_by_added_error(candidate, nodes, keep, precision, feeds, reference, probed, tolerance)
            found = _bisect(model, keep, ranked, self.keep_io_types, passes)
            if found is None:
                raise PassRefused(
                    f"no FP16 conversion meets {tolerance.describe()} on these inputs, even with every node "
                    "ONNX Runtime measured as adding error kept in FP32"
                )
            for index, error in found:
                keep[index] = ("not measured; kept by bisection" if np.isnan(error)
                               else f"adds {max(error, 0.0):.3g}× the tolerance in FP16 (bisection)")
            candidate, precision = _convert(model, set(keep), self.keep_io_types)
        result = compare_models(model, candidate, "")
        casts = sum(1 for node in candidate.graph.node if node.op_type == "Cast") - sum(
            1 for node in model.graph.node if node.op_type == "Cast"
        )
        in_fp16 = sum(1 for computed in precision.values() if computed == FP16)
        kept = [f"{_label(nodes, index)} ({reason})" for index, reason in sorted(keep.items())]
        result.summary = (
            f"{in_fp16} nodes in FP16, {len(precision) - in_fp16} in FP32 ({len(keep)} kept there for a reason), "
            f"{casts} Casts added"
            + (f"; kept: {'; '.join(kept[:_NAMED])}" + (f" and {len(kept) - _NAMED} more" if len(kept) > _NAMED else "")
               if kept else "")
            + f"; checked on {isolated.device()} at {tolerance.describe()}"
        )
        return result


def _float_nodes(model: onnx.ModelProto):
    floats = {tensor.name for tensor in model.graph.initializer if tensor.data_type == FLOAT}
    floats |= {value.name for value in model.graph.input if value.type.tensor_type.elem_type == FLOAT}
    return (node for node in model.graph.node if any(name in floats for name in node.input) or node.op_type == "Constant")


def _label(nodes: list[onnx.NodeProto], index: int) -> str:
    """The name findings give a node (GraphView.label): its name, else its op and first output."""
    node = nodes[index]
    if node.name:
        return node.name
    produced = next((name for name in node.output if name), None)
    return f"{node.op_type}→{produced}" if produced else f"{node.op_type}#{index}"


def _flagged_nodes(model: onnx.ModelProto, options: PassOptions) -> dict[int, str]:
    """Main-graph nodes the FP16 rules name, with the rule and its message as the reason."""
    from onnxdoctor.analysis import AnalysisOptions
    from onnxdoctor.api import diagnose_model

    # Constants are read as they are: no evaluation needed.
    report = diagnose_model(LoadedModel(path=Path("<model being converted>"), proto=model), set(_KEEPING_RULES),
                            AnalysisOptions(evaluate=False, element_limit=options.element_limit))
    by_label = {_label(list(model.graph.node), index): index for index in range(len(model.graph.node))}
    keep: dict[int, str] = {}
    for finding in report.findings:
        if finding.graph != "main":
            continue
        for label in finding.nodes:
            index = by_label.get(label)
            if index is not None and model.graph.node[index].op_type != "Constant":
                keep.setdefault(index, f"{finding.rule}: {finding.message.split(':')[0]}")
    return keep


def _largest(value: np.ndarray) -> float:
    if value.dtype.kind != "f" or not value.size:
        return 0.0
    finite = np.abs(value[np.isfinite(value)])
    return float(finite.max()) if finite.size else 0.0


def _within(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> bool:
    """The pipeline's own criterion for this pass (verify.Verifier through engines.compare)."""
    return actual.dtype == expected.dtype and compare_output("", expected, actual, tolerance).passed


def _error_ratio(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> float:
    """How far a tensor is off, in units of the tolerance at its quantile: at most 1 passes."""
    return tolerance.ratio(expected, actual) if actual.shape == expected.shape else float("inf")


def _rank_by_added_error(candidate, nodes, keep, precision, feeds, reference, probed,
                         tolerance: Tolerance) -> list[tuple[int, float]]:
    """FP16 nodes, worst first, by the error each adds to what it reads (in units of the
    tolerance); those whose outputs were not measured come last, in graph order."""
    produced = {name for node in candidate.graph.node for name in node.output}
    measured = run_with_intermediates(candidate, feeds, [name for name in probed if name in reference and name in produced])
    errors = {name: _error_ratio(measured[name], reference[name], tolerance)
              for name in measured if name in reference}
    ranked, unmeasured = [], []
    for index, node in enumerate(nodes):
        if index in keep or precision.get(index) != FP16:
            continue
        outputs = [errors[name] for name in node.output if name in errors]
        if not outputs:
            unmeasured.append((index, float("nan")))
            continue
        inherited = max((errors.get(name, 0.0) for name in node.input), default=0.0)
        worst = max(outputs)
        # Infinity from finite inputs is the worst addition; infinity inherited adds nothing.
        added = worst - inherited if np.isfinite(inherited) else 0.0
        ranked.append((index, added if not np.isnan(added) else float("inf"), worst))
    ranked.sort(key=lambda entry: (-entry[1], -entry[2], entry[0]))
    return [(index, added) for index, added, _ in ranked] + unmeasured


def _bisect(model, keep, ranked, keep_io_types, passes) -> list[tuple[int, float]] | None:
    """The shortest prefix of `ranked` which, kept in FP32, makes the conversion pass (None: none does)."""
    if not ranked or not passes(convert_to_fp16(model, set(keep) | {index for index, _ in ranked}, keep_io_types)):
        return None
    low, high = 1, len(ranked)
    while low < high:
        middle = (low + high) // 2
        if passes(convert_to_fp16(model, set(keep) | {index for index, _ in ranked[:middle]}, keep_io_types)):
            high = middle
        else:
            low = middle + 1
    return ranked[:low]


# --- the conversion -------------------------------------------------------------------------


def convert_to_fp16(model: onnx.ModelProto, keep: set[int], keep_io_types: bool = True) -> onnx.ModelProto:
    """The model converted (see _convert)."""
    return _convert(model, keep, keep_io_types)[0]


def _convert(model: onnx.ModelProto, keep: set[int], keep_io_types: bool) -> tuple[onnx.ModelProto, dict[int, str]]:
    """The model with its main-graph float computation in FP16, except the nodes at `keep`
    (indices into model.graph.node), nodes that hold subgraphs, nodes of other domains and
    nodes whose schema has no FP16 form; Casts where FP16 and FP32 meet (one per tensor and
    precision). Subgraph bodies are left as they are."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    nodes = list(graph.node)
    opsets = {opset.domain or "": opset.version for opset in model.opset_import}
    types = {name: found.elem_type for name, found in infer_types(model).items()}
    types.update({tensor.name: tensor.data_type for tensor in graph.initializer})
    constants = {tensor.name for tensor in graph.initializer if tensor.data_type == FLOAT}
    constant_nodes = {node.output[0]: index for index, node in enumerate(nodes) if node.op_type == "Constant" and node.output}
    constants |= {name for name, index in constant_nodes.items() if types.get(name) == FLOAT}
    # An initializer listed as an input can be overridden at run time: an input, not a constant.
    constants -= {value.name for value in graph.input}
    is_float = lambda name: bool(name) and types.get(name) == FLOAT  # noqa: E731

    # What each node wants for each float input, and whether it computes in FP16 at all.
    wants: dict[int, list[str | None]] = {}
    precision: dict[int, str] = {}
    forced = _read_inside_bodies(nodes)
    for index, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        slots = _fp16_slots(node, opsets, is_float)
        fp16 = (
            index not in keep
            and slots is not None
            and not any(True for _ in attribute_subgraphs(node))
            and not any(name in forced for name in node.output)
        )
        precision[index] = FP16 if fp16 else FP32
        wants[index] = slots if fp16 else [FP32 if is_float(name) else None for name in node.input]

    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    graph_outputs = {value.name for value in graph.output}
    consumers: dict[str, list[tuple[int, int]]] = {}
    for index, node in enumerate(nodes):
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, []).append((index, slot))

    def home(name: str) -> str:
        """The precision a non-constant float tensor is computed in."""
        if name in producer and producer[name] in precision:
            return precision[producer[name]]
        return FP32 if keep_io_types or name not in {value.name for value in graph.input} else FP16

    # A node in FP16 with only FP32 around it would cost two Casts: it joins its neighbours.
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(nodes):
            if precision.get(index) != FP16 or node.op_type in SHAPE_READERS:
                continue
            float_inputs = [name for name in node.input if is_float(name) and name not in constants]
            float_outputs = [name for name in node.output if is_float(name) or _converted_output(node, name, types)]
            readers = [reader for name in float_outputs for reader in consumers.get(name, [])]
            outputs_fp32 = all(precision.get(reader) == FP32 for reader, _ in readers) and (
                keep_io_types or not any(name in graph_outputs for name in float_outputs)
            )
            if float_inputs and all(home(name) == FP32 for name in float_inputs) and outputs_fp32:
                precision[index] = FP32
                wants[index] = [FP32 if is_float(name) else None for name in node.input]
                changed = True

    new_nodes: list[onnx.NodeProto] = []
    added_initializers: list[onnx.TensorProto] = []
    versions: dict[tuple[str, str], str] = {}
    casts_after: dict[str, list[onnx.NodeProto]] = {}
    taken = {name for node in nodes for name in (*node.input, *node.output)} | {t.name for t in graph.initializer}

    def fresh(base: str) -> str:
        name, number = base, 1
        while name in taken:
            name, number = f"{base}_{number}", number + 1
        taken.add(name)
        return name

    # Where a graph output is computed in FP16 but must stay FP32, the FP16 tensor gets a new name.
    renamed = {}
    for name in graph_outputs:
        if is_float(name) and name in producer and precision.get(producer[name]) == FP16 and keep_io_types:
            renamed[name] = fresh(f"{name}_fp16")

    def version(name: str, wanted: str) -> str:
        """The name of `name` in the precision `wanted`, adding a Cast or a converted weight once."""
        if name in constants:
            if wanted == FP32:
                return name
            if (name, FP16) not in versions:
                versions[(name, FP16)] = fresh(f"{name}_fp16")
            return versions[(name, FP16)]
        current = home(name)
        if current == wanted:
            return renamed.get(name, name)
        if (name, wanted) not in versions:
            if name in renamed and wanted == FP32:
                versions[(name, wanted)] = name  # the graph output itself, Cast from the FP16 tensor
            else:
                versions[(name, wanted)] = fresh(f"{name}_{wanted}")
            source = renamed.get(name, name)
            cast = helper.make_node("Cast", [source], [versions[(name, wanted)]], name=fresh(f"{name}/cast_to_{wanted}"),
                                    to=FLOAT16 if wanted == FP16 else FLOAT)
            casts_after.setdefault(name, []).append(cast)
        return versions[(name, wanted)]

    input_casts: list[onnx.NodeProto] = []
    rewritten: dict[int, onnx.NodeProto] = {}
    for index, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        copied = onnx.NodeProto()
        copied.CopyFrom(node)
        for slot, name in enumerate(node.input):
            wanted = wants[index][slot] if slot < len(wants[index]) else None
            if node.op_type in SHAPE_READERS or wanted is None or not is_float(name):
                if name in renamed:
                    copied.input[slot] = renamed[name]
                continue
            copied.input[slot] = version(name, wanted)
        if precision[index] == FP16:
            for position, name in enumerate(node.output):
                if name in renamed:
                    copied.output[position] = renamed[name]
            _set_float_attributes(copied)
        rewritten[index] = copied
    # Graph outputs computed in FP16 get their FP32 Cast under their own name.
    for name in renamed:
        version(name, FP32)
    # Graph inputs cast once, right at the start.
    for value in graph.input:
        input_casts.extend(casts_after.pop(value.name, []))

    for index, node in enumerate(nodes):
        if node.op_type == "Constant":
            new_nodes.extend(_constant_versions(node, versions, constants))
            continue
        new_nodes.append(rewritten[index])
        for name in node.output:
            new_nodes.extend(casts_after.pop(name, []))
    for tensor in graph.initializer:
        if (tensor.name, FP16) in versions:
            added_initializers.append(_to_fp16(tensor, versions[(tensor.name, FP16)]))
    # Weights only FP16 nodes read are stored in FP16 alone.
    still_read = {name for node in new_nodes for name in node.input} | _read_inside_bodies(new_nodes) | graph_outputs
    new_nodes = [node for node in new_nodes if node.op_type != "Constant" or node.output[0] in still_read]
    kept_initializers = [tensor for tensor in graph.initializer if tensor.name in still_read or tensor.data_type != FLOAT
                         or tensor.name in {value.name for value in graph.input}]
    del graph.initializer[:]
    graph.initializer.extend([*kept_initializers, *added_initializers])
    del graph.node[:]
    graph.node.extend([*input_casts, *new_nodes])
    if not keep_io_types:
        for value in (*graph.input, *graph.output):
            if value.type.tensor_type.elem_type == FLOAT:
                value.type.tensor_type.elem_type = FLOAT16
    # Declared intermediate types follow the tensors they describe.
    fp16_tensors = {name for index, node in enumerate(nodes) if precision.get(index) == FP16 for name in node.output}
    for value in graph.value_info:
        if value.name in fp16_tensors and value.type.tensor_type.elem_type == FLOAT:
            value.type.tensor_type.elem_type = FLOAT16
    return converted, precision


def _read_inside_bodies(nodes: list[onnx.NodeProto]) -> set[str]:
    """Tensors that If/Loop/Scan bodies read from outside: they keep their name and FP32 type."""
    names: set[str] = set()
    for node in nodes:
        for _, body in attribute_subgraphs(node):
            names |= outer_scope_names(body)
    return names


def _fp16_slots(node: onnx.NodeProto, opsets: dict[str, int], is_float) -> list[str | None] | None:
    """For each input, FP16 or FP32 (what the schema takes there) or None (not float); None
    overall when the node cannot compute in FP16 (no schema, or a float output it cannot give
    in FP16)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get("", 1), "")
    except onnx.defs.SchemaError:
        return None
    allowed = {constraint.type_param_str: set(constraint.allowed_type_strs) for constraint in schema.type_constraints}
    formals = list(schema.inputs)
    slots: list[str | None] = []
    converted_variables = set()
    for slot, name in enumerate(node.input):
        if not is_float(name) or not formals:
            slots.append(None)
            continue
        formal = formals[min(slot, len(formals) - 1)]
        types = allowed.get(formal.type_str, {formal.type_str})
        if "tensor(float16)" in types:
            slots.append(FP16)
            converted_variables.add(formal.type_str)
        else:
            slots.append(FP32)
    for position, name in enumerate(node.output):
        if not name or not is_float(name) or node.op_type in FLOAT_TYPE_ATTRIBUTES or node.op_type == "ConstantOfShape":
            continue  # attribute-typed outputs are rewritten with the node
        formal = list(schema.outputs)[min(position, len(schema.outputs) - 1)]
        if formal.type_str not in converted_variables:
            # A float output no converted input types (LayerNormalization's Mean, say): the node
            # cannot be half converted.
            return None
    if not any(slot == FP16 for slot in slots) and node.op_type not in FLOAT_TYPE_ATTRIBUTES and node.op_type != "ConstantOfShape":
        return None
    return slots


def _converted_output(node: onnx.NodeProto, name: str, types: dict[str, int]) -> bool:
    return node.op_type in FLOAT_TYPE_ATTRIBUTES and types.get(name) == FLOAT


def _set_float_attributes(node: onnx.NodeProto) -> None:
    """An FP16 node's own statement of its output type: Cast's `to`, RandomNormal's `dtype`,
    ConstantOfShape's fill value."""
    attribute_name = FLOAT_TYPE_ATTRIBUTES.get(node.op_type)
    for attribute in node.attribute:
        if attribute.name == attribute_name and attribute.i == FLOAT:
            attribute.i = FLOAT16
        if node.op_type == "ConstantOfShape" and attribute.name == "value" and attribute.t.data_type == FLOAT:
            attribute.t.CopyFrom(_to_fp16(attribute.t, attribute.t.name))
    if node.op_type == "ConstantOfShape" and not any(attribute.name == "value" for attribute in node.attribute):
        # No value means a float 0.
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))
    if attribute_name == "dtype" and not any(attribute.name == "dtype" for attribute in node.attribute):
        node.attribute.append(helper.make_attribute("dtype", FLOAT16))


def _to_fp16(tensor: onnx.TensorProto, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), name)


def _constant_versions(node: onnx.NodeProto, versions: dict, constants: set[str]) -> list[onnx.NodeProto]:
    """A Constant node as its readers need it: FP32, FP16, or both."""
    name = node.output[0] if node.output else ""
    if name not in constants or (name, FP16) not in versions:
        return [node]
    value = next(attribute for attribute in node.attribute if attribute.name.startswith("value"))
    array = numpy_helper.to_array(value.t) if value.name == "value" else np.array(
        list(value.floats) if value.name == "value_floats" else value.f, dtype=np.float32
    )
    half = helper.make_node("Constant", [], [versions[(name, FP16)]], name=f"{node.name or name}_fp16",
                            value=numpy_helper.from_array(array.astype(np.float16)))
    return [node, half]
