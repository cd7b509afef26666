"""OpenVINO backend: Intel's CPU runtime, for the FP32 ONNX file and the INT8 QDQ file.

An optional extra (``pip install 'defectd[openvino]'``). OpenVINO reads the model card's ONNX
files directly: ``fp32`` is ``model.onnx``; ``int8`` is ``model.int8.onnx`` from `defectd
quantize`, whose Q/DQ pairs OpenVINO turns into INT8 kernels. Inference precision is pinned to
f32 for everything not quantized: on CPUs with bfloat16 instructions OpenVINO would otherwise
run an "FP32" model in bf16, which is not the model the parity checks measured.

The batch dimension stays dynamic, as in the ONNX file; one infer request is reused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineInfo, EngineOutput
from defectd.engines.errors import InvalidInput, InvalidSetting, MissingDependency
from defectd.engines.model_card import InputSpec, ModelCard

OUTPUTS = ("probs", "presence", "peak")
INSTALL_HINT = "pip install 'defectd[openvino]'"
OPENVINO_PRECISIONS = ("fp32", "int8")


def openvino_available() -> bool:
    """True when the openvino package can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise MissingDependency(
            f"engine.backend openvino: the openvino package is not installed; {INSTALL_HINT}, "
            "or use backend onnxruntime"
        ) from None
    return openvino


class OpenVinoEngine(Engine):
    """An OpenVINO compiled model over one ONNX file of a model directory, on the CPU."""

    def __init__(
        self,
        path: Path | str,
        spec: InputSpec = InputSpec(),  # noqa: B008  (frozen dataclass)
        threads: int | None = None,
        max_batch: int = 32,
        classes: tuple[str, ...] = ("1", "2", "3", "4"),
        model: str = "",
        precision: str = "fp32",
    ) -> None:
        openvino = _openvino()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX file not found")
        if threads is not None and threads < 1:
            raise InvalidSetting(f"OpenVINO threads must be at least 1, got {threads}")
        if precision not in OPENVINO_PRECISIONS:
            raise InvalidSetting(
                f"engine.backend openvino runs {' or '.join(OPENVINO_PRECISIONS)}, not "
                f"{precision}: set engine.precision fp32 or int8"
            )
        core = openvino.Core()
        network = core.read_model(str(path))
        names = [output.get_any_name() for output in network.outputs]
        if tuple(names) != OUTPUTS:
            raise InvalidInput(f"{path}: outputs {names}, expected {list(OUTPUTS)}; re-export it")
        settings: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if threads is not None:
            settings["INFERENCE_NUM_THREADS"] = threads
        self._compiled: Any = core.compile_model(network, "CPU", settings)
        self._request: Any = self._compiled.create_infer_request()
        super().__init__(
            EngineInfo("openvino", "cpu", precision, max_batch, model or path.name, classes), spec
        )
        self.path = path

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        precision: str = "fp32",
        threads: int | None = None,
        max_batch: int = 32,
    ) -> OpenVinoEngine:
        if precision not in OPENVINO_PRECISIONS:
            raise InvalidSetting(
                f"engine.backend openvino runs {' or '.join(OPENVINO_PRECISIONS)}, not "
                f"{precision}: set engine.precision fp32 or int8"
            )
        return cls(
            card.onnx_path(precision),
            card.input,
            threads,
            max_batch,
            card.classes,
            f"{card.name} {card.version}",
            precision,
        )

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        request = self._request
        request.infer({0: batch})
        # Copies: the request's output tensors are overwritten by the next call.
        probs, presence, peak = (
            np.array(request.get_output_tensor(index).data) for index in range(len(OUTPUTS))
        )
        return EngineOutput(probs, presence, peak)

    def _release(self) -> None:
        self._request = None
        self._compiled = None
