"""Options and loading shared by the commands that run a model (evaluate, predict, inspect,
tune): --model DIR (default: the bundled model), --precision, --threads, --batch-size."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from defectd.daemon.cli import CommandError
from defectd.engines.datasets import Dataset, detect_format, open_dataset
from defectd.engines.datasets.spec import SEVERSTAL
from defectd.engines.evaluation import check_classes, read_ids
from defectd.engines.inference import Predictor
from defectd.engines.model_card import ModelCard, default_model_dir, read_card
from defectd.engines.selection import CHOICES, EngineConfig, open_engine


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --precision, --threads, --batch-size, --no-progress."""
    parser.add_argument(
        "--model",
        default=None,
        help="model directory with model_card.json (default: the bundled models/default, "
        "or $DEFECTD_MODEL)",
    )
    parser.add_argument(
        "--backend",
        default="onnxruntime",
        choices=CHOICES,
        help="engine backend (default onnxruntime: the reference; auto picks the fastest "
        "installed, see docs/engines.md)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16"),
        help="fp32 or fp16 (the FP16 ONNX on ONNX Runtime; FP16 on CUDA for torch)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per engine call")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_data_arguments(parser: argparse.ArgumentParser, use: str) -> None:
    """--data (any labelled layout), --spec and --split; `use` says what --split's images
    are for (e.g. "score only these images")."""
    parser.add_argument(
        "--data", type=Path, required=True, help="labelled folder in any format (docs/datasets.md)"
    )
    parser.add_argument(
        "--spec", type=Path, help="the data set's dataset.yaml when it cannot sit in the folder"
    )
    parser.add_argument(
        "--split",
        type=Path,
        help=f"{use}: a run's split.json (its validation list) or a text file of image ids, "
        "one per line",
    )


def severstal_folder(args: argparse.Namespace) -> bool:
    """True when --data is a Severstal-layout folder read as such (no --spec): the Kaggle
    path; CommandError for --split there, as such a folder is used whole."""
    if detect_format(args.data) != SEVERSTAL or args.spec is not None:
        return False
    if args.split is not None:
        raise CommandError(
            "--split applies to image + mask data sets; a Severstal folder is used whole"
        )
    return True


def open_data(args: argparse.Namespace, card: ModelCard) -> tuple[Dataset, list[str]]:
    """The --data set (with --spec) checked against the model, and the ids to use (--split)."""
    dataset = open_dataset(args.data, args.spec)
    check_classes(dataset, card.classes, card.head == "softmax")
    ids = dataset.image_ids if args.split is None else read_ids(args.split, dataset.image_ids)
    return dataset, ids


def open_model(args: argparse.Namespace) -> tuple[ModelCard, Predictor]:
    """Read and verify the card, open the engine, pair it with the card's thresholds."""
    card = read_card(args.model or default_model_dir())
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {args.batch_size}")
    config = EngineConfig(
        backend=args.backend,
        precision=args.precision,
        max_batch=args.batch_size,
        threads=args.threads,
        warmup=False,
    )
    engine = open_engine(card, config)  # verifies the card's sha256 first
    return card, Predictor(engine, card.thresholds, fill=grey_fill(card))


def grey_fill(card: ModelCard) -> int:
    """The grey value tiles of a smaller frame are padded with: the model's training mean
    (what its graph normalises to 0)."""
    return round(float(card.normalisation.get("mean", 0.0)) * 255.0)


def progress_bar(args: argparse.Namespace, total: int, what: str) -> tqdm:
    """A frames progress bar on stderr (off with --no-progress); use it as a context manager."""
    return tqdm(total=total, desc=what, unit="frame", disable=args.no_progress, dynamic_ncols=True)
