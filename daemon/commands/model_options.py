"""Options and loading shared by the commands that run a model (evaluate, predict, inspect,
tune): --model DIR (default: the bundled model), --precision, --threads, --batch-size."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from engines.inference import Predictor
from engines.model_card import ModelCard, default_model_dir, read_card


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --precision, --threads, --batch-size, --no-progress."""
    parser.add_argument(
        "--model",
        default=None,
        help="model directory with model_card.json (default: the bundled models/default, "
        "or $DEFECTD_MODEL)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16"),
        help="which ONNX of the model to run on ONNX Runtime (default fp32)",
    )
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per engine call")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_model(args: argparse.Namespace) -> tuple[ModelCard, Predictor]:
    """Read and verify the card, open an ONNX Runtime engine, pair it with the thresholds."""
    card = read_card(args.model or default_model_dir())
    card.verify()
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    engine = OnnxRuntimeEngine.from_card(card, args.precision, args.threads)
    return card, Predictor(engine, card.thresholds)


def progress_bar(args: argparse.Namespace, total: int, what: str) -> tqdm:
    """A frames progress bar on stderr (off with --no-progress); use it as a context manager."""
    return tqdm(total=total, desc=what, unit="frame", disable=args.no_progress, dynamic_ncols=True)
