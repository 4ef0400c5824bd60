"""A property-based fuzzer: mutate valid fixture models (bytes and graph structure), run
diagnose and fix in-process, and count what goes wrong.

A crash is any exception other than OnnxDoctorError (the one error type for bad input);
a modified input is a file whose bytes changed. Both must stay 0.

    python tests/fuzzing.py --examples 2000     # the long run; prints inputs tried, crashes, inputs modified
tests/test_fuzz.py runs a short, bounded version in CI.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(path for path in (ROOT / "fixtures" / "planted").glob("*.onnx") if path.stem != "external_data")
OPS = ["Add", "Relu", "Shape", "Gather", "Reshape", "Concat", "Constant", "If", "Loop", "Cast", "Slice", "Div",
       "NotAnOp", "", "Identity", "ConstantOfShape", "Expand", "Range", "MatMul", "Conv"]


@dataclass
class Tally:
    tried: int = 0
    crashes: list[str] = field(default_factory=list)
    modified: int = 0


def _names(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    names = [value.name for value in (*graph.input, *graph.output)] + [t.name for t in graph.initializer]
    names += [name for node in graph.node for name in (*node.input, *node.output)]
    return names or ["x"]


@st.composite
def structural_mutation(draw, model: onnx.ModelProto) -> onnx.ModelProto:
    """One to four edits of the kind a broken exporter or a bad hand edit makes."""
    mutated = onnx.ModelProto()
    mutated.CopyFrom(model)
    graph = mutated.graph
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["rewire", "delete", "duplicate", "swap", "op", "attribute", "dims", "dtype",
                                     "input_dims", "opset", "ir", "output", "self_loop"]))
        nodes = graph.node
        if kind in ("rewire", "delete", "duplicate", "swap", "op", "attribute", "self_loop") and not nodes:
            continue
        index = draw(st.integers(0, max(len(nodes) - 1, 0)))
        if kind == "rewire" and nodes[index].input:
            slot = draw(st.integers(0, len(nodes[index].input) - 1))
            nodes[index].input[slot] = draw(st.sampled_from(_names(mutated) + ["ghost", ""]))
        elif kind == "delete":
            del nodes[index]
        elif kind == "duplicate":
            nodes.add().CopyFrom(nodes[index])
        elif kind == "swap":
            other = draw(st.integers(0, len(nodes) - 1))
            first, second = onnx.NodeProto(), onnx.NodeProto()
            first.CopyFrom(nodes[index])
            second.CopyFrom(nodes[other])
            nodes[index].CopyFrom(second)
            nodes[other].CopyFrom(first)
        elif kind == "op":
            nodes[index].op_type = draw(st.sampled_from(OPS))
        elif kind == "attribute" and nodes[index].attribute:
            attribute = nodes[index].attribute[draw(st.integers(0, len(nodes[index].attribute) - 1))]
            if attribute.type == onnx.AttributeProto.INT:
                attribute.i = draw(st.integers(-(2**63), 2**63 - 1))
            elif attribute.type == onnx.AttributeProto.INTS:
                attribute.ints[:] = draw(st.lists(st.integers(-(2**40), 2**40), max_size=6))
            else:
                nodes[index].attribute.remove(attribute)
        elif kind == "dims" and graph.initializer:
            tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            tensor.dims[:] = draw(st.lists(st.integers(-2, 2**33), max_size=4))
        elif kind == "dtype" and graph.initializer:
            tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            tensor.data_type = draw(st.integers(0, 25))
        elif kind == "input_dims" and graph.input:
            dims = graph.input[draw(st.integers(0, len(graph.input) - 1))].type.tensor_type.shape.dim
            for dim in dims:
                dim.Clear()
                if draw(st.booleans()):
                    dim.dim_value = draw(st.integers(0, 2**34))
                else:
                    dim.dim_param = draw(st.sampled_from(["batch", "n", "", "unk__1"]))
        elif kind == "opset":
            mutated.opset_import[0].version = draw(st.integers(1, 40))
        elif kind == "ir":
            mutated.ir_version = draw(st.integers(0, 20))
        elif kind == "output" and graph.output:
            graph.output[0].name = draw(st.sampled_from(_names(mutated) + ["nowhere"]))
        elif kind == "self_loop" and nodes[index].input and nodes[index].output:
            nodes[index].input[0] = nodes[index].output[0]
    return mutated


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    """Flipped, cut or inserted bytes: a damaged download or a half-written file."""
    buffer = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "truncate":
        return bytes(buffer[: draw(st.integers(0, len(buffer)))])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(len(buffer) - 1, 0)))
        if kind == "flip" and buffer:
            buffer[position] = draw(st.integers(0, 255))
        else:
            buffer[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(buffer)


@st.composite
def mutated_model(draw) -> bytes:
    seed = draw(st.sampled_from(SEEDS))
    if draw(st.booleans()):
        return draw(byte_mutation(seed.read_bytes()))
    return draw(structural_mutation(onnx.load(seed))).SerializeToString()


# Where the long run writes each model before trying it, so a crash that takes the process
# down (a segfault in a native library) leaves the model that caused it behind.
LAST_MODEL: Path | None = None


def check_one(data: bytes, tally: Tally) -> None:
    """Run diagnose and fix on one mutated model; record a crash or a modified input."""
    from onnxdoctor import OnnxDoctorError, api

    tally.tried += 1
    if LAST_MODEL is not None:
        LAST_MODEL.write_bytes(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.onnx"
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        for name, run in (("diagnose", lambda: api.diagnose(path)),
                          ("fix", lambda: api.fix(path, Path(folder) / "fixed.onnx"))):
            try:
                run()
            except OnnxDoctorError:
                pass
            except Exception:  # noqa: BLE001 - that is what we are counting
                tally.crashes.append(f"{name}: {traceback.format_exc(limit=-4)}\nmodel bytes: {data[:200]!r}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            tally.modified += 1


def fuzz(examples: int, tally: Tally, *, derandomize: bool = False) -> Tally:
    """Run `examples` mutated models; `derandomize` makes the run the same every time (CI)."""

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(mutated_model())
    def run(data: bytes) -> None:
        check_one(data, tally)

    run()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--last", type=Path, default=Path("fuzz-last.onnx"),
                        help="each model is written here before it is tried (default: %(default)s)")
    arguments = parser.parse_args()
    global LAST_MODEL
    LAST_MODEL = arguments.last
    faulthandler.enable()
    tally = fuzz(arguments.examples, Tally())
    print(f"inputs tried: {tally.tried}\ncrashes: {len(tally.crashes)}\ninputs modified: {tally.modified}")
    # One full report per distinct error, most frequent first.
    by_error: dict[str, list[str]] = {}
    for crash in tally.crashes:
        error = next((line for line in reversed(crash.splitlines()) if line and not line.startswith("model bytes")), "")
        by_error.setdefault(error, []).append(crash)
    for error, crashes in sorted(by_error.items(), key=lambda item: -len(item[1])):
        print(f"\n{len(crashes)} x {error}\n{crashes[0]}")
    return 1 if tally.crashes or tally.modified else 0


if __name__ == "__main__":
    sys.exit(main())
