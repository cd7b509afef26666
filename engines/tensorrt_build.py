"""FP16 ONNX → serialized TensorRT plan, with TensorRT's log and progress in Python logging.

The network is strongly typed: precision comes from the ONNX graph (``model.fp16.onnx`` has
half weights and compute inside), not from builder flags. TensorRT 10.x needs the
STRONGLY_TYPED creation flag for that; 11.x removed weak typing, so every network is strongly
typed there and no flag is passed. The timing cache is loaded before and saved after the build,
so a rebuild for another profile or model on the same GPU skips most kernel timing.

`tensorrt` and `pycuda` are imported when first needed (`importlib`, so neither mypy nor this
module's import needs them installed), and `TensorRTUnavailable` says what to install.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from defectd.engines.engine_cache import ProfileShapes
from defectd.engines.errors import MissingDependency, UserError
from defectd.engines.files import atomic_write

log = logging.getLogger(__name__)

INPUT_NAME = "frames"
INSTALL_HINT = "pip install defectd[gpu] (needs an NVIDIA GPU and driver)"


class TensorRTError(UserError, RuntimeError):
    """A TensorRT step failed; the message says which and what to do."""


class TensorRTUnavailable(TensorRTError, MissingDependency):
    """TensorRT, pycuda or a usable NVIDIA GPU is missing."""


class TensorRTBuildError(TensorRTError):
    """The ONNX could not be parsed or TensorRT could not build a plan from it."""


def import_tensorrt() -> Any:
    """The `tensorrt` module (10.x or newer), or TensorRTUnavailable with the install hint."""
    try:
        trt: Any = importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:  # OSError: libnvinfer present but unloadable
        raise TensorRTUnavailable(f"TensorRT is not installed: {INSTALL_HINT}") from exc
    if _major(trt.__version__) < 10:
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} is too old (defectd needs 10 or newer): {INSTALL_HINT}"
        )
    return trt


def import_cuda() -> Any:
    """`pycuda.driver`, initialised, or TensorRTUnavailable with the install hint."""
    try:
        cuda: Any = importlib.import_module("pycuda.driver")
    except (ImportError, OSError) as exc:
        raise TensorRTUnavailable(f"pycuda is not installed: {INSTALL_HINT}") from exc
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise TensorRTUnavailable(f"CUDA driver not usable ({exc}): {INSTALL_HINT}") from exc
    if count < 1:
        raise TensorRTUnavailable(f"no NVIDIA GPU visible to CUDA: {INSTALL_HINT}")
    return cuda


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def tensorrt_version() -> str:
    """The installed TensorRT version, e.g. "10.13.3.9"."""
    return str(import_tensorrt().__version__)


def gpu_identity(device: int = 0) -> tuple[str, tuple[int, int]]:
    """Name and compute capability of CUDA device `device`, via pycuda."""
    cuda = import_cuda()
    gpu = cuda.Device(device)
    major, minor = gpu.compute_capability()
    return str(gpu.name()), (int(major), int(minor))


def trt_logger(trt: Any, target: logging.Logger = log) -> Any:
    """A `trt.ILogger` that forwards TensorRT's messages to `target` at matching levels."""
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,  # TensorRT's INFO is chatty: per-layer details
        severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, level: Any, message: str) -> None:
            target.log(levels.get(level, logging.INFO), "TensorRT: %s", message)

    return _Logger()


def progress_monitor(trt: Any, target: logging.Logger = log) -> Any | None:
    """An `IProgressMonitor` logging top-level build phases, or None where TensorRT has none."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc]
        # TensorRT calls these from its own threads.
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._started: dict[str, float] = {}
            self._top: set[str] = set()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._started[phase_name] = time.monotonic()
                if parent_phase is None:
                    self._top.add(phase_name)
            level = logging.INFO if parent_phase is None else logging.DEBUG
            target.log(level, "build: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                top = phase_name in self._top
            if top:
                target.info("build: %s step %d done", phase_name, step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                started = self._started.pop(phase_name, time.monotonic())
                top = phase_name in self._top
                self._top.discard(phase_name)
            level = logging.INFO if top else logging.DEBUG
            target.log(
                level, "build: %s finished in %.1f s", phase_name, time.monotonic() - started
            )

    return _Monitor()


def network_flags(trt: Any) -> int:
    """Creation flags for a strongly typed network: the flag on 10.x, none on 11.x."""
    if _major(trt.__version__) >= 11:
        return 0  # strongly typed is the only mode; the flag is ignored or gone
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} cannot build strongly typed networks: {INSTALL_HINT}"
        )
    return 1 << int(flag)


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    # From the file, not bytes, so external weight files next to the ONNX are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TensorRTBuildError(
            f"{onnx_path}: TensorRT could not parse the ONNX ({len(errors)} error(s)): "
            + "; ".join(errors)
            + " — re-export the model with `defectd export`"
        )
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [INPUT_NAME]:
        raise TensorRTBuildError(
            f"{onnx_path}: inputs {names}, expected [{INPUT_NAME!r}]; re-export the model"
        )


def _load_timing_cache(config: Any, path: Path, log: logging.Logger) -> None:
    data = path.read_bytes() if path.is_file() else b""
    cache = None
    if data:
        try:
            cache = config.create_timing_cache(data)
        except RuntimeError as exc:  # pybind11 turns TensorRT's failure into RuntimeError
            log.warning("timing cache %s is unreadable (%s)", path, exc)
    # ignore_mismatch False: a cache from another GPU or TensorRT is refused, not trusted.
    if cache is not None and config.set_timing_cache(cache, False):
        log.info("timing cache: %s (%d KiB)", path, len(data) >> 10)
        return
    if data:
        log.warning("timing cache %s does not fit this GPU/TensorRT; starting an empty one", path)
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        raise TensorRTBuildError("TensorRT refused an empty timing cache; see its log above")


def _save_timing_cache(config: Any, path: Path, log: logging.Logger) -> None:
    data = bytes(memoryview(config.get_timing_cache().serialize()))
    atomic_write(path, lambda partial: partial.write_bytes(data))
    log.info("timing cache saved: %s (%d KiB)", path, len(data) >> 10)


def build_serialized_engine(
    onnx_path: Path,
    profile: ProfileShapes,
    workspace_mb: int,
    timing_cache_path: Path,
    log: logging.Logger = log,
) -> bytes:
    """Build a plan for the strongly typed network in `onnx_path`; TensorRTBuildError if not."""
    if workspace_mb < 1:
        raise ValueError(f"workspace_mb must be at least 1, got {workspace_mb}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: ONNX file not found; re-export the model")
    trt = import_tensorrt()
    logger = trt_logger(trt, log)
    started = time.monotonic()
    log.info("building TensorRT %s engine from %s (can take minutes)", trt.__version__, onnx_path)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)
    _load_timing_cache(config, timing_cache_path, log)
    monitor = progress_monitor(trt, log)  # kept referenced until the build returns
    if monitor is not None:
        config.progress_monitor = monitor
    else:
        log.info("build: optimising (this TensorRT reports no progress)")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTBuildError(
            f"TensorRT could not build an engine from {onnx_path} (see the TensorRT errors "
            f"logged above); if it ran out of memory, raise --workspace-mb from {workspace_mb}"
        )
    _save_timing_cache(config, timing_cache_path, log)
    data = bytes(memoryview(plan))
    log.info("built %.1f MiB engine in %.0f s", len(data) / 2**20, time.monotonic() - started)
    return data
