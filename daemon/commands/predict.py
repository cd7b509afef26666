"""`defectd predict`: a Kaggle submission CSV, or label-map PNGs, for a folder of images."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.model_options import add_model_arguments, open_model, progress_bar
from defectd.engines.datasets import open_dataset
from defectd.engines.evaluation import predictions, write_prediction
from defectd.engines.files import atomic_write
from defectd.engines.inference import FrameResult, to_labels
from defectd.engines.labels import write_labels
from defectd.engines.severstal import list_images


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `predict` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="write a Kaggle submission CSV, or label-map PNGs, for a folder of images",
        description=(
            "Run the model over every image in --images (any size: frames other than the "
            "model's input are tiled) or of the data set --data. With --out FILE.csv: a Kaggle "
            "submission, by default the competition's layout ImageId_ClassId,EncodedPixels "
            "with a row for every (image, class); --layout new writes "
            "ImageId,ClassId,EncodedPixels rows for the masks found. With --out DIR: one PNG "
            "per image with its stem, a label map (pixel = class id, 0 background) for a "
            "model of exclusive classes, else a 0/255 mask per class found (STEM_classC.png)."
        ),
    )
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of images (jpg/jpeg/png)")
    source.add_argument(
        "--data", type=Path, help="a data set in any format (docs/datasets.md): its images"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="CSV to write, or a folder for PNG masks"
    )
    parser.add_argument("--layout", choices=("old", "new"), default="old")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Predict and write the CSV or the PNGs."""
    card, predictor = open_model(args)
    dataset = open_dataset(args.data) if args.data is not None else None
    ids = dataset.image_ids if dataset is not None else list_images(args.images)
    if not ids:
        raise CommandError(f"{args.images or args.data} holds no .jpg/.jpeg/.png images")

    def results(bar: tqdm) -> Iterator[FrameResult]:
        if dataset is not None:
            return predictions(predictor, dataset, ids, args.batch_size, bar.update)
        return predictor.run_folder(args.images, ids, args.batch_size, bar.update)

    if args.out.suffix.lower() != ".csv":
        if args.out.exists() and not args.out.is_dir():
            raise CommandError(f"{args.out} is a file; give a .csv name or a folder for PNGs")
        exclusive = card.head == "softmax"
        flagged = 0
        with progress_bar(args, len(ids), "predict") as bar:
            for result in results(bar):
                write_prediction(args.out, result.image_id, result.defects, exclusive)
                flagged += bool(result.defects.classes)
        kind = "label maps" if exclusive else "masks per class found"
        print(f"wrote {kind} under {args.out} for {len(ids)} images, {flagged} with defects")
        return 0
    with progress_bar(args, len(ids), "predict") as bar:
        table = to_labels(results(bar), card.num_classes)
    rows = atomic_write(
        args.out, lambda path: write_labels(path, table, layout=args.layout, image_ids=ids)
    )
    flagged = sum(1 for i in ids if table.classes(i))
    print(f"wrote {args.out}: {rows} rows for {len(ids)} images, {flagged} with defects")
    return 0
