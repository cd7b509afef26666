"""Null backend: no model, "no defect" for every frame, instantly.

It measures the pipeline's own capacity (ingest, batching, post-processing, publishing)
without an engine in the way. Outputs are read-only zero views, so a batch costs no
allocation of N×C×H×W maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from engines.engine import EngineOutput, as_batch
from engines.model_card import InputSpec


class NullEngine:
    """An engine that finds nothing; same input checks as a real one."""

    def __init__(self, spec: InputSpec = InputSpec(), num_classes: int = 4) -> None:  # noqa: B008
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.input = spec
        self.num_classes = num_classes
        self.name = "null"

    def infer(self, frames: npt.NDArray[Any]) -> EngineOutput:
        batch = as_batch(frames, self.input)
        n, c = batch.shape[0], self.num_classes
        zero = np.zeros((), np.float32)
        return EngineOutput(
            probs=np.broadcast_to(zero, (n, c, self.input.height, self.input.width)),
            presence=np.broadcast_to(zero, (n, c)),
            peak=np.broadcast_to(zero, (n, c)),
        )
