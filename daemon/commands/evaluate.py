"""`defectd evaluate`: run a model over a labelled folder and score it.

A Severstal-layout folder is scored as `defectd score` scores a CSV (Kaggle Dice, image-level
confusion); any other data set `defectd dataset check` reads gets the segmentation metrics:
IoU and Dice per class, mIoU with and without background, image precision and recall, a
confusion-matrix picture with --confusion, label maps with --save-pred.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.model_options import (
    add_data_arguments,
    add_model_arguments,
    open_data,
    open_model,
    progress_bar,
    severstal_folder,
)
from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.daemon.commands.score import format_report
from defectd.engines.confusion_plot import write_confusion_png
from defectd.engines.evaluation import evaluate_dataset
from defectd.engines.inference import Predictor, to_labels
from defectd.engines.labels import write_labels
from defectd.engines.model_card import ModelCard
from defectd.engines.scoring import class_confusion, score
from defectd.engines.segmetrics import format_report as format_segmentation
from defectd.engines.severstal import SeverstalDataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on labelled data: Kaggle Dice, or IoU / mIoU for any data set",
        description=(
            "Run the model (with the thresholds in its card) over a labelled folder and score "
            "it. A Severstal-layout folder: Kaggle mean Dice, per-class Dice and image-level "
            "precision/recall as `defectd score` prints them, and the image-level confusion. "
            "Any other data set (docs/datasets.md): per-class IoU and Dice, mIoU with and "
            "without background, image-level precision and recall, at native image sizes."
        ),
    )
    add_model_arguments(parser)
    add_data_arguments(parser, "score only these images")
    parser.add_argument(
        "--save-pred",
        type=Path,
        help="also write the predictions: a CSV for the Severstal layout, else a folder of "
        "label-map PNGs (same stems)",
    )
    parser.add_argument(
        "--confusion", type=Path, help="write the confusion matrix as a picture (.png)"
    )
    add_json_option(parser, "the report")
    parser.set_defaults(handler=run)


def format_confusion(matrix: list[list[int]]) -> str:
    """The confusion matrix as a text table."""
    names = ["none", *(str(c) for c in range(1, len(matrix)))]
    lines = [
        "image-level confusion (rows: truth class, columns: predicted class; none = no class)",
        "truth \\ pred " + "".join(f"{n:>7}" for n in names),
    ]
    for t, row in enumerate(matrix):
        lines.append(f"{names[t]:>12} " + "".join(f"{v:7d}" for v in row))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Predict, score, print."""
    card, predictor = open_model(args)
    if not severstal_folder(args):
        return run_dataset(args, card, predictor)
    dataset = SeverstalDataset(args.data, shape=card.input.shape, num_classes=card.num_classes)
    with progress_bar(args, len(dataset), "evaluate") as bar:
        pred = to_labels(
            predictor.run_folder(
                dataset.images_dir, dataset.image_ids, args.batch_size, progress=bar.update
            ),
            card.num_classes,
        )
    if args.save_pred is not None:
        write_labels(args.save_pred, pred, layout="old")
    report = score(dataset.labels, pred, dataset.image_ids, card.input.shape)
    confusion = class_confusion(dataset.labels, pred, dataset.image_ids)
    if not to_stdout(args):
        truth_csv = dataset.root / "train.csv"
        pred_name = Path(f"{card.name} {card.version} ({args.precision})")
        print(format_report(report, truth_csv, pred_name, f" (+ images in {dataset.images_dir})"))
        print()
        print(format_confusion(confusion))
    out = report.to_dict()
    out.update(
        model=card.name,
        version=card.version,
        precision=args.precision,
        data=str(args.data),
        confusion=confusion,
    )
    if args.confusion is not None:
        title = f"{card.name} on {args.data.name}: images"
        write_confusion_png(confusion, card.classes, args.confusion, title, "none")
        if not to_stdout(args):
            print(f"wrote {args.confusion}")
    emit_json(args, out)
    return 0


def run_dataset(args: argparse.Namespace, card: ModelCard, predictor: Predictor) -> int:
    """Any data set but the Severstal layout: segmentation metrics at native sizes."""
    dataset, ids = open_data(args, card)
    with progress_bar(args, len(ids), "evaluate") as bar:
        result = evaluate_dataset(
            predictor, dataset, ids, args.batch_size, bar.update, args.save_pred
        )
    names = dataset.spec.names
    if not to_stdout(args):
        print(
            f"{card.name} {card.version} ({args.precision}) on {args.data}: {result.images} images"
        )
        print()
        print("post-processed (the card's thresholds: what the daemon publishes)")
        print(format_segmentation(result.kept, names))
        if result.network is not None:
            print()
            print("network argmax (before thresholds, as papers count mIoU)")
            print(format_segmentation(result.network, names))
        if args.save_pred is not None:
            print(f"\npredictions written under {args.save_pred}")
    if args.confusion is not None:
        matrix = (result.network or result.kept).confusion
        if matrix is None:
            raise CommandError(
                "--confusion: independent classes have no pixel confusion matrix "
                "(a pixel may hold several classes); see the per-class table"
            )
        write_confusion_png(
            matrix, names, args.confusion, f"{card.name} on {args.data.name}: pixels"
        )
        if not to_stdout(args):
            print(f"wrote {args.confusion}")
    out = {
        "model": card.name,
        "version": card.version,
        "precision": args.precision,
        "data": str(args.data),
        "format": dataset.format,
        "images": result.images,
        "post_processed": result.kept.to_dict(),
        "network": None if result.network is None else result.network.to_dict(),
    }
    emit_json(args, out)
    return 0
