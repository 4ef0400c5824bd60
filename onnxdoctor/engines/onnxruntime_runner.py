"""ONNX Runtime as a runner: the CPU provider, or CUDA with its provider options.

On CUDA the inputs and outputs go through I/O binding, so a call is split the way trtexec
splits it: host→device copies, the run itself, device→host copies, each timed between
synchronization points. With a CUDA graph the bound device buffers stay the same from call
to call (the graph replays on fixed addresses), so inputs are copied into them in place.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from onnxdoctor.engines.base import Runner, RunnerDescription, RunnerUnavailable, Timing, cpu_name
from onnxdoctor.model import exceeds_protobuf_limit, split_weights


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    provider: str = "cpu"  # "cpu" or "cuda"
    cuda_graph: bool = False
    prefer_nhwc: bool = False
    # cuDNN convolution algorithm search: "EXHAUSTIVE" (ORT's default: slow first call), "HEURISTIC", "DEFAULT".
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    # ONNX Runtime's CUDA provider rounds fp32 matmuls and convolutions to TF32 unless told not to.
    tf32: bool = False
    # ORT's graph optimizations ("all", "extended", "basic", "disabled").
    optimization: str = "all"
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    # ONNX Runtime's per-node profiling (a Chrome-trace JSON): on from session creation, since
    # ORT cannot start it later; the runner also saves the graph ORT optimized, which the
    # trace's node names refer to. Both live in a temporary folder until deactivate().
    profiling: bool = False

    @property
    def mode(self) -> str:
        if self.provider == "cpu":
            return "CPUExecutionProvider"
        extras = [name for name, on in (("CUDA graph", self.cuda_graph), ("NHWC", self.prefer_nhwc),
                                        ("TF32", self.tf32)) if on]
        if self.cudnn_conv_algo_search != "EXHAUSTIVE":
            extras.append(f"cuDNN {self.cudnn_conv_algo_search.lower()}")
        return ", ".join(["CUDAExecutionProvider", *extras])


@functools.cache
def onnxruntime_module():
    import onnxruntime

    # ORT otherwise logs to stderr beside our own report.
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in onnxruntime_module().get_available_providers()


def precision_of(model: onnx.ModelProto) -> str:
    """fp16 when the model computes in half precision (its float inputs or weights), else fp32."""
    types = {value.type.tensor_type.elem_type for value in (*model.graph.input, *model.graph.output)}
    types |= {tensor.data_type for tensor in model.graph.initializer}
    half = onnx.TensorProto.FLOAT16 in types
    single = onnx.TensorProto.FLOAT in types
    return "mixed" if half and single else "fp16" if half else "fp32"


class OnnxRuntimeRunner(Runner):
    """One in-memory model in one ONNX Runtime session."""

    def __init__(self, model: onnx.ModelProto, options: OnnxRuntimeOptions = OnnxRuntimeOptions(),
                 name: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.options = options
        self.name = name or ("ort-cuda" if options.provider == "cuda" else "ort-cpu")
        self.output_names = [value.name for value in model.graph.output]
        self._session = None
        self._binding = None
        self._bound_inputs: dict = {}
        self._bound_outputs: dict = {}
        # With options.profiling: the temporary folder holding the trace and the optimized model.
        self._profile_folder: Path | None = None

    @property
    def optimized_model_path(self) -> Path | None:
        """With profiling, the model as ONNX Runtime optimized it (fused, reordered): the nodes the trace names."""
        return None if self._profile_folder is None else self._profile_folder / "optimized.onnx"

    def end_profiling(self) -> Path:
        """Stop profiling and return the trace (Chrome-trace JSON, one event per node run); it is
        removed with the session at deactivate(), so read it before."""
        if self._session is None or self._profile_folder is None:
            raise RuntimeError(f"runner {self.name} is not an active profiling session")
        return Path(self._session.end_profiling())

    @property
    def description(self) -> RunnerDescription:
        ort = onnxruntime_module()
        device = cpu_name() if self.options.provider == "cpu" else _gpu_name()
        return RunnerDescription(
            backend="onnxruntime", device=device, mode=self.options.mode, precision=precision_of(self.model),
            versions={"onnxruntime": ort.__version__}, options=self._provider_options(),
        )

    def _provider_options(self) -> dict[str, str]:
        if self.options.provider == "cpu":
            return {}
        return {
            "enable_cuda_graph": str(int(self.options.cuda_graph)),
            "prefer_nhwc": str(int(self.options.prefer_nhwc)),
            "cudnn_conv_algo_search": self.options.cudnn_conv_algo_search,
            "use_tf32": str(int(self.options.tf32)),
        }

    def activate_impl(self) -> None:
        ort = onnxruntime_module()
        if self.options.provider == "cuda" and not cuda_available():
            raise RunnerUnavailable(
                "ONNX Runtime has no CUDA provider here (install onnxruntime-gpu on a machine with an NVIDIA GPU)"
            )
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        # ONNX Runtime's CPU threads spin for a while after a run ends. bench interleaves sessions,
        # so the threads of the row before would take the cores from the row after: measured on
        # the seed case (2 cores), the fixed model's row came out 1.17x slower than the original's
        # it followed, with no difference when each was profiled alone. Threads stop spinning when
        # the run returns; within a run they spin as usual.
        session_options.add_session_config_entry("session.force_spinning_stop", "1")
        session_options.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[self.options.optimization]
        if self.options.intra_op_threads:
            session_options.intra_op_num_threads = self.options.intra_op_threads
        if self.options.profiling:
            self._profile_folder = Path(tempfile.mkdtemp(prefix="onnxdoctor-profile-"))
            session_options.enable_profiling = True
            session_options.profile_file_prefix = str(self._profile_folder / "trace")
            session_options.optimized_model_filepath = str(self.optimized_model_path)
        model = self.model
        if exceeds_protobuf_limit(model):
            # Over 2 GiB the model cannot be serialized: large weights go to ONNX Runtime from memory.
            model, large = split_weights(model)
            values = [ort.OrtValue.ortvalue_from_numpy(onnx.numpy_helper.to_array(t)) for t in large]
            session_options.add_external_initializers([tensor.name for tensor in large], values)
        if self.options.provider == "cuda":
            providers = [("CUDAExecutionProvider", self._provider_options()), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(model.SerializeToString(), session_options, providers=providers)
        except BaseException:
            self._remove_profile_folder()
            raise
        if self.options.provider == "cuda":
            self._binding = self._session.io_binding()

    def deactivate_impl(self) -> None:
        self._session = self._binding = None
        self._bound_inputs, self._bound_outputs = {}, {}
        self._remove_profile_folder()

    def _remove_profile_folder(self) -> None:
        if self._profile_folder is not None:
            shutil.rmtree(self._profile_folder, ignore_errors=True)
            self._profile_folder = None

    def infer_impl(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        if self._binding is None:
            started = time.perf_counter()
            outputs = self._session.run(self.output_names, feed)
            elapsed = time.perf_counter() - started
            return dict(zip(self.output_names, outputs, strict=True)), Timing(total=elapsed, compute=elapsed)
        return self._infer_bound(feed)

    def _infer_bound(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        ort = onnxruntime_module()
        binding = self._binding
        started = time.perf_counter()
        for name, array in feed.items():
            array = np.ascontiguousarray(array)
            bound = self._bound_inputs.get(name)
            if bound is not None and tuple(bound.shape()) == array.shape:
                bound.update_inplace(array)  # same device address: what a CUDA graph replays on
            else:
                bound = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
                self._bound_inputs[name] = bound
                binding.bind_ortvalue_input(name, bound)
        binding.synchronize_inputs()
        copied_in = time.perf_counter()
        if not self._bound_outputs:
            for name in self.output_names:
                binding.bind_output(name, "cuda", 0)
        self._session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        computed = time.perf_counter()
        if self.options.cuda_graph and not self._bound_outputs:
            # Keep the buffers ORT allocated on the first run: ORT captures the graph on a later
            # run, and every replay writes to the addresses bound then.
            self._bound_outputs = dict(zip(self.output_names, binding.get_outputs(), strict=True))
            for name, value in self._bound_outputs.items():
                binding.bind_ortvalue_output(name, value)
        outputs = dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))
        finished = time.perf_counter()
        return outputs, Timing(total=finished - started, compute=computed - copied_in,
                               host_to_device=copied_in - started, device_to_host=finished - computed)


def _gpu_name() -> str:
    """The GPU's name from nvidia-smi, without importing torch or CUDA bindings."""
    import subprocess

    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=10)
        return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else "GPU"
    except (OSError, subprocess.TimeoutExpired):
        return "GPU"
