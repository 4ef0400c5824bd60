"""A property-based fuzzer: mutate valid fixture models (bytes and graph structure), run
diagnose and fix in-process, and count what goes wrong.

A crash is any exception other than OnnxDoctorError (the one error type for bad input);
a modified input is a file whose bytes changed; a read outside is any file opened outside the
model's folder (inotify, so ONNX Runtime's native opens count too). All must stay 0.

Besides damaged bytes and broken graphs, the inputs include tensors (initializers and Constant
attributes) pointing at external data anywhere (inside, `..`, absolute, NUL bytes, over-long
names, a FIFO, symlinks and hard links), dependency chains thousands of nodes deep (sorted or
not), names with control characters, model paths that are a FIFO or a symlink to /dev/zero,
and output paths that alias the input or its data file.

    python tests/fuzzing.py --examples 2000     # the long run; prints inputs tried, crashes, inputs modified
tests/test_fuzz.py runs a short, bounded version in CI.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import os
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
    read_outside: list[str] = field(default_factory=list)
    modified_cases: list[str] = field(default_factory=list)


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
                                     "input_dims", "opset", "ir", "output", "self_loop", "external", "deep_chain",
                                     "control_names"]))
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
        elif kind == "external":
            _point_outside(draw, mutated)
        elif kind == "deep_chain" and graph.output:
            _deep_chain(draw, graph)
        elif kind == "control_names":
            _control_names(draw, mutated)
    return mutated


# Where mutated external data may point; check_one lays out the files these name.
LOCATIONS = ["data.bin", "../outside/outside.bin", "/etc/hostname", "sub/../data.bin", "a\0b", "x" * 300, "fifo",
             "link-out", "hard.bin", "cw.bin", "", "data.bin\n::error::x"]


def _point_outside(draw, model: onnx.ModelProto) -> None:
    """Turn an initializer or a Constant's tensor into external data at a drawn location."""
    tensors = list(model.graph.initializer) + [
        attribute.t for node in model.graph.node for attribute in node.attribute
        if attribute.type == onnx.AttributeProto.TENSOR]
    if not tensors:
        return
    tensor = tensors[draw(st.integers(0, len(tensors) - 1))]
    tensor.ClearField("raw_data")
    for field_name in ("float_data", "int64_data", "int32_data", "double_data"):
        tensor.ClearField(field_name)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", draw(st.sampled_from(LOCATIONS))),
                       ("offset", str(draw(st.sampled_from([0, 4, 2**40, -1])))),
                       ("length", str(draw(st.sampled_from([4, 8, 64, 2**40]))))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _deep_chain(draw, graph: onnx.GraphProto) -> None:
    """Identity (or Neg) nodes thousands deep before the first output, in order or reversed."""
    depth = draw(st.sampled_from([600, 1500, 3000]))
    start = graph.output[0].name
    op = draw(st.sampled_from(["Identity", "Neg"]))
    chain = [onnx.helper.make_node(op, [start if i == 0 else f"deep_{i - 1}"], [f"deep_{i}"], name=f"deep_node_{i}")
             for i in range(depth)]
    if draw(st.booleans()):
        chain.reverse()
    graph.node.extend(chain)
    graph.output[0].name = f"deep_{depth - 1}"


def _control_names(draw, model: onnx.ModelProto) -> None:
    """Names a terminal or a CI log would act on, were they printed raw."""
    hostile = draw(st.sampled_from(["a\nb", "\x1b[31mred\x1b[0m", "\n::error::pwned", "line\u2028sep", "\r\rback"]))
    model.graph.name = hostile
    for node in model.graph.node[: draw(st.integers(1, 3))]:
        node.name = hostile + node.name
    model.doc_string = hostile


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


# How the model file is laid out and what fix is told to write: mostly an ordinary file; now and
# then a path that is not a regular file, or an output that would overwrite an input.
SETUPS = ["file"] * 16 + ["fifo", "dev-zero", "alias-input", "alias-data"]


@st.composite
def mutated_model(draw) -> tuple[bytes, str]:
    seed = draw(st.sampled_from(SEEDS))
    if draw(st.booleans()):
        data = draw(byte_mutation(seed.read_bytes()))
    else:
        data = draw(structural_mutation(onnx.load(seed))).SerializeToString()
    return data, draw(st.sampled_from(SETUPS))


# Where the long run writes each model before trying it, so a crash that takes the process
# down (a segfault in a native library) leaves the model that caused it behind.
LAST_MODEL: Path | None = None


