"""`defectd quantize`: an INT8 file for a model, kept only when it passes parity with FP32."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.model_options import grey_fill, progress_bar
from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.backends.openvino_backend import OpenVinoEngine, openvino_available
from defectd.engines.datasets import Dataset, open_dataset
from defectd.engines.engine import Engine
from defectd.engines.evaluation import check_classes, read_ids
from defectd.engines.inference import Predictor
from defectd.engines.model_card import ModelCard, ModelFile, read_card, sha256_of, write_card
from defectd.engines.quant_parity import TOLERANCE, ParityReport, compare
from defectd.engines.quantize import INT8_FILE, METHODS, calibration_frames, quantize_onnx

CANDIDATE = "model.int8.candidate.onnx"
RUNTIMES = ("onnxruntime", "openvino")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `quantize` subcommand."""
    parser = subparsers.add_parser(
        "quantize",
        help="write an INT8 ONNX for a model, kept only if it matches FP32 (parity check)",
        description=(
            "Static INT8 quantization (QDQ, uint8 activations, int8 weights per channel) of a "
            "model's FP32 ONNX with ONNX Runtime's tools, calibrated on frames of the model's "
            "own training data. The INT8 file is then run beside FP32 on labelled evaluation "
            "frames — on ONNX Runtime, and on OpenVINO when installed — and kept as "
            f"{INT8_FILE} in the model directory for each runtime where every frame keeps the "
            f"same defect classes and Dice against the truth stays within ±{TOLERANCE} (mean "
            "and every class); refused when it passes on none. The figures go into the model "
            "card; engine.precision int8 then runs it where it passed. Needs defectd[int8]."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled evaluation frames (any layout, docs/datasets.md) the parity is judged "
        "on, e.g. the model's validation data",
    )
    parser.add_argument("--spec", type=Path, help="dataset.yaml for --data kept elsewhere")
    parser.add_argument(
        "--split", type=Path, help="only these --data images (split.json or an id list)"
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="frames the activation ranges are measured on (default: the card's training "
        "data); when it is the --data folder, the --split images are left out of it",
    )
    parser.add_argument(
        "--calibration-frames", type=int, default=64, help="engine-sized frames (default 64)"
    )
    parser.add_argument(
        "--method",
        default="minmax",
        choices=METHODS,
        help="activation range estimator (default minmax); percentile and entropy keep every "
        "calibration frame's activations in memory (about 6 GB for 32 frames of 1600×256)",
    )
    parser.add_argument(
        "--float-heads",
        action="store_true",
        help="quantize the encoder and decoder only: the segmentation and presence heads stay "
        "FP32 (a few %% slower; try it when parity fails near thresholds)",
    )
    parser.add_argument("--seed", type=int, default=0, help="which calibration images")
    parser.add_argument(
        "--max-frames", type=int, help="judge parity on at most this many --data images"
    )
    parser.add_argument(
        "--tolerance", type=float, default=TOLERANCE, help=f"Dice tolerance (default {TOLERANCE})"
    )
    parser.add_argument(
        "--max-flips",
        type=int,
        default=0,
        help="frames allowed to keep other defect classes than with FP32 (default 0)",
    )
    parser.add_argument(
        "--runtimes",
        default="auto",
        help="where to check parity: onnxruntime, openvino, or both comma-separated "
        "(default auto: onnxruntime, and openvino when installed)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per engine call")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(parser, "the calibration and parity figures")
    parser.set_defaults(handler=run)


def _runtimes(text: str) -> list[str]:
    if text == "auto":
        return ["onnxruntime", *(["openvino"] if openvino_available() else [])]
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in RUNTIMES]
    if unknown or not chosen:
        raise CommandError(f"--runtimes takes {', '.join(RUNTIMES)} or auto, got {text!r}")
    return chosen


def _engine(runtime: str, path: Path, card: ModelCard, precision: str, args: Any) -> Engine:
    model = f"{card.name} {card.version}"
    if runtime == "openvino":
        return OpenVinoEngine(
            path, card.input, args.threads, args.batch_size, card.classes, model, precision
        )
    return OnnxRuntimeEngine(
        path, card.input, args.threads, "cpu", args.batch_size, card.classes, model, precision
    )


def _evaluation(args: argparse.Namespace, card: ModelCard) -> tuple[Dataset, list[str]]:
    dataset = open_dataset(args.data, args.spec)
    check_classes(dataset, card.classes, card.head == "softmax")
    ids = dataset.image_ids if args.split is None else read_ids(args.split, dataset.image_ids)
    if args.max_frames is not None:
        if args.max_frames < 1:
            raise CommandError(f"--max-frames must be at least 1, got {args.max_frames}")
        ids = ids[: args.max_frames]
    return dataset, ids


