"""`defectd tune`: choose per-class post-processing thresholds on validation frames."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.model_options import add_model_arguments, open_model, progress_bar
from defectd.engines.inference import batches
from defectd.engines.model_card import write_card
from defectd.engines.severstal import SeverstalDataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="tune per-class thresholds and minimum areas on validation data; updates the card",
        description=(
            "Run the model over a Severstal-layout folder of frames it was not trained on and "
            "choose, per class, the presence threshold, pixel threshold, minimum component "
            "area and minimum mask area that maximise Kaggle mean Dice — or, with "
            "--min-recall, the best Dice whose image-level recall reaches it for every class. "
            "The thresholds are written into the model card (what evaluate, predict and the "
            "daemon use)."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument("--data", type=Path, required=True, help="Severstal-layout folder")
    parser.add_argument(
        "--min-recall",
        type=float,
        help="require image-level recall ≥ this for every class (e.g. 0.95)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the thresholds, leave the card alone"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Tune, print the table, write the card."""
    from defectd.engines.golden import rewrite_golden
    from defectd.training.tune import Tuner, to_config

    if args.min_recall is not None and not 0.0 < args.min_recall <= 1.0:
        raise CommandError(f"--min-recall must be in (0, 1], e.g. 0.95, got {args.min_recall}")
    card, predictor = open_model(args)
    dataset = SeverstalDataset(args.data, shape=card.input.shape, num_classes=card.num_classes)
    tuner = Tuner(card.num_classes)
    # Tuning needs the raw engine output only: no post-processing at the card's thresholds.
    shape, engine = card.input.shape, predictor.engine
    with progress_bar(args, len(dataset), "tune") as bar:
        for ids, frames in batches(dataset.images_dir, dataset.image_ids, shape, args.batch_size):
            output = engine.infer(frames)
            for index, image_id in enumerate(ids):
                masks = dataset.load_masks(image_id)
                tuner.add(output.probs[index], output.presence[index], masks)
            bar.update(len(ids))
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
