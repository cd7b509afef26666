"""The one engine interface: uint8 frames in, per-class probabilities and scores out.

Every backend (ONNX Runtime today; torch, TensorRT and null with the engines issue) takes a
uint8 batch N×1×H×W (or N×H×W) and returns an `EngineOutput`. Callers never know which
backend runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engines.model_card import InputSpec


@dataclass(frozen=True)
class EngineOutput:
    """Results for a batch of N frames."""

    probs: npt.NDArray[np.floating[Any]]  # N×C×H×W per-pixel probabilities
    presence: npt.NDArray[np.floating[Any]]  # N×C image-level presence probabilities
    peak: npt.NDArray[np.floating[Any]]  # N×C highest pixel probability per class


class Engine(Protocol):
    """A loaded model that runs batches of frames."""

    name: str
    input: InputSpec

    def infer(self, frames: npt.NDArray[np.uint8]) -> EngineOutput:
        """Run one batch; ValueError naming the expected shape when `frames` do not fit."""
        ...


def as_batch(frames: npt.NDArray[Any], spec: InputSpec) -> npt.NDArray[np.uint8]:
    """`frames` as a contiguous uint8 N×C×H×W batch, or ValueError naming what was expected."""
    expected = f"N×{spec.channels}×{spec.height}×{spec.width} uint8"
    array = np.asarray(frames)
    if array.ndim == 3 and spec.channels == 1:
        array = array[:, None]
    got = "×".join(map(str, array.shape)) + f" {array.dtype}"
    if array.dtype != np.uint8:
        raise ValueError(f"model expects {expected} frames, got {got} (send raw 8-bit grey)")
    if array.ndim != 4 or array.shape[1:] != (spec.channels, spec.height, spec.width):
        raise ValueError(f"model expects {expected} frames, got {got}")
    if array.shape[0] < 1:
        raise ValueError("empty batch: send at least one frame")
    return np.ascontiguousarray(array)