def _calibration(
    args: argparse.Namespace, card: ModelCard, evaluation: list[str]
) -> tuple[Dataset, list[str]]:
    folder = args.calibration or card.training.get("data")
    if not folder:
        raise CommandError(
            f"{card.directory}: the card names no training data; give --calibration DIR "
            "(frames like those the model was trained on)"
        )
    if not Path(folder).exists():
        raise CommandError(
            f"calibration data {folder} (the card's training data) is not here; give "
            "--calibration DIR with frames like those the model was trained on"
        )
    same = os.path.realpath(folder) == os.path.realpath(args.data)
    dataset = open_dataset(folder, args.spec if same else None)
    held_out = set(evaluation) if same else set()
    return dataset, [i for i in dataset.image_ids if i not in held_out]


def _print(reports: dict[str, ParityReport]) -> None:
    for runtime, report in reports.items():
        verdict = "passed" if report.passed else "FAILED"
        gap = report.candidate_mean - report.reference_mean
        print(
            f"{runtime}: {report.frames} frames, mean Dice {report.reference_mean:.4f} fp32 → "
            f"{report.candidate_mean:.4f} int8 ({gap:+.4f}), {len(report.flips)} frames with "
            f"other classes: {verdict}"
        )
        for c in report.classes:
            print(
                f"  class {c.class_id} {c.name:<14} {c.reference:.4f} → {c.candidate:.4f} "
                f"({c.delta:+.4f})"
            )


def run(args: argparse.Namespace) -> int:
    """Quantize, check, keep or refuse."""
    if args.calibration_frames < 1:
        raise CommandError(
            f"--calibration-frames must be at least 1, got {args.calibration_frames}"
        )
    if args.max_flips < 0:
        raise CommandError(f"--max-flips must be 0 or more, got {args.max_flips}")
    if not 0.0 <= args.tolerance < 1.0:
        raise CommandError(f"--tolerance must be in [0, 1), got {args.tolerance}")
    card = read_card(args.model)
    card.verify()
    runtimes = _runtimes(args.runtimes)
    evaluation, eval_ids = _evaluation(args, card)
    source, source_ids = _calibration(args, card, eval_ids)
    frames, images = calibration_frames(
        source, source_ids, card.input.shape, grey_fill(card), args.calibration_frames, args.seed
    )
    directory = args.model
    candidate = directory / CANDIDATE
    reports: dict[str, ParityReport] = {}
    try:  # a quantization or parity run that fails leaves no candidate file behind
        quantize_onnx(card.onnx_path("fp32"), candidate, frames, args.method, args.float_heads)
        for runtime in runtimes:
            with (
                progress_bar(args, len(eval_ids), f"parity {runtime}") as bar,
                _engine(runtime, card.onnx_path("fp32"), card, "fp32", args) as reference,
                _engine(runtime, candidate, card, "int8", args) as quantized,
            ):
                reports[runtime] = compare(
                    Predictor(reference, card.thresholds, fill=grey_fill(card)),
                    Predictor(quantized, card.thresholds, fill=grey_fill(card)),
                    evaluation,
                    eval_ids,
                    card.classes,
                    args.batch_size,
                    args.tolerance,
                    bar.update,
                    args.max_flips,
                )
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    calibration = {
        "data": str(args.calibration or card.training.get("data")),
        "images": images,
        "frames": len(frames),
        "method": args.method,
        "seed": args.seed,
        "float_heads": args.float_heads,
    }
    summary: dict[str, Any] = {
        "calibration": calibration,
        "evaluation": {"data": str(args.data), "split": str(args.split) if args.split else None},
        **{runtime: report.to_dict() for runtime, report in reports.items()},
    }
    if not to_stdout(args):
        print(
            f"calibrated on {len(frames)} frames of {images} images from {calibration['data']}"
            f" ({args.method})"
        )
        _print(reports)
    passed = [runtime for runtime, report in reports.items() if report.passed]
    summary["accepted_on"] = passed
    emit_json(args, summary)
    if not passed:
        candidate.unlink(missing_ok=True)
        failures = [f"{rt}: {line}" for rt, r in reports.items() for line in r.failures]
        raise CommandError(
            "INT8 file refused, the card is unchanged: "
            + " | ".join(failures)
            + " (try --method percentile, more --calibration-frames, or keep FP32)"
        )
    final = directory / INT8_FILE
    candidate.replace(final)
    files = {**card.files, "int8": ModelFile(INT8_FILE, sha256_of(final))}
    parity = {**card.parity, "int8": summary}
    updated = dataclasses.replace(card, files=files, parity=parity).with_command(args.command_line)
    path = write_card(updated, directory)
    if not to_stdout(args):
        refused = [runtime for runtime in reports if runtime not in passed]
        print(
            f"accepted: {final} for engine.precision int8 on {', '.join(passed)}"
            + (
                f"; refused on {', '.join(refused)} (its figures are in the card)"
                if refused
                else ""
            )
            + f"; figures in {path}"
        )
    return 0
