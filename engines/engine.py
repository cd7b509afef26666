"""The one engine interface: uint8 frames in, per-class probabilities and scores out.

Every backend (ONNX Runtime, OpenVINO, PyTorch, TensorRT, null) takes a uint8 batch N×H×W (or
N×1×H×W), N ≤ ``info.max_batch``, and returns an `EngineOutput`. The daemon, `evaluate`,
`tune` and the benchmarks only ever talk to `Engine`; `engines.selection.open_engine` picks the
backend.

Backends subclass `Engine`, which owns what they share: input checks, the batch limit,
warm-up, the context manager and an idempotent `close()`. What runs (backend, device,
precision, batch limit, classes) is one value, `Engine.info`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidInput
from defectd.engines.model_card import InputSpec

BACKENDS = ("tensorrt", "torch", "onnxruntime", "openvino", "null")
# int8: the model card's quantized ONNX (`defectd quantize`), on ONNX Runtime or OpenVINO.
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineOutput:
    """Results for a batch of N frames."""

    probs: npt.NDArray[np.floating[Any]]  # N×C×H×W per-pixel probabilities
    presence: npt.NDArray[np.floating[Any]]  # N×C image-level presence probabilities
    peak: npt.NDArray[np.floating[Any]]  # N×C highest pixel probability per class


@dataclass(frozen=True)
class EngineInfo:
    """What runs: logged at start and exported as metric labels by the daemon."""

    backend: str  # one of BACKENDS
    device: str  # "cpu", or e.g. "cuda:0 NVIDIA H100 80GB HBM3"
    precision: str  # "fp32" | "fp16" | "int8"
    max_batch: int
    model: str  # "name version" from the model card
    classes: tuple[str, ...]

    def labels(self) -> dict[str, str]:
        """Prometheus label set (all strings)."""
        return {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "max_batch": str(self.max_batch),
            "model": self.model,
        }

    def describe(self) -> str:
        return (
            f"{self.backend} on {self.device}, {self.precision}, max batch {self.max_batch}, "
            f"model {self.model}"
        )


def as_batch(
    frames: npt.NDArray[Any], spec: InputSpec, max_batch: int | None = None
) -> npt.NDArray[np.uint8]:
    """`frames` as a contiguous uint8 N×C×H×W batch, or ValueError naming what was expected."""
    expected = f"N×{spec.channels}×{spec.height}×{spec.width} uint8"
    array = np.asarray(frames)
    if array.ndim == 3 and spec.channels == 1:
        array = array[:, None]
    got = "×".join(map(str, array.shape)) + f" {array.dtype}"
    if array.dtype != np.uint8:
        raise InvalidInput(f"model expects {expected} frames, got {got} (send raw 8-bit grey)")
    if array.ndim != 4 or array.shape[1:] != (spec.channels, spec.height, spec.width):
        raise InvalidInput(f"model expects {expected} frames, got {got}")
    if array.shape[0] < 1:
        raise InvalidInput("empty batch: send at least one frame")
    if max_batch is not None and array.shape[0] > max_batch:
        raise InvalidInput(
            f"batch of {array.shape[0]} frames is over this engine's max_batch {max_batch}: "
            "split it, or open the engine with a larger max_batch"
        )
    return np.ascontiguousarray(array)


def warmup_sizes(max_batch: int) -> tuple[int, ...]:
    """Batch sizes to run once at warm-up: 1, the powers of two below max_batch, max_batch."""
    sizes = {1, max_batch}
    size = 2
    while size < max_batch:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


class Engine(abc.ABC):
    """A loaded model that runs batches of frames; use it as a context manager.

    Backends implement `_run` (and `_release` when they hold more than memory)."""

    def __init__(self, info: EngineInfo, spec: InputSpec) -> None:
        if info.backend not in BACKENDS:
            raise ValueError(f"unknown backend {info.backend!r}; choose from {BACKENDS}")
        if info.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {info.precision!r}; choose from {PRECISIONS}")
        if info.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {info.max_batch}")
        self._info = info
        self._input = spec
        self._closed = False

    @property
    def info(self) -> EngineInfo:
        """What runs: backend, device, precision, max batch, model and classes."""
        return self._info

    @property
    def input(self) -> InputSpec:
        """The frames the model takes (channels, height, width)."""
        return self._input

    @property
    def name(self) -> str:
        return f"{self._info.backend}:{self._info.precision}"

    @property
    def closed(self) -> bool:
        return self._closed

    def infer(self, frames: npt.NDArray[Any]) -> EngineOutput:
        """Run one batch; `InvalidInput` naming the expected shape when `frames` do not fit."""
        if self._closed:
            raise RuntimeError(f"{self.name} engine is closed; open a new one")
        return self._run(as_batch(frames, self._input, self._info.max_batch))

    def warmup(self) -> None:
        """Run every batch size the engine will see once, so the first frame is not slow."""
        spec = self._input
        for size in warmup_sizes(self._info.max_batch):
            self.infer(np.zeros((size, spec.channels, spec.height, spec.width), np.uint8))

    def close(self) -> None:
        """Free the engine's resources (sessions, GPU memory); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        """Run a checked uint8 N×C×H×W batch (1 ≤ N ≤ max_batch)."""

    def _release(self) -> None:  # noqa: B027  (optional hook: most backends free by refcount)
        """Free resources; called once by `close()`."""
