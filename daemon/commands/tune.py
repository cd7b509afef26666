"""`defectd tune`: choose per-class post-processing thresholds on validation frames."""

from __future__ import annotations

import argparse
from dataclasses import replace
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
from defectd.engines.evaluation import predictions
from defectd.engines.inference import Predictor, batches
from defectd.engines.model_card import ModelCard, write_card
from defectd.engines.postprocess import exclusive_probs
from defectd.engines.severstal import SeverstalDataset
from defectd.training.tune import Tuner


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="tune per-class thresholds and minimum areas on validation data; updates the card",
        description=(
            "Run the model over labelled frames it was not trained on (a Severstal-layout "
            "folder or any data set, docs/datasets.md) and "
            "choose, per class, the presence threshold, pixel threshold, minimum component "
            "area and minimum mask area that maximise Kaggle mean Dice — or, with "
            "--min-recall, the best Dice whose image-level recall reaches it for every class. "
            "The thresholds are written into the model card (what evaluate, predict and the "
            "daemon use)."
        ),
    )
    add_model_arguments(parser)
    add_data_arguments(parser, "tune on these images only")
    parser.add_argument(
        "--min-recall",
        type=float,
        help="require image-level recall ≥ this for every class (e.g. 0.95)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the thresholds, leave the card alone"
    )
    parser.set_defaults(handler=run)


def _collect_severstal(
    args: argparse.Namespace,
    shape: tuple[int, int],
    num_classes: int,
    predictor: Predictor,
    tuner: Tuner,
) -> None:
    dataset = SeverstalDataset(args.data, shape=shape, num_classes=num_classes)
    # Tuning needs the raw engine output only: no post-processing at the card's thresholds.
    with progress_bar(args, len(dataset), "tune") as bar:
        for ids, frames in batches(dataset.images_dir, dataset.image_ids, shape, args.batch_size):
            output = predictor.engine.infer(frames)
            for index, image_id in enumerate(ids):
                tuner.add(output.probs[index], output.presence[index], dataset.load_masks(image_id))
            bar.update(len(ids))


def _collect_dataset(
    args: argparse.Namespace, card: ModelCard, predictor: Predictor, tuner: Tuner
) -> None:
    """Evidence from any data set at native sizes; a softmax head's pixels only count for
    their argmax class, as `postprocess` counts them."""
    dataset, ids = open_data(args, card)
    with progress_bar(args, len(ids), "tune") as bar:
        for result in predictions(predictor, dataset, ids, args.batch_size, bar.update, True):
            assert result.probs is not None  # asked for with keep_probs
            probs = exclusive_probs(result.probs) if card.head == "softmax" else result.probs
            truth = dataset.read_masks(result.image_id, result.defects.shape)
            tuner.add(probs, result.defects.presence, truth)


def run(args: argparse.Namespace) -> int:
    """Tune, print the table, write the card."""
    from defectd.engines.golden import rewrite_golden
    from defectd.training.tune import to_config

    if args.min_recall is not None and not 0.0 < args.min_recall <= 1.0:
        raise CommandError(f"--min-recall must be in (0, 1], e.g. 0.95, got {args.min_recall}")
    card, predictor = open_model(args)
    tuner = Tuner(card.num_classes)
    if severstal_folder(args):
        _collect_severstal(args, card.input.shape, card.num_classes, predictor, tuner)
    else:
        _collect_dataset(args, card, predictor, tuner)
    chosen = tuner.solve(args.min_recall)
    print(
        f"tuned on {tuner.frames} frames of {args.data}"
        + (f", image-level recall ≥ {args.min_recall} required" if args.min_recall else "")
    )
    print("class  presence  pixel  min comp  min mask    Dice  recall  precision  sheets")
    for r in chosen:
        t = r.thresholds
        recall = "   —" if r.recall is None else f"{r.recall:.3f}"
        precision = "      —" if r.precision is None else f"{r.precision:.3f}"
        flag = "" if r.met_min_recall else "   (recall target NOT reached)"
        print(
            f"{r.class_id:5d}  {t.presence:8.2f}  {t.pixel:5.2f}  {t.min_component_area:8d}  "
            f"{t.min_mask_area:8d}  {r.dice:.4f}   {recall}      {precision}  {r.positives:6d}"
            f"{flag}"
        )
    mean_dice = sum(r.dice for r in chosen) / len(chosen)
    print(f"Kaggle mean Dice on the tuning frames: {mean_dice:.4f}")
    if args.dry_run:
        return 0
    validation = {
        "data": str(args.data),
        "frames": tuner.frames,
        "precision": args.precision,
        "min_recall": args.min_recall,
        "mean_dice": mean_dice,
        "classes": [r.to_dict() for r in chosen],
    }
    updated = replace(card, thresholds=to_config(chosen), validation=validation)
    path = write_card(updated.with_command(args.command_line), card.directory or Path("."))
    print(f"thresholds written to {path}")
    # The golden outputs follow the thresholds they were post-processed with.
    print(f"golden outputs rewritten: {rewrite_golden(path.parent)}")
    unmet = [r.class_id for r in chosen if not r.met_min_recall]
    if unmet:
        print(f"warning: recall target not reached for class(es) {unmet}; best recall kept")
        return 1
    return 0
