"""Running what may hang, exhaust memory or crash the process (ONNX Runtime) in a worker process.

A constant Loop with an INT64-max trip count never returns, and a native crash in ONNX Runtime
or onnx takes down the process it happens in, with the user's work. So constant evaluation,
verification runs and the passes that run ONNX Runtime run in a worker process, started on
first use and reused (its ONNX Runtime is imported once); one per lane, so fix can run the
original model for verification in a background thread while the passes use the main lane.
Each call is bounded in time and in
memory: the parent waits for the answer, polling the worker's resident memory, and kills the
worker at either bound. A call the worker did not answer raises `Stopped`, whose message says
what stopped it; the next call starts a fresh worker.

The worker is a fresh interpreter (not a fork: ONNX Runtime's threads do not survive one).
Requests and answers are pickles on pipes, numpy arrays and large buffers passed out of band
(pickle protocol 5), so models over protobuf's 2 GiB travel without an extra serialized copy.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

# One constant evaluation run (diagnose): constants are small, so this is only ever reached by
# something that does not end (a Loop with an INT64-max trip count).
EVALUATION_TIME_LIMIT = 30.0
# One verification run of the whole model (session creation and inference), or one pass run in
# the worker: large models on CPU take minutes.
VERIFICATION_TIME_LIMIT = 300.0
# The size asked of each pipe to a worker (see _Worker).
_PIPE_BYTES = 1 << 20


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # a platform without these names
        return 16 << 30


# Resident memory the worker may reach during one call: three quarters of the machine, so a
# model that allocates without bound is stopped with a message before the machine starts
# swapping or the kernel kills something else.
MEMORY_LIMIT = _physical_memory() * 3 // 4

# How long a fresh worker may take to import ONNX Runtime (slow disks, loaded machines).
_START_TIME_LIMIT = 120.0
# How often the parent looks at the worker's memory while it waits.
_POLL_SECONDS = 0.01
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# The worker registers the onnxdoctor package without running its __init__ (which imports the
# whole API): it needs only this module and ONNX Runtime until a request names something else.
_BOOTSTRAP = """\
import sys, types
package = types.ModuleType("onnxdoctor")
package.__path__ = [sys.argv[1]]
sys.modules["onnxdoctor"] = package
from onnxdoctor.isolation import serve
serve(sys.argv[2:])
"""


class Stopped(Exception):
    """The worker did not answer a call: it crashed, or was stopped at the time or memory limit."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RemoteError(Exception):
    """An exception raised in the worker whose type the parent does not share (ONNX Runtime's);
    its message is the original's, its type name is in `type_name`."""

    def __init__(self, message: str, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(message)

    def __reduce__(self):
        return type(self), (str(self), self.type_name), self.__dict__


def call(function, *args, what: str, time_limit: float, memory_limit: int, lane: str = "main", **kwargs):
    """`function(*args, **kwargs)` in the worker: its result, or its exception raised here.

    `function` must be importable by name (a module-level function) and the arguments picklable.
    Raises Stopped, its message starting with `what` ("ONNX Runtime"), when the worker crashed
    or went past `time_limit` seconds or `memory_limit` bytes of resident memory.
    `lane` names the worker: each lane has its own process, so a call on one lane (a verification
    run in a background thread) does not wait for another's; one thread at a time per lane.
    """
    succeeded, result = _with_worker(
        lambda worker: worker.call(function, args, kwargs, what, time_limit, memory_limit), lane)
    if succeeded:
        return result
    raise result


def onnxruntime_version(lane: str = "main") -> str:
    """The version of the ONNX Runtime the worker runs (starting it if needed)."""
    return _started(lane).hello["version"]


def onnxruntime_providers(lane: str = "main") -> tuple[str, ...]:
    """The execution providers of the worker's ONNX Runtime."""
    return _started(lane).hello["providers"]


def run_model(
    model: bytes, weights: dict, feeds: dict, output_names: list[str], providers: list, *, as_written: bool = False,
    beside_caller: bool = False, observed_from: int | None = None, observed_limit: int = 0,
) -> list:
    """Run a serialized model in ONNX Runtime (in the worker) and return the named outputs.

    `weights` are initializers left out of `model` (stubs marked external there): arrays (over
    2 GiB), given to ONNX Runtime from memory, or model.Reference to a range of a data file, which
    ONNX Runtime reads itself (see _read_from_files). `as_written` runs nodes unoptimized on one
    thread, as folding tools evaluate constants (ONNX Runtime's optimizer would fold or fuse them
    away first). `beside_caller`: the run overlaps the caller's own work (fix's background
    reference run), so it leaves the caller a core and its threads sleep rather than spin
    between kernels. `observed_from`: the outputs from that position on are tensors the model
    computes inside, asked for as outputs (verify: values a proof compares folds with); those
    over `observed_limit` elements come back as None, not across the pipe.
    """
    session = _session(model, weights, providers, as_written=as_written, beside_caller=beside_caller)
    results = [_dense(value) for value in session.run(output_names, feeds)]
    if observed_from is not None:
        results[observed_from:] = [value if value.size <= observed_limit else None for value in results[observed_from:]]
    return results


def observe_model(model: bytes, weights: dict, feeds: dict, names: list[str], providers: list, limit: int, *,
                  beside_caller: bool = False) -> list:
    """The values of tensors a serialized model computes inside (`names`; verify: those a proof
    compares folds with), run_model's way, from the part of the model that computes them alone:
    its nodes those tensors depend on, its outputs those tensors. ONNX Runtime folds a Shape of
    a tensor whose shape it knows, and never runs the nodes only that Shape read: on a batch-4
    yolov8n-pose with static shapes, 13 ms instead of the whole model's 0.5 s. A value over
    `limit` elements comes back as None, not across the pipe."""
    import onnx

    proto = onnx.ModelProto.FromString(model)
    graph = proto.graph
    nodes, needed = part_computing(proto, names)
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    weights = {name: weight for name, weight in weights.items() if name in needed}
    del graph.output[:]
    graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = _session(proto.SerializeToString(), weights, providers, beside_caller=beside_caller)
    return [value if value.size <= limit else None for value in map(_dense, session.run(names, feeds))]


def part_computing(model, names: list[str]) -> tuple[list, set[str]]:
    """The main graph's nodes (in graph order) that the tensors `names` depend on, and every
    tensor those nodes read, `names` included. A model with a subgraph is needed whole (a
    subgraph reads outer tensors its node does not list)."""
    from onnxdoctor.model import holds_subgraphs

    graph = model.graph
    if holds_subgraphs(graph):
        return list(graph.node), {name for node in graph.node for name in node.input} | set(names)
    producer = {name: node for node in graph.node for name in node.output if name}
    needed, kept, pending = set(names), set(), list(names)
    while pending:
        node = producer.get(pending.pop())
        if node is not None and id(node) not in kept:
            kept.add(id(node))
            fresh = [name for name in node.input if name and name not in needed]
            needed.update(fresh)
            pending.extend(fresh)
    return [node for node in graph.node if id(node) in kept], needed


def load_model(model: bytes, weights: dict, providers: list) -> None:
    """Make an ONNX Runtime session of a serialized model (in the worker) and run nothing: raises
    where ONNX Runtime does not take the model (a type it rejects, an op it lacks)."""
    _session(model, weights, providers)


def _session(model: bytes, weights: dict, providers: list, *, as_written: bool = False, beside_caller: bool = False):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    # A session here runs once (a verification, a constant evaluation): prepacking weights into
    # kernel layouts and keeping a memory arena pay off over many runs, not one. Measured on a
    # batch-4 yolov8n-pose (2 CPU cores): a run took 0.39 s instead of 0.68 s, and a worker that
    # ran the reference and then the candidate peaked at 227 MiB instead of 327 (each session's
    # arena and packed weights stayed behind in the process).
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.disable_prepacking", "1")
    references = {name: value for name, value in weights.items() if not hasattr(value, "dtype")}
    if references:
        model = _read_from_files(model, references, options)
        weights = {name: value for name, value in weights.items() if name not in references}
    if beside_caller:
        options.intra_op_num_threads = max(1, (os.cpu_count() or 1) - 1)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if as_written:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    if weights:
        values = [onnxruntime.OrtValue.ortvalue_from_numpy(value) for value in weights.values()]
        options.add_external_initializers(list(weights), values)
    return onnxruntime.InferenceSession(model, options, providers=providers)


def _read_from_files(model: bytes, references: dict, options) -> bytes:
    """The model with its stubs pointing at the files of `references` again, relative to the
    folder that holds them all, which `options` names to ONNX Runtime. ONNX Runtime then maps
    the files (at page-aligned offsets) and reads what the run touches; handed over as arrays
    instead (add_external_initializers), every weight is copied into the session (so is every
    MatMul weight that prepacking lays out anew: run_model turns it off)."""
    import onnx

    from onnxdoctor.model import check_identity, restore_reference

    folder = os.path.commonpath([os.path.dirname(reference.path) for reference in references.values()])
    proto = onnx.ModelProto.FromString(model)
    for tensor in proto.graph.initializer:
        reference = references.get(tensor.name)
        if reference is not None:
            # Still the file the loader checked (not one swapped in since), just before ONNX Runtime opens it.
            check_identity(reference.path, reference.identity)
            restore_reference(tensor, replace(reference, path=os.path.relpath(reference.path, folder), identity=""))
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    return proto.SerializeToString()


def _dense(value):
    """A sparse output (a graph output fed by a sparse initializer) as the dense array it stands
    for: comparable, and picklable on its way back (ONNX Runtime's SparseTensor is neither)."""
    if not hasattr(value, "dense_shape"):
        return value
    import numpy as np

    dense = np.zeros(tuple(value.dense_shape()), dtype=value.values().dtype)
    # ONNX Runtime hands back its C++ object here: the Python wrapper's as_coo_view() is get_coo_data().
    indices = np.asarray(value.get_coo_data().indices())
    # COO indices come flat (one linear index per value) or as one row of coordinates per value.
    if indices.ndim == 1:
        dense.reshape(-1)[indices] = value.values()
    else:
        dense[tuple(indices.T)] = value.values()
    return dense


class _Worker:
    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        # What the worker prints (a C++ abort message) goes to a file nobody sees, not the user's
        # terminal; its last line explains a crash. Unlinked at once: nothing stays on disk.
        self.errors = tempfile.TemporaryFile()
        package = str(Path(__file__).resolve().parent)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, package, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            bufsize=0,
            # numpy (imported with ONNX Runtime) would start OpenBLAS threads that spin beside the
            # caller's own start-up; the worker does no linear algebra in numpy.
            env=os.environ | {"OPENBLAS_NUM_THREADS": "1"},
        )
        # Models and outputs of megabytes go through these pipes: at 1 MiB instead of Linux's 64 KiB
        # a 13 MB model crosses in 16 writes, not 200 (a yolov8n-seg verification call 0.155 ->
        # 0.137 s). Where the system allows less (pipe-max-size), its default stays.
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self.stopped = False
        self.hello: dict | None = None

    def call(self, function, args, kwargs, what, time_limit, memory_limit):
        self.errors.seek(0)
        self.errors.truncate()
        try:
            _write_frame(self.process.stdin.fileno(), _encode((function, args, kwargs)))
        except BrokenPipeError:
            raise self._crashed(what) from None
        self.read_hello(what)
        return self._read_answer(what, time.monotonic() + time_limit, time_limit, memory_limit)

    def read_hello(self, what: str) -> None:
        if self.hello is None:
            _, self.hello = self._read_answer(what, time.monotonic() + _START_TIME_LIMIT, _START_TIME_LIMIT, None)

    def _read_answer(self, what, deadline, time_limit, memory_limit):
        descriptor = self.process.stdout.fileno()

        def read_exactly(size: int) -> bytearray:
            buffer = bytearray(size)
            view, done = memoryview(buffer), 0
            while done < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._stop(f"{what} was stopped after {time_limit:g} s (time limit)")
                ready, _, _ = select.select([descriptor], [], [], min(remaining, _POLL_SECONDS))
                if not ready:
                    resident = _resident_memory(self.process.pid)
                    if memory_limit is not None and resident > memory_limit:
                        raise self._stop(
                            f"{what} was stopped at {_size(resident)} of memory (memory limit {_size(memory_limit)})"
                        )
                    continue
                count = os.readv(descriptor, [view[done:]])
                if count == 0:
                    raise self._crashed(what)
                done += count
            return buffer

        return _decode(read_exactly)

    def _stop(self, reason: str) -> Stopped:
        self.close()
        return Stopped(reason)

    def _crashed(self, what: str) -> Stopped:
        code = self.process.wait()
        last_line = self._last_error_line()
        self.close()
        if code < 0:
            reason = f"{what} crashed: signal {-code} ({_signal_name(-code)})"
        else:
            reason = f"{what} ended its process with exit code {code}"
        return Stopped(f"{reason}: {last_line}" if last_line else reason)

    def _last_error_line(self) -> str:
        self.errors.seek(0, os.SEEK_END)
        self.errors.seek(max(0, self.errors.tell() - 2000))
        lines = [line.strip() for line in self.errors.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def close(self) -> None:
        # Killed, not asked to exit: it holds nothing worth saving, and its orderly exit
        # (ONNX Runtime's teardown) would cost every onnxdoctor run tens of milliseconds.
        self.stopped = True
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.errors):
            stream.close()


