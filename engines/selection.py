"""Open the right engine for this machine: ``engine.backend: auto | tensorrt | torch |
onnxruntime | null``.

``auto`` takes TensorRT when it is importable and a GPU is present, else PyTorch on CUDA, else
ONNX Runtime on the CPU. The choice and its reason are logged, and `EngineInfo.labels()` is
what the daemon exports as metric labels.

What the machine has is found once by `detect_platform()` and passed to `choose_backend`, a
pure function, so the decision is testable on any machine.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from defectd.engines.backends.null_backend import NullEngine
from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine, cuda_provider_available
from defectd.engines.backends.openvino_backend import INSTALL_HINT as OPENVINO_HINT
from defectd.engines.backends.openvino_backend import OpenVinoEngine, openvino_available
from defectd.engines.engine import BACKENDS, PRECISIONS, Engine
from defectd.engines.errors import InvalidSetting, MissingDependency
from defectd.engines.model_card import ModelCard, read_card

log = logging.getLogger(__name__)
CHOICES = ("auto", *BACKENDS)
GPU_INSTALL_HINT = "pip install 'defectd[gpu]' (TensorRT and pycuda; needs an NVIDIA GPU)"


def default_cache_dir() -> Path:
    """$DEFECTD_ENGINE_CACHE, else ~/.cache/defectd/engines (systemd: StateDirectory)."""
    configured = os.environ.get("DEFECTD_ENGINE_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "defectd" / "engines"


@dataclass(frozen=True)
class EngineConfig:
    """The ``engine:`` section of the daemon config (and the bench/CLI engine options)."""

    backend: str = "auto"
    precision: str | None = None  # None: fp16 on the GPU, fp32 on the CPU
    max_batch: int = 16
    opt_batch: int | None = None  # TensorRT profile's "opt" batch; None: min(8, max_batch)
    threads: int | None = None  # CPU threads (onnxruntime, torch on the CPU); None: all
    device: str | None = None  # onnxruntime/torch: "cpu" or "cuda"; None: cuda when usable
    cuda_graphs: bool = True  # torch on CUDA
    cache_dir: str | None = None  # TensorRT engine cache; None: default_cache_dir()
    workspace_mb: int = 4096  # TensorRT builder workspace limit
    warmup: bool = True  # run every batch size once before the first frame

    def __post_init__(self) -> None:
        if self.backend not in CHOICES:
            raise InvalidSetting(
                f"engine.backend {self.backend!r} is not one of {', '.join(CHOICES)}"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InvalidSetting(
                f"engine.precision {self.precision!r}: use {', '.join(PRECISIONS)}"
            )
        if self.device is not None and self.device not in ("cpu", "cuda"):
            raise InvalidSetting(f"engine.device {self.device!r}: use cpu or cuda")
        if self.max_batch < 1:
            raise InvalidSetting(f"engine.max_batch must be at least 1, got {self.max_batch}")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise InvalidSetting(
                f"engine.opt_batch must be in 1..max_batch ({self.max_batch}), got {self.opt_batch}"
            )
        if self.threads is not None and self.threads < 1:
            raise InvalidSetting(f"engine.threads must be at least 1, got {self.threads}")
        if self.workspace_mb < 64:
            raise InvalidSetting(
                f"engine.workspace_mb must be at least 64, got {self.workspace_mb}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EngineConfig:
        """From the YAML ``engine:`` mapping; ValueError naming an unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidSetting(
                f"engine: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise InvalidSetting(f"engine: {exc}") from None


@dataclass(frozen=True)
class TensorRTSettings:
    """What a TensorRT engine is built with for an ``engine:`` config, defaults resolved.

    The daemon and ``defectd build-engine --config`` both take it from here, so an engine built
    ahead of a start has the cache key the daemon looks for.
    """

    max_batch: int
    opt_batch: int
    cache_dir: Path
    workspace_mb: int

    @classmethod
    def of(cls, config: EngineConfig) -> TensorRTSettings:
        return cls(
            max_batch=config.max_batch,
            opt_batch=config.opt_batch or min(8, config.max_batch),
            cache_dir=Path(config.cache_dir) if config.cache_dir else default_cache_dir(),
            workspace_mb=config.workspace_mb,
        )


@dataclass(frozen=True)
class Platform:
    """What this machine can run."""

    tensorrt: bool  # tensorrt and pycuda importable
    torch: bool  # torch importable
    torch_cuda: bool  # torch sees a CUDA GPU
    onnxruntime_cuda: bool  # onnxruntime-gpu's CUDA execution provider present
    openvino: bool = False  # the openvino package importable

    @property
    def gpu(self) -> bool:
        return self.torch_cuda or self.onnxruntime_cuda


def _nvidia_gpu_present() -> bool:
    """A GPU device node exists (no CUDA library needed to ask)."""
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def detect_platform() -> Platform:
    """Probe the installed libraries and the GPU once (imports only what is cheap to find)."""
    has_trt = all(importlib.util.find_spec(name) is not None for name in ("tensorrt", "pycuda"))
    has_torch = importlib.util.find_spec("torch") is not None
    torch_cuda = False
    if has_torch:
        from defectd.engines.backends.torch_backend import cuda_available

        torch_cuda = cuda_available()
    return Platform(
        tensorrt=has_trt and _nvidia_gpu_present(),
        torch=has_torch,
        torch_cuda=torch_cuda,
        onnxruntime_cuda=cuda_provider_available() and _nvidia_gpu_present(),
        openvino=openvino_available(),
    )


@dataclass(frozen=True)
class Choice:
    """A backend, where it runs, at what precision, and why it was picked."""

    backend: str
    device: str  # "cpu" | "cuda"
    precision: str
    reason: str


def choose_backend(config: EngineConfig, platform: Platform) -> Choice:
    """The backend for `config` on `platform`; RuntimeError naming what to install."""
    backend = config.backend
    reason = f"engine.backend is {backend}"
    if backend == "auto":
        if platform.tensorrt:
            backend, reason = "tensorrt", "auto: TensorRT is installed and a GPU is present"
        elif platform.torch_cuda:
            backend, reason = "torch", "auto: no TensorRT; PyTorch sees a CUDA GPU"
        else:
            backend, reason = "onnxruntime", "auto: no GPU backend usable; ONNX Runtime on CPU"
    if backend == "tensorrt" and not platform.tensorrt:
        raise MissingDependency(
            f"engine.backend tensorrt: TensorRT/pycuda or an NVIDIA GPU is missing; "
            f"{GPU_INSTALL_HINT}, or use backend auto"
        )
    if backend == "torch" and not platform.torch:
        raise MissingDependency(
            "engine.backend torch: PyTorch is not installed; pip install 'defectd[train]' "
            "(CPU) or a CUDA torch build, or use backend onnxruntime"
        )
    if backend == "openvino" and not platform.openvino:
        raise MissingDependency(
            f"engine.backend openvino: the openvino package is not installed; {OPENVINO_HINT}, "
            "or use backend onnxruntime"
        )
    device = config.device
    if device is None:
        if backend == "tensorrt":
            device = "cuda"
        elif backend == "torch":
            device = "cuda" if platform.torch_cuda else "cpu"
        elif backend == "onnxruntime":
            device = "cuda" if (config.backend != "auto" and platform.onnxruntime_cuda) else "cpu"
        else:
            device = "cpu"  # null, openvino
    if backend == "openvino" and device != "cpu":
        raise InvalidSetting("engine.backend openvino runs on the CPU: set engine.device cpu")
    if backend == "tensorrt" and device != "cuda":
        raise InvalidSetting("engine.backend tensorrt runs on the GPU: remove engine.device cpu")
    precision = config.precision or ("fp16" if device == "cuda" else "fp32")
    if backend == "tensorrt" and precision != "fp16":
        raise InvalidSetting(
            "engine.backend tensorrt builds from model.fp16.onnx: set engine.precision fp16 "
            "(or leave it unset)"
        )
    if precision == "int8" and backend not in ("onnxruntime", "openvino", "null"):
        raise InvalidSetting(
            f"engine.precision int8 runs on onnxruntime or openvino (the card's INT8 ONNX from "
            f"`defectd quantize`), not {backend}"
        )
    if backend == "openvino" and precision == "fp16":
        raise InvalidSetting("engine.backend openvino runs fp32 or int8: set engine.precision")
    if backend == "torch" and device == "cpu" and precision == "fp16":
        raise InvalidSetting("torch fp16 needs CUDA: set engine.precision fp32 on the CPU")
    return Choice(backend, device, precision, reason)


@dataclass(frozen=True)
class FrameFormat:
    """What the cameras send, for the model-fits-frames check at start."""

    height: int
    width: int
    channels: int = 1
    classes: tuple[str, ...] | None = None  # names the events will use; None: any


def check_model_fits(card: ModelCard, frames: FrameFormat) -> None:
    """ValueError saying what the model expects when it cannot take these frames. Frames of
    another size than the model's input are fine: they are cut into tiles of the input's size
    (padded where smaller; `engines.tiled_engine`)."""
    spec = card.input
    if frames.channels != spec.channels:
        raise InvalidSetting(
            f"model {card.name} {card.version} takes {spec.channels}-channel frames, the "
            f"cameras send {frames.channels}: configure mono8 (grey) frames"
        )
    if frames.classes is not None and tuple(frames.classes) != tuple(card.classes):
        raise InvalidSetting(
            f"model {card.name} {card.version} has classes {list(card.classes)}, the config "
            f"expects {list(frames.classes)}: update the config's class names or the model"
        )


def cpu_auto(card: ModelCard, config: EngineConfig, fallback: Choice) -> Choice:
    """``auto`` on a CPU: the engine `defectd build-engine` measured fastest for this model
    and machine (`engines.cpu_choice`), else `fallback` (ONNX Runtime FP32), saying how to
    measure when the model has more than one CPU engine to choose from."""
    from defectd.engines.cpu_choice import read_choice, resolved_threads

    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    threads = resolved_threads(config.threads)
    recorded = read_choice(cache, card, threads, config.max_batch)
    if recorded is not None:
        return Choice(recorded.backend, "cpu", recorded.precision, recorded.reason)
    if "int8" in card.files or openvino_available():
        return replace(
            fallback,
            reason=f"{fallback.reason} FP32; `defectd build-engine --model "
            f"{card.directory or 'DIR'} --cpu` measures INT8 and OpenVINO for this model and "
            "lets auto take the fastest",
        )
    return fallback


def check_int8(card: ModelCard, backend: str) -> None:
    """InvalidSetting unless the card's INT8 file passed its parity check on `backend`
    (`defectd quantize` records one per runtime)."""
    if "int8" not in card.files:
        raise InvalidSetting(
            f"model {card.name} {card.version} has no INT8 file: make one with `defectd quantize "
            f"--model {card.directory or 'DIR'} --data DIR` or use engine.precision fp32"
        )
    if backend == "null":
        return
    checked = card.parity.get("int8", {}).get(backend)
    if not isinstance(checked, dict):
        raise InvalidSetting(
            f"model {card.name}: its INT8 file was never checked on {backend}; run `defectd "
            f"quantize --runtimes {backend}` (with {backend} installed) or use engine.precision "
            "fp32"
        )
    if not checked.get("passed"):
        failures = "; ".join(checked.get("failures", [])) or "see the card"
        raise InvalidSetting(
            f"model {card.name}: its INT8 file failed parity on {backend} ({failures}); use "
            "engine.precision fp32, or another backend where it passed"
        )


def open_engine(
    model: Path | str | ModelCard | None,
    config: EngineConfig = EngineConfig(),
    frames: FrameFormat | None = None,
    platform: Platform | None = None,
) -> Engine:
    """Open, check and warm up the engine that `config` selects on this machine.

    `model` is a model directory (or its card); it may be None only for the null backend.
    """
    if model is None:
        if config.backend != "null":
            raise InvalidSetting(f"engine.backend {config.backend} needs a model directory")
        engine: Engine = NullEngine(max_batch=config.max_batch)
        log.info("engine: %s (engine.backend is null)", engine.info.describe())
        return engine
    card = model if isinstance(model, ModelCard) else read_card(model)
    card.verify()
    if frames is not None:
        check_model_fits(card, frames)
    choice = choose_backend(config, platform or detect_platform())
    if config.backend == "auto" and choice.device == "cpu" and config.precision is None:
        choice = cpu_auto(card, config, choice)
    if choice.precision == "int8":
        check_int8(card, choice.backend)
    engine = _open(card, config, choice)
    log.info("engine: %s (%s)", engine.info.describe(), choice.reason)
    if config.warmup:
        try:
            engine.warmup()
        except BaseException:
            engine.close()
            raise
    return engine


def _open(card: ModelCard, config: EngineConfig, choice: Choice) -> Engine:
    if choice.backend == "null":
        return NullEngine(card.input, card.classes, config.max_batch, f"{card.name} {card.version}")
    if choice.backend == "onnxruntime":
        return OnnxRuntimeEngine.from_card(
            card, choice.precision, config.threads, choice.device, config.max_batch
        )
    if choice.backend == "openvino":
        return OpenVinoEngine.from_card(card, choice.precision, config.threads, config.max_batch)
    if choice.backend == "torch":
        from defectd.engines.backends.torch_backend import TorchEngine

        return TorchEngine.from_card(
            card,
            choice.device,
            choice.precision,
            config.max_batch,
            config.cuda_graphs,
            config.threads,
        )
    from defectd.engines.backends.tensorrt_backend import TensorRTEngine

    build = TensorRTSettings.of(config)
    return TensorRTEngine.from_card(
        card,
        max_batch=build.max_batch,
        opt_batch=build.opt_batch,
        cache_dir=build.cache_dir,
        workspace_mb=build.workspace_mb,
    )
