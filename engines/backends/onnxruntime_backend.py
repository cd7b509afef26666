"""ONNX Runtime backend: the embedded CPU default, and the reference for parity checks.

CPU by default; the CUDA execution provider when onnxruntime-gpu is installed and the engine
is opened with ``device="cuda"``. Every ONNX file of a model runs here: FP32, the FP16 graph and
the INT8 QDQ graph of `defectd quantize` (ONNX Runtime fuses its Q/DQ pairs into QLinearConv).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from defectd.engines.engine import Engine, EngineInfo, EngineOutput
from defectd.engines.errors import InvalidInput, InvalidSetting, MissingDependency
from defectd.engines.model_card import InputSpec, ModelCard

OUTPUTS = ("probs", "presence", "peak")
CUDA_PROVIDER = "CUDAExecutionProvider"


def cuda_provider_available() -> bool:
    """True when this onnxruntime build has the CUDA execution provider (onnxruntime-gpu)."""
    return CUDA_PROVIDER in ort.get_available_providers()


class OnnxRuntimeEngine(Engine):
    """An ONNX Runtime session over one ONNX file of a model directory."""

    def __init__(
        self,
        path: Path | str,
        spec: InputSpec = InputSpec(),  # noqa: B008  (frozen dataclass)
        threads: int | None = None,
        device: str = "cpu",
        max_batch: int = 32,
        classes: tuple[str, ...] = ("1", "2", "3", "4"),
        model: str = "",
        precision: str | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX file not found")
        if threads is not None and threads < 1:
            raise InvalidSetting(f"ONNX Runtime threads must be at least 1, got {threads}")
        if device not in ("cpu", "cuda"):
            raise InvalidSetting(f"onnxruntime device must be cpu or cuda, got {device!r}")
        if device == "cuda" and not cuda_provider_available():
            raise MissingDependency(
                "onnxruntime device cuda: this onnxruntime has no CUDAExecutionProvider; "
                "pip install onnxruntime-gpu (in place of onnxruntime), or use device cpu"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = [CUDA_PROVIDER, "CPUExecutionProvider"] if device == "cuda" else None
        self.session: ort.InferenceSession | None = ort.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
        names = [o.name for o in self.session.get_outputs()]
        if tuple(names) != OUTPUTS:
            raise InvalidInput(f"{path}: outputs {names}, expected {list(OUTPUTS)}; re-export it")
        self.input_name = self.session.get_inputs()[0].name
        if precision is None:  # a bare file: FP16 when its outputs are, else FP32
            precision = "fp16" if "float16" in self.session.get_outputs()[0].type else "fp32"
        super().__init__(
            EngineInfo("onnxruntime", device, precision, max_batch, model or path.name, classes),
            spec,
        )
        self.path = path

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        precision: str = "fp32",
        threads: int | None = None,
        device: str = "cpu",
        max_batch: int = 32,
    ) -> OnnxRuntimeEngine:
        return cls(
            card.onnx_path(precision),
            card.input,
            threads,
            device,
            max_batch,
            card.classes,
            f"{card.name} {card.version}",
            precision,
        )

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        assert self.session is not None  # Engine.infer refuses a closed engine
        probs, presence, peak = self.session.run(list(OUTPUTS), {self.input_name: batch})
        return EngineOutput(np.asarray(probs), np.asarray(presence), np.asarray(peak))

    def _release(self) -> None:
        self.session = None  # the session frees its memory when the last reference goes
