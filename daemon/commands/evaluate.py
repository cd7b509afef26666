"""`defectd evaluate`: run a model over a labelled folder and score it like `defectd score`."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.model_options import add_model_arguments, open_model, progress_bar
from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.daemon.commands.score import format_report
from defectd.engines.inference import to_labels
from defectd.engines.labels import write_labels
from defectd.engines.scoring import class_confusion, score
from defectd.engines.severstal import SeverstalDataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="Kaggle Dice, per-class Dice and image-level precision/recall of a model",
        description=(
            "Run the model (with the thresholds in its card) over a Severstal-layout folder "
            "and score the predictions with the same code as `defectd score`; also prints "
            "the image-level confusion of classes."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument("--data", type=Path, required=True, help="Severstal-layout folder")
    parser.add_argument("--save-pred", type=Path, help="also write the predictions as CSV")
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
    emit_json(args, out)
    return 0
