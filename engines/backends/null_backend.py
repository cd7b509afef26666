"""Null backend: no model, "no defect" for every frame, instantly.

It measures the pipeline's own capacity (ingest, batching, post-processing, publishing)
without an engine in the way. Outputs are read-only zero views, so a batch costs no
allocation of N×C×H×W maps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineInfo, EngineOutput
from defectd.engines.model_card import InputSpec


class NullEngine(Engine):
    """An engine that finds nothing; same input checks as a real one."""

    def __init__(
        self,
        spec: InputSpec = InputSpec(),  # noqa: B008  (frozen dataclass)
        classes: tuple[str, ...] = ("1", "2", "3", "4"),
        max_batch: int = 32,
        model: str = "none",
    ) -> None:
        if not classes:
            raise ValueError("the null engine needs at least one class name")
        super().__init__(EngineInfo("null", "cpu", "fp32", max_batch, model, classes), spec)

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        n, c = batch.shape[0], self.num_classes
        zero = np.zeros((), np.float32)
        return EngineOutput(
            probs=np.broadcast_to(zero, (n, c, self.input.height, self.input.width)),
            presence=np.broadcast_to(zero, (n, c)),
            peak=np.broadcast_to(zero, (n, c)),
        )
