"""`defectd predict`: a Kaggle submission CSV for a folder of frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.model_options import add_model_arguments, open_model, progress_bar
from defectd.engines.files import atomic_write
from defectd.engines.inference import to_labels
from defectd.engines.labels import write_labels
from defectd.engines.severstal import list_images


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `predict` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="write a Kaggle submission CSV for a folder of frames",
        description=(
            "Run the model over every image in --images and write a Kaggle submission: "
            "by default the competition's submission layout ImageId_ClassId,EncodedPixels "
            "with a row for every (image, class); --layout new writes "
            "ImageId,ClassId,EncodedPixels rows for the masks found."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument("--images", type=Path, required=True, help="folder of 1600×256 frames")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--layout", choices=("old", "new"), default="old")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Predict and write the CSV."""
    card, predictor = open_model(args)
    ids = list_images(args.images)
    if not ids:
        raise CommandError(f"{args.images} holds no .jpg/.jpeg/.png images")
    with progress_bar(args, len(ids), "predict") as bar:
        table = to_labels(
            predictor.run_folder(args.images, ids, args.batch_size, progress=bar.update),
            card.num_classes,
        )
    rows = atomic_write(
        args.out, lambda path: write_labels(path, table, layout=args.layout, image_ids=ids)
    )
    flagged = sum(1 for i in ids if table.classes(i))
    print(f"wrote {args.out}: {rows} rows for {len(ids)} images, {flagged} with defects")
    return 0
