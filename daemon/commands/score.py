"""`defectd score`: the Kaggle metric and the line's image-level view of a prediction file."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.engines.labels import read_labels
from defectd.engines.scoring import ScoreReport, score
from defectd.engines.severstal import list_images


def parse_shape(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. 256x1600) as (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW, e.g. 256x1600") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: height and width must be positive")
    return height, width


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="Kaggle mean Dice and per-class image-level precision/recall of a prediction CSV",
        description=(
            "Score a prediction CSV against a truth CSV (either Severstal layout). Images the "
            "truth knows but the prediction lacks count as empty predictions."
        ),
    )
    parser.add_argument("--truth", type=Path, required=True, help="truth CSV (e.g. train.csv)")
    parser.add_argument("--pred", type=Path, required=True, help="prediction CSV")
    parser.add_argument(
        "--images",
        type=Path,
        help="folder of the truth's images; its files without rows are defect-free "
        "(default: train_images/ beside --truth, when it exists)",
    )
    parser.add_argument("--classes", type=int, default=4, help="number of classes (default 4)")
    parser.add_argument(
        "--shape", type=parse_shape, default=(256, 1600), help="image HxW (default 256x1600)"
    )
    add_json_option(parser, "the report")
    parser.set_defaults(handler=run)


def _fmt(value: float | None) -> str:
    return "    —" if value is None else f"{value:.3f}"


def format_report(report: ScoreReport, truth: Path, pred: Path, images_from: str) -> str:
    """The human-readable report."""
    lines = [
        f"truth: {truth}{images_from}",
        f"pred:  {pred}",
        f"images scored: {report.images}   (image, class) pairs: "
        f"{report.images * len(report.classes)}",
        "",
        f"Kaggle mean Dice: {report.mean_dice:.4f}",
        "",
        "class    Dice  sheets  flagged    TP    FP    FN  precision  recall     F1",
    ]
    for c in report.classes:
        lines.append(
            f"{c.class_id:5d}  {c.dice:.4f}  {c.true_images:6d}  {c.predicted_images:7d}  "
            f"{c.tp:4d}  {c.fp:4d}  {c.fn:4d}      {_fmt(c.precision)}   {_fmt(c.recall)}  "
            f"{_fmt(c.f1)}"
        )
    missing = report.missing_predictions
    if missing:
        named = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        lines += [
            "",
            f"note: {len(missing)} image(s) have no rows in the prediction and were scored "
            f"as empty: {named}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Score and print; exit 0."""
    truth = read_labels(args.truth, args.classes, args.shape)
    pred = read_labels(args.pred, args.classes, args.shape)
    images_dir: Path | None = args.images
    if images_dir is None and (args.truth.parent / "train_images").is_dir():
        images_dir = args.truth.parent / "train_images"
    extra = list_images(images_dir) if images_dir is not None else []
    report = score(truth, pred, extra, args.shape)
    if not to_stdout(args):
        images_from = f" (+ images in {images_dir})" if images_dir is not None else ""
        print(format_report(report, args.truth, args.pred, images_from))
    emit_json(args, report.to_dict())
    return 0