# The running worker of each lane, and each lane's lock: one call at a time per worker (a
# background thread's run and a later fix's must not read each other's answers).
_workers: dict[str, _Worker] = {}
_lanes: dict[str, threading.RLock] = {}
_lanes_lock = threading.Lock()
_spawner = None  # a concurrent.futures.ThreadPoolExecutor of one thread, made on first use
STARTER_THREAD = "onnxdoctor-worker-starter"  # its thread's name (idle between starts: the CLI's exit need not wait)


def _lane_lock(lane: str) -> threading.RLock:
    with _lanes_lock:
        return _lanes.setdefault(lane, threading.RLock())


def _spawn(preload: tuple[str, ...]) -> _Worker:
    """A new worker, started from one thread that lives as long as the process: the kernel's
    parent-death signal (PR_SET_PDEATHSIG) follows the thread that started the worker, so one
    started by a thread that then ends (fix's background reference run, a caller's thread pool)
    would be killed with it."""
    global _spawner
    with _lanes_lock:
        if _spawner is None:
            from concurrent.futures import ThreadPoolExecutor

            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=STARTER_THREAD)
    return _spawner.submit(_Worker, preload).result()


def _with_worker(action, lane: str = "main", preload: tuple[str, ...] = ()):
    """`action(worker)` with the lane's running worker, started if needed, the lane held."""
    with _lane_lock(lane):
        worker = _workers.get(lane)
        if worker is not None and worker.process.poll() is not None:
            # Ended between calls (stop() while the lane was idle): a fresh one takes its place.
            if not worker.stopped:
                worker.close()
            worker = None
        if worker is None:
            worker = _workers[lane] = _spawn(preload)
        try:
            return action(worker)
        except BaseException:
            # Stopped, or interrupted (Ctrl-C) mid-call: the worker's state is unknown, start afresh.
            if not worker.stopped:
                worker.close()
            if _workers.get(lane) is worker:
                del _workers[lane]
            raise


