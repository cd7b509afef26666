"""Static INT8 quantization of a model's FP32 ONNX file with ONNX Runtime's tools.

`quantize_onnx` writes a QDQ graph (QuantizeLinear/DequantizeLinear pairs around each
quantized op, which ONNX Runtime fuses into QLinearConv and friends, and which OpenVINO runs as
INT8 kernels): uint8 activations, int8 weights per output channel — the combination x86 VNNI
instructions multiply fastest. Activation ranges come from calibration frames: real frames of
the model's own training data, cut into the engine's input size exactly as the predictor cuts
them (`calibration_frames`), so the ranges are those the engine will see.

Whether the INT8 file may be used is not decided here: `engines.quant_parity` compares it with
the FP32 file on evaluation frames, and `defectd quantize` keeps it only when it passes.
Needs the ``onnx`` package (``pip install 'defectd[int8]'``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.datasets import Dataset
from defectd.engines.errors import InvalidSetting, MissingDependency
from defectd.engines.tiler import cut, plan_tiles

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"
METHODS = ("minmax", "percentile", "entropy")
INSTALL_HINT = "pip install 'defectd[int8]' (the onnx package ONNX Runtime's quantizer needs)"


@dataclass(frozen=True)
class Calibration:
    """What the activation ranges were measured on (recorded in the model card)."""

    data: str
    images: int  # images read
    frames: int  # engine-sized frames (tiles) fed to the calibrator
    method: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "images": self.images,
            "frames": self.frames,
            "method": self.method,
            "seed": self.seed,
        }


def calibration_frames(
    dataset: Dataset,
    image_ids: Sequence[str],
    shape: tuple[int, int],
    fill: int,
    count: int,
    seed: int = 0,
) -> tuple[list[npt.NDArray[np.uint8]], int]:
    """Up to `count` H×W uint8 engine inputs from a seeded draw of `image_ids`: each image cut
    into tiles of the model's `shape` (padded with `fill`), as `Predictor` cuts it; and how
    many images were read."""
    if count < 1:
        raise InvalidSetting(f"calibration needs at least 1 frame, got {count}")
    if not image_ids:
        raise InvalidSetting(f"{dataset.root}: no images to calibrate on")
    order = np.random.default_rng(seed).permutation(len(image_ids))
    frames: list[npt.NDArray[np.uint8]] = []
    read = 0
    for index in order:
        image = dataset.read_image(image_ids[int(index)])
        read += 1
        grid = plan_tiles((image.shape[0], image.shape[1]), shape, overlap=0)
        frames.extend(cut(image, grid, fill))
        if len(frames) >= count:
            break
    return frames[:count], read


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of frames, one at a time."""

    def __init__(self, input_name: str, frames: Sequence[npt.NDArray[np.uint8]]) -> None:
        self._input = input_name
        self._frames: Iterator[npt.NDArray[np.uint8]] = iter(frames)

    def get_next(self) -> dict[str, npt.NDArray[np.uint8]] | None:
        frame = next(self._frames, None)
        return None if frame is None else {self._input: frame[None, None]}


BACKBONE = ("/model/encoder/", "/model/decoder/")  # node names of defectd's exported graphs


def float_nodes(path: Path) -> list[str]:
    """The nodes left in float by `heads_float`: all but the encoder's and decoder's — the
    segmentation and presence heads, the in-graph normalisation and the outputs, where a
    probability near a threshold would otherwise move with the INT8 rounding. Empty for a
    graph without defectd's node names (then everything is quantized)."""
    import onnx

    names = [node.name for node in onnx.load(str(path)).graph.node]
    if not any(name.startswith(BACKBONE) for name in names):
        return []
    return [name for name in names if not name.startswith(BACKBONE)]


def quantize_onnx(
    fp32: Path,
    out: Path,
    frames: Sequence[npt.NDArray[np.uint8]],
    method: str = "minmax",
    heads_float: bool = False,
) -> Path:
    """Write the INT8 QDQ graph of the FP32 ONNX file `fp32` to `out`, calibrated on `frames`
    (H×W uint8, the model's input size); with `heads_float` only the encoder and decoder are
    quantized (`float_nodes`)."""
    if method not in METHODS:
        raise InvalidSetting(f"calibration method {method!r}: use one of {', '.join(METHODS)}")
    try:
        import onnx  # noqa: F401  (the quantizer imports it; say so before it does)
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise MissingDependency(f"defectd quantize: {INSTALL_HINT}") from None
    import onnxruntime as ort

    input_name = (
        ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    )
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    with tempfile.TemporaryDirectory(prefix="defectd-quantize-") as scratch:
        # Shape inference and graph fusions first (ONNX Runtime's advice for static QDQ).
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        excluded = float_nodes(prepared) if heads_float else []
        quantize_static(
            str(prepared),
            str(out),
            _Reader(input_name, frames),  # duck-typed CalibrationDataReader
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
            nodes_to_exclude=excluded,
        )
    log.info("quantized %s → %s on %d frames (%s)", fp32, out, len(frames), method)
    return out
