"""ONNX Runtime backend: the embedded CPU default (and the reference for parity checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from engines.engine import EngineOutput, as_batch
from engines.model_card import InputSpec, ModelCard

OUTPUTS = ("probs", "presence", "peak")


class OnnxRuntimeEngine:
    """An ONNX Runtime session over one ONNX file of a model directory."""

    def __init__(
        self,
        path: Path | str,
        spec: InputSpec = InputSpec(),  # noqa: B008  (frozen dataclass)
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX file not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
        names = [o.name for o in self.session.get_outputs()]
        if tuple(names) != OUTPUTS:
            raise ValueError(f"{path}: outputs {names}, expected {list(OUTPUTS)}; re-export it")
        self.input_name = self.session.get_inputs()[0].name
        self.input = spec
        self.name = f"onnxruntime:{path.name}"

    @classmethod
    def from_card(
        cls, card: ModelCard, precision: str = "fp32", threads: int | None = None
    ) -> OnnxRuntimeEngine:
        return cls(card.onnx_path(precision), card.input, threads)

    def infer(self, frames: npt.NDArray[Any]) -> EngineOutput:
        batch = as_batch(frames, self.input)
        probs, presence, peak = self.session.run(list(OUTPUTS), {self.input_name: batch})
        return EngineOutput(np.asarray(probs), np.asarray(presence), np.asarray(peak))