def stop(lane: str) -> None:
    """Kill the lane's worker, from any thread, without waiting for the lane: a call in progress
    there ends as Stopped (fix abandons its background reference run that way)."""
    worker = _workers.get(lane)
    if worker is not None and not worker.stopped:
        worker.process.kill()
        # Gone before this returns: the lane's next call, finding it ended, starts a fresh one.
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)


def close(lane: str) -> None:
    """End the lane's worker where no call holds the lane (one started ahead that will get no
    work): its memory is freed, and a later call on the lane starts a new one."""
    lock = _lane_lock(lane)
    if not lock.acquire(blocking=False):
        return
    try:
        worker = _workers.pop(lane, None)
        if worker is not None and not worker.stopped:
            worker.close()
    finally:
        lock.release()


def prestart(lane: str = "main", preload: tuple[str, ...] = ()) -> None:
    """Start the lane's worker now without waiting for it, so its ONNX Runtime import runs beside
    the caller's own work (imports, loading, validation); the first call then finds it ready. Its
    bounds are unchanged: the start is timed from when a call first waits for it. A new worker
    also imports the modules `preload` names (fix: the fold pass's onnx-graphsurgeon, 0.25 s)
    once it has said hello, in a thread beside its requests."""
    _with_worker(lambda worker: None, lane, preload)