def _lay_out(root: Path) -> tuple[Path, Path, Path]:
    """root/model (the model's folder, with its data files), root/outside and root/cwd: the two
    folders nothing may read from."""
    folder, outside, cwd = root / "model", root / "outside", root / "cwd"
    for made in (folder, outside, cwd, folder / "sub"):
        made.mkdir()
    (folder / "data.bin").write_bytes(bytes(range(64)))
    (outside / "outside.bin").write_bytes(b"\xff" * 64)
    (cwd / "cw.bin").write_bytes(b"\xee" * 64)
    os.mkfifo(folder / "fifo")
    (folder / "link-out").symlink_to(outside / "outside.bin")
    os.link(outside / "outside.bin", folder / "hard.bin")
    return folder, outside, cwd


def _reads(data: bytes, folder: Path, file: Path) -> bool:
    """Whether the model in `data` names `file` as external data of any of its tensors."""
    from onnxdoctor.model import _external_capable_tensors

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
        locations = [entry.value for tensor, _ in _external_capable_tensors(model)
                     for entry in tensor.external_data if entry.key == "location"]
    except Exception:  # noqa: BLE001 - bytes that are no model name no file
        return False
    for location in locations:
        try:
            if (folder / location).resolve() == file.resolve():
                return True
        except (OSError, ValueError):  # a NUL byte, a name too long: names no file
            continue
    return False


def check_one(data: bytes, setup: str, tally: Tally) -> None:
    """Run diagnose and fix on one mutated model; record a crash, a modified input, a read outside."""
    from test_external_data_guard import OpenWatch

    from onnxdoctor import OnnxDoctorError, api

    tally.tried += 1
    if LAST_MODEL is not None:
        LAST_MODEL.write_bytes(data)
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as root:
        folder, outside, cwd = _lay_out(Path(root))
        path = folder / "mutated.onnx"
        path.write_bytes(data)
        output = folder / "fixed.onnx"
        if setup == "fifo":
            path = folder / "fifo"
        elif setup == "dev-zero":
            path = folder / "zero.onnx"
            path.symlink_to("/dev/zero")
        elif setup == "alias-input":
            output = path
        elif setup == "alias-data":
            output = folder / "data.bin"
        # data.bin is an input only where the model reads it; otherwise writing a fixed model
        # over a file of that name (alias-data) is what the user asked for, not damage.
        guarded = [("model", folder / "mutated.onnx")] + ([("data", folder / "data.bin")]
                                                         if _reads(data, folder, folder / "data.bin") else [])
        protected = {name: hashlib.sha256(file.read_bytes()).hexdigest() for name, file in guarded}
        watch = OpenWatch(outside, cwd)
        os.chdir(cwd)  # a location resolved against the working directory would show as a read there
        try:
            for name, run in (("diagnose", lambda: api.diagnose(path)), ("fix", lambda: api.fix(path, output))):
                try:
                    run()
                except OnnxDoctorError:
                    pass
                except Exception:  # noqa: BLE001 - that is what we are counting
                    tally.crashes.append(f"{name} ({setup}): {traceback.format_exc(limit=-4)}\n"
                                         f"model bytes: {data[:200]!r}")
            opened = watch.opened()
        finally:
            os.chdir(previous)
            watch.close()
        if opened:
            tally.read_outside.append(f"{setup}: {sorted(map(str, opened))}; model bytes: {data[:200]!r}")
        for name, file in guarded:
            if hashlib.sha256(file.read_bytes()).hexdigest() != protected[name]:
                tally.modified += 1
                tally.modified_cases.append(f"{name} ({setup})")


def fuzz(examples: int, tally: Tally, *, derandomize: bool = False) -> Tally:
    """Run `examples` mutated models; `derandomize` makes the run the same every time (CI)."""

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(mutated_model())
    def run(example: tuple[bytes, str]) -> None:
        check_one(*example, tally)

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
    print(f"inputs tried: {tally.tried}\ncrashes: {len(tally.crashes)}\ninputs modified: {tally.modified}\n"
          f"reads outside the model's folder: {len(tally.read_outside)}")
    for line in tally.read_outside[:5]:
        print(f"read outside: {line}")
    # One full report per distinct error, most frequent first.
    by_error: dict[str, list[str]] = {}
    for crash in tally.crashes:
        error = next((line for line in reversed(crash.splitlines()) if line and not line.startswith("model bytes")), "")
        by_error.setdefault(error, []).append(crash)
    for error, crashes in sorted(by_error.items(), key=lambda item: -len(item[1])):
        print(f"\n{len(crashes)} x {error}\n{crashes[0]}")
    return 1 if tally.crashes or tally.modified or tally.read_outside else 0


if __name__ == "__main__":
    sys.exit(main())
