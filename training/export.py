"""`defectd export`: checkpoint → model directory (FP32/FP16 ONNX, TorchScript, card), checked.

Both ONNX files take uint8 N×1×256×1600 frames (dynamic batch) and normalise inside the
graph. The FP16 file holds weights and compute in half (TensorRT 11 has no FP16 builder
flag; precision must come from the ONNX). Export checks itself before it writes the card:
ONNX Runtime on the FP32 file against torch, and the FP16 file against the FP32 one, on
synthetic frames with defects. Last it writes the golden outputs (`engines.golden`, ONNX
Runtime FP32 on the CPU) that `defectd golden check` compares any backend with.

A model trained on another layout than Severstal (its checkpoint has a ``data`` entry, see
`training.sources`) is exported at the training set's native size when all its images share
one (NEU-Seg: 200×200; otherwise the largest height and width), with the data set's class
names and the model's head on the card. A size that is not a multiple of the output stride is
padded inside the graph (`InferenceGraph(input_shape=...)`), so the engine takes and returns
frames of the card's size and no backend changes. Parity and golden frames are then a few
training images (`data["sample_ids"]`), or, when the data folder is gone, smooth random
frames of the input size.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.classes import SEVERSTAL_NAMES
from defectd.engines.datasets import open_dataset
from defectd.engines.errors import UserError
from defectd.engines.golden import write_golden
from defectd.engines.model_card import InputSpec, ModelCard, ModelFile, sha256_of, write_card
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig
from defectd.engines.synth import SyntheticLine
from defectd.training.model.graph import INPUT_NAME, OUTPUT_NAMES, InferenceGraph
from defectd.training.trainer import load_checkpoint

log = logging.getLogger(__name__)
OPSET = 17
FP32_NAME = "model.onnx"
FP16_NAME = "model.fp16.onnx"
TORCH_NAME = "model.torchscript.pt"  # the same graph for the PyTorch backend (no training/)
PARITY_SEED = 424242  # synthetic frames for the parity check; never a training seed


class ExportError(UserError, ValueError):
    """An export that failed its own checks; the message says which and by how much."""


@dataclass(frozen=True)
class Parity:
    """Agreement between two runs of the same model on the same frames."""

    frames: int
    max_abs_diff_probs: float
    max_abs_diff_presence: float
    mask_agreement: float  # share of pixels binarised identically at 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(graph: InferenceGraph, path: Path, spec: InputSpec) -> None:
    """Trace `graph` to ONNX with a dynamic batch axis (legacy exporter, opset 17)."""
    graph.eval()
    example = torch.zeros((2, spec.channels, spec.height, spec.width), dtype=torch.uint8)
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    # The TorchScript exporter is chosen on purpose (it needs only onnx, not onnxscript, and
    # gives plain opset-17 graphs TensorRT parses); its deprecation notice is not news here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # The crop back from stride padding (InferenceGraph) is a Slice it cannot fold: fine.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def export_torchscript(graph: InferenceGraph, path: Path, spec: InputSpec) -> None:
    """Trace `graph` to TorchScript: the engines' torch backend loads it without importing
    training/. Shapes stay dynamic and a later ``.half()`` carries through (see Normalise)."""
    graph.eval()
    example = torch.zeros((2, spec.channels, spec.height, spec.width), dtype=torch.uint8)
    # torch 2.13 marks torch.jit deprecated in favour of torch.export; TorchScript still
    # loads anywhere with no model code and follows .half()/.cuda(), which the torch backend
    # needs. Revisit when torch removes it.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(graph, (example,))  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))


def parity_frames(spec: InputSpec, count: int = 4) -> npt.NDArray[np.uint8]:
    """Synthetic frames with defects of every class among them (N×1×H×W uint8)."""
    line = SyntheticLine(PARITY_SEED)
    frames: list[npt.NDArray[np.uint8]] = []
    seen: set[int] = set()
    index = 0
    while len(frames) < count and index < 500:
        frame = line.frame(index)
        index += 1
        new = set(frame.classes) - seen
        if new or index > 200:  # new classes first; any frame once they run out
            frames.append(frame.image)
            seen |= set(frame.classes)
    if frame.image.shape != spec.shape:
        raise ExportError(
            f"the synthetic line makes {frame.image.shape} frames, model {spec.shape}"
        )
    return np.stack(frames)[:, None]


def training_frames(
    data: dict[str, Any], data_dir: str | None, spec: InputSpec, spec_file: str | None = None
) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    """A few training images of the input size (N×1×H×W uint8) and where they came from;
    smooth random frames when the data folder cannot be read."""
    ids = [str(i) for i in data.get("sample_ids", [])]
    try:
        dataset = open_dataset(data_dir or "", spec_file)
        images = [dataset.read_image(i) for i in ids]
        images = [image for image in images if image.shape == spec.shape]
    except (OSError, UserError) as exc:
        log.warning("training images unavailable (%s): parity on random frames", exc)
        images = []
    if images:
        return np.stack(images)[:, None], {"kind": "training", "data": data_dir, "ids": ids}
    rng = np.random.default_rng(PARITY_SEED)
    noise = rng.normal(128.0, 40.0, size=(4, spec.height, spec.width))
    smooth = np.stack([cv2.GaussianBlur(n, (0, 0), 3.0) for n in noise])
    frames = np.clip(smooth, 0, 255).astype(np.uint8)[:, None]
    return frames, {"kind": "random", "seed": PARITY_SEED}


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> Parity:
    """Parity of (probs, presence) pairs."""
    probs_a, probs_b = a[0].astype(np.float32), b[0].astype(np.float32)
    return Parity(
        frames=len(probs_a),
        max_abs_diff_probs=float(np.abs(probs_a - probs_b).max()),
        max_abs_diff_presence=float(np.abs(a[1].astype(np.float32) - b[1]).max()),
        mask_agreement=float(((probs_a >= 0.5) == (probs_b >= 0.5)).mean()),
    )


def torch_reference(graph: InferenceGraph, frames: npt.NDArray[np.uint8]) -> tuple[Any, Any]:
    with torch.inference_mode():
        probs, presence, _ = graph(torch.from_numpy(frames))
    return probs.float().numpy(), presence.float().numpy()


def training_commands(state: dict[str, Any]) -> list[str]:
    """The `defectd train` command lines a checkpoint recorded, as typed (none when it was
    trained from code without one: the card then lists only the export)."""
    return [str(command) for command in state.get("commands", [])]


def export_model(
    checkpoint: Path,
    out: Path,
    name: str,
    version: str,
    command: str,
    overwrite: bool = False,
) -> ModelCard:
    """Export `checkpoint` into the model directory `out`; return the written card."""
    model, (mean, std), state = load_checkpoint(checkpoint)
    data: dict[str, Any] | None = state.get("data")
    spec = InputSpec(channels=1)  # mono line cameras; 3-channel models repeat the grey
    if data is not None:
        height, width = data["input_size"]
        spec = InputSpec(channels=1, height=int(height), width=int(width))
    out.mkdir(parents=True, exist_ok=True)
    existing = [p for p in (out / FP32_NAME, out / FP16_NAME, out / TORCH_NAME) if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{existing[0]} exists; pass --force to replace the model in {out}")

    fp32 = InferenceGraph(model, mean, std, spec.shape).eval()
    fp16 = InferenceGraph(copy.deepcopy(model), mean, std, spec.shape).half().eval()
    log.info("exporting FP32 ONNX to %s", out / FP32_NAME)
    export_onnx(fp32, out / FP32_NAME, spec)
    log.info("exporting FP16 ONNX to %s", out / FP16_NAME)
    export_onnx(fp16, out / FP16_NAME, spec)

    log.info("tracing the TorchScript graph to %s", out / TORCH_NAME)
    export_torchscript(fp32, out / TORCH_NAME, spec)

    train_config = state.get("train_config", {})
    source: dict[str, Any] | None = None
    if data is None:
        frames = parity_frames(spec)
    else:
        frames, source = training_frames(
            data, train_config.get("data"), spec, train_config.get("spec")
        )
    reference = torch_reference(fp32, frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(out / TORCH_NAME))  # type: ignore[no-untyped-call]
    with torch.inference_mode():
        script_probs, script_presence, _ = scripted(torch.from_numpy(frames))
    script_vs_torch = compare((script_probs.numpy(), script_presence.numpy()), reference)
    ort32 = OnnxRuntimeEngine(out / FP32_NAME, spec).infer(frames)
    ort16 = OnnxRuntimeEngine(out / FP16_NAME, spec).infer(frames)
    onnx_vs_torch = compare((ort32.probs, ort32.presence), reference)
    fp16_vs_fp32 = compare((ort16.probs, ort16.presence), (ort32.probs, ort32.presence))
    log.info("parity ONNX FP32 vs torch: %s", onnx_vs_torch)
    log.info("parity ONNX FP16 vs FP32: %s", fp16_vs_fp32)
    if script_vs_torch.max_abs_diff_probs > 1e-5:
        raise ExportError(
            f"TorchScript differs from torch by {script_vs_torch.max_abs_diff_probs:.2e}"
        )
    if onnx_vs_torch.max_abs_diff_probs > 1e-4:
        raise ExportError(f"ONNX FP32 differs from torch by {onnx_vs_torch.max_abs_diff_probs:.2e}")
    if fp16_vs_fp32.max_abs_diff_probs > 1e-2 or fp16_vs_fp32.mask_agreement < 0.999:
        raise ExportError(f"FP16 ONNX differs from FP32 beyond limits: {fp16_vs_fp32}")

    history = state.get("history", [])
    best = max(history, key=_score) if history else {}
    classes = SEVERSTAL_NAMES[: model.config.num_classes]  # the Severstal layout's classes
    if data is not None:
        classes = tuple(str(c) for c in data["classes"])
    thresholds = PostprocessConfig(
        tuple(ClassThresholds() for _ in range(model.config.num_classes)), model.config.head
    )
    card = ModelCard(
        name=name,
        version=version,
        classes=classes,
        head=model.config.head,
        input=spec,
        normalisation={"mean": mean, "std": std},
        outputs=OUTPUT_NAMES,
        thresholds=thresholds,
        files={
            "fp32": ModelFile(FP32_NAME, sha256_of(out / FP32_NAME)),
            "fp16": ModelFile(FP16_NAME, sha256_of(out / FP16_NAME)),
            "torch": ModelFile(TORCH_NAME, sha256_of(out / TORCH_NAME)),
        },
        architecture={
            **asdict(model.config),
            "parameters": sum(p.numel() for p in model.parameters()),
            "opset": OPSET,
        },
        training={
            "checkpoint": str(checkpoint),
            "data": train_config.get("data"),
            "epochs": train_config.get("epochs"),
            "best_epoch": best.get("epoch"),
            "val_dice_untuned": best.get("val_dice"),
            **_segmentation_metrics(best),
            "seed": train_config.get("seed"),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        parity={
            "torchscript_vs_torch": script_vs_torch.to_dict(),
            "onnx_fp32_vs_torch": onnx_vs_torch.to_dict(),
            "onnx_fp16_vs_fp32": fp16_vs_fp32.to_dict(),
        },
        commands=(*training_commands(state), command),
        directory=out,
    )
    write_card(card, out)
    write_validation_ids(checkpoint, out)
    log.info("writing the golden outputs to %s", out)
    if source is None:
        write_golden(out)
    else:
        write_golden(out, frames, source=source)
    return card


VALIDATION_NAME = "validation.txt"


def write_validation_ids(checkpoint: Path, out: Path) -> Path | None:
    """OUT/validation.txt: the run's validation image ids (its split.json), one per line, so
    `defectd evaluate --split OUT/validation.txt` scores the model on images it never
    trained on; None (and nothing written) when the run has no split.json."""
    run = checkpoint if checkpoint.is_dir() else checkpoint.parent
    split = run / "split.json"
    if not split.is_file():
        return None
    ids = json.loads(split.read_text(encoding="utf-8")).get("val", [])
    path = out / VALIDATION_NAME
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def _score(row: dict[str, Any]) -> float:
    # As EpochRow.score: mIoU without background for exclusive classes, else Dice.
    miou = row.get("val_miou")
    return float(miou if miou is not None else row["val_dice"])


def _segmentation_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The best epoch's mIoU entries for the card (exclusive classes only)."""
    if row.get("val_miou") is None:
        return {}
    return {
        "val_miou_untuned": row["val_miou"],
        "val_miou_with_background_untuned": row.get("val_miou_with_background"),
        "val_iou_per_class_untuned": row.get("val_iou_per_class", []),
    }