def _started(lane: str) -> _Worker:
    # Asked of the caller's own lane: another thread may be waiting on another lane's worker.
    return _with_worker(lambda worker: worker.read_hello("ONNX Runtime") or worker, lane)


@atexit.register
def _close_worker() -> None:
    for worker in list(_workers.values()):
        if not worker.stopped:
            worker.close()
    _workers.clear()


def _resident_memory(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):  # no /proc (not Linux), or the worker just ended
        return 0


def _size(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.0f} MiB"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


# A frame: payload length and buffer count, each buffer's length, the pickle, the buffers.
def _encode(message) -> list:
    buffers: list = []
    payload = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    header = struct.pack(f"!QQ{len(views)}Q", len(payload), len(views), *(view.nbytes for view in views))
    return [header, payload, *views]


def _write_frame(descriptor: int, parts: list) -> None:
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(descriptor, view):]


def _decode(read_exactly):
    payload_size, count = struct.unpack("!QQ", read_exactly(16))
    sizes = struct.unpack(f"!{count}Q", read_exactly(8 * count)) if count else ()
    payload = read_exactly(payload_size)
    return pickle.loads(payload, buffers=[read_exactly(size) for size in sizes])


def _import_all(names: list[str]) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # a request that needs it will say so
            pass


def serve(preload: list[str] = ()) -> None:
    """The worker's loop: answer requests from standard input until it closes, while a thread
    imports the modules `preload` names (prestart)."""
    answers = os.dup(1)
    # Whatever native code prints to standard output must not land in the answers.
    os.dup2(2, 1)
    # Ctrl-C reaches the whole process group: the parent decides what happens to the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)
    hello = {"version": onnxruntime.__version__, "providers": tuple(onnxruntime.get_available_providers())}
    _write_frame(answers, _encode((True, hello)))
    if preload:
        # Beside the requests, not before them: the first (fix's constant evaluation while it
        # diagnoses) needs only ONNX Runtime, and a request that needs a preloaded module waits
        # on the import lock until it is in.
        threading.Thread(target=_import_all, args=(preload,), daemon=True).start()

    def read_exactly(size: int) -> bytearray:
        buffer = bytearray(size)
        view, done = memoryview(buffer), 0
        while done < size:
            count = os.readv(0, [view[done:]])
            if count == 0:
                raise EOFError
            done += count
        return buffer

    while True:
        try:
            request = _decode(read_exactly)
        except EOFError:
            return
        except Exception as error:  # noqa: BLE001 - a request naming a function this process cannot import
            _write_frame(answers, _encode((False, _portable(error))))
            continue
        function, args, kwargs = request
        try:
            answer = _encode((True, function(*args, **kwargs)))
        except Exception as error:  # noqa: BLE001 - every error goes back to the caller, who decides
            answer = _encode((False, _portable(error)))
        _write_frame(answers, answer)


def _portable(error: Exception) -> Exception:
    """The exception itself when the parent can rebuild it (builtins and our own types), else a
    RemoteError with its message; the worker's traceback is attached as a note either way."""
    error.add_note("in the onnxdoctor worker process:\n" + "".join(traceback.format_exception(error)))
    shared = type(error).__module__ == "builtins" or type(error).__module__.split(".")[0] == "onnxdoctor"
    if shared and _survives_pickling(error):
        return error
    remote = RemoteError(str(error), type(error).__name__)
    remote.__notes__ = list(getattr(error, "__notes__", []))
    return remote


def _survives_pickling(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling goes as text
        return False
    return True


def _end_with_parent() -> None:
    """Linux: the kernel kills the worker when the parent dies, even mid-run (else a run that
    never ends would outlive onnxdoctor)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)
