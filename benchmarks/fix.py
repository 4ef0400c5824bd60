"""Whole-process wall time and peak memory of `onnxdoctor fix` beside Polygraphy's sanitizer and onnxslim.

Usage: python benchmarks/fix.py [--models all | NAME... | PATH.onnx...] [--repeat N]

Each command runs as its own process, timed from spawn to exit; peak memory is the child's max RSS
as the kernel reports it at exit (os.wait4), so imports and interpreter start-up count, as they do
for a user. `onnxdoctor fix` runs every pass and verifies each in ONNX Runtime, so its time includes
the verification. On a model with a dynamic input it also runs with `--static-shape`, the input
pinned to 1x3x640x640. Prints a markdown table, onnxdoctor fix's time over onnxslim's and the target,
then the node count and Shape nodes left in each output model, so the table shows what each tool did.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from measure import child_json, describe_machine, measure_all, parse_arguments, print_table, resolve_models, verdict

TARGET_MODEL = "yolov8n-pose-dynamic"
SLIM_RATIO = 0.75  # issue #17: onnxdoctor fix's time (verification included) over onnxslim's, on every model
STATIC_SHAPE = (1, 3, 640, 640)  # what --static-shape pins a dynamic NCHW image input to
VERSIONED = ("onnxdoctor", "polygraphy", "onnx-graphsurgeon", "onnxslim", "onnxruntime", "onnx")
FIX, FIX_STATIC, SANITIZE, SLIM = (
    "onnxdoctor fix", "onnxdoctor fix --static-shape", "polygraphy surgeon sanitize", "onnxslim")

# Run in a child, for this process's RSS is every child's floor (see measure.py): for each path,
# its node count, Shape nodes and inputs (a dim is its value, its name, or null when unknown).
INSPECT = """
import json, sys, onnx
def dims(value):
    return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
            for dim in value.type.tensor_type.shape.dim]
found = {}
for path in sys.argv[1:]:
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # a missing or broken model: the tools' exit codes tell the rest
        found[path] = {"nodes": "-", "shapes": "-", "inputs": {}, "error": str(error)}
        continue
    initialized = {tensor.name for tensor in model.graph.initializer}
    found[path] = {"nodes": len(model.graph.node),
                   "shapes": sum(node.op_type == "Shape" for node in model.graph.node),
                   "inputs": {value.name: dims(value) for value in model.graph.input if value.name not in initialized}}
print(json.dumps(found))
"""


def inspect(paths: list[Path]) -> dict[Path, dict]:
    return {Path(path): facts for path, facts in child_json(INSPECT, *map(str, paths)).items()} if paths else {}


def static_shape(inputs: dict[str, list]) -> str | None:
    """`NAME:1x3x640x640` for a model whose one dynamic input is an NCHW image; None for a static model."""
    dynamic = {name: shape for name, shape in inputs.items() if any(not isinstance(dim, int) for dim in shape)}
    if len(dynamic) != 1:
        return None
    (name, shape), = dynamic.items()
    fits = len(shape) == len(STATIC_SHAPE) and all(
        not isinstance(dim, int) or dim == want for dim, want in zip(shape, STATIC_SHAPE, strict=True))
    return f"{name}:{'x'.join(map(str, STATIC_SHAPE))}" if fits else None


def commands(name: str, model: Path, work: Path, pin: str | None) -> dict[str, tuple[list[str], Path]]:
    """Tool → (command, the model it writes)."""
    out = {tool: work / f"{name}-{tool.replace(' ', '-').replace('--', '')}.onnx"
           for tool in (FIX, FIX_STATIC, SANITIZE, SLIM)}
    planned = {
        FIX: ["onnxdoctor", "fix", str(model), "-o", str(out[FIX])],
        FIX_STATIC: ["onnxdoctor", "fix", str(model), "-o", str(out[FIX_STATIC]), "--static-shape", pin or ""],
        SANITIZE: ["polygraphy", "surgeon", "sanitize", str(model), "--fold-constants", "-o", str(out[SANITIZE])],
        SLIM: ["onnxslim", str(model), str(out[SLIM])],
    }
    if pin is None:
        del planned[FIX_STATIC]
    return {tool: (command, out[tool]) for tool, command in planned.items()}


def succeeded(row: dict) -> bool:
    # onnxdoctor's exit code 1 only means findings at or above --fail-on after the fix; 2 and up is a failed run.
    return max(row["codes"]) <= (1 if row["tool"].startswith("onnxdoctor") else 0)


def print_targets(rows: list[dict], pins: dict[str, str]) -> None:
    by_key = {(row["model"], row["tool"]): row for row in rows}
    print()
    for model, pin in pins.items():
        print(f"- {model}: `{FIX_STATIC}` pins `{pin}`")
    for model in dict.fromkeys(row["model"] for row in rows):
        if (model, FIX) not in by_key or (model, SLIM) not in by_key:
            continue  # --tools left one out: no ratio
        fix, slim = by_key[model, FIX], by_key[model, SLIM]
        if not (succeeded(fix) and succeeded(slim)):
            print(f"- {model}: ratio n/a (onnxdoctor fix exit {fix['codes']}, onnxslim exit {slim['codes']})")
            continue
        ratio = fix["wall"] / slim["wall"]
        target = f" (target ≤ {SLIM_RATIO:.2f}: {verdict(ratio <= SLIM_RATIO)})"
        print(f"- {model}: onnxdoctor fix / onnxslim time = {ratio:.2f}{target}; peak {fix['peak']:.0f} vs "
              f"{slim['peak']:.0f} MiB (target ≤ onnxslim's: {verdict(fix['peak'] <= slim['peak'])})")
    if (TARGET_MODEL, FIX) not in by_key:
        print(f"- {TARGET_MODEL}: not measured, target not checked")


def print_outputs(rows: list[dict], inputs: dict[str, Path], outputs: dict[tuple[str, str], Path],
                  facts: dict[Path, dict]) -> None:
    print("\nwhat each tool wrote (last run; loaded with onnx, no external data)\n")
    print("| model | output of | nodes | Shape nodes |")
    print("| --- | --- | ---: | ---: |")
    for model, path in inputs.items():
        print(f"| {model} | (input) | {facts[path]['nodes']} | {facts[path]['shapes']} |")
        for row in (row for row in rows if row["model"] == model):
            after = facts.get(outputs[model, row["tool"]], {}) if succeeded(row) else {}
            print(f"| {model} | {row['tool']} | {after.get('nodes', '-')} | {after.get('shapes', '-')} |")


def main() -> None:
    arguments = parse_arguments(__doc__.splitlines()[0])
    models = resolve_models(arguments.models)
    before = inspect(list(models.values()))
    print(describe_machine(VERSIONED))
    with tempfile.TemporaryDirectory(prefix="onnxdoctor-bench-") as work:
        planned = {name: commands(name, path, Path(work), static_shape(before[path]["inputs"]))
                   for name, path in models.items()}
        plan = {name: {tool: command for tool, (command, _) in tools.items()} for name, tools in planned.items()}
        outputs = {(name, tool): out for name, tools in planned.items() for tool, (_, out) in tools.items()}
        rows = measure_all(plan, arguments.repeat, Path(work), arguments.tools)
        after = inspect([path for path in outputs.values() if path.exists()])
    print_table(rows, arguments.repeat)
    pins = {name: tools[FIX_STATIC][0][-1] for name, tools in planned.items() if FIX_STATIC in tools}
    print_targets(rows, pins)
    print_outputs(rows, models, outputs, before | after)


if __name__ == "__main__":
    main()
