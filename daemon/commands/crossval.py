"""`defectd crossval`: score a recipe on a few real frames by cross-validation, with each
fold's thresholds tuned on the other folds (`training.crossfit`), beside predicting nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.engines.datasets.folds import read_folds
from defectd.engines.errors import InvalidInput
from defectd.engines.inference import batches
from defectd.engines.labels import LabelTable, write_labels
from defectd.engines.model_card import ModelCard, read_card
from defectd.engines.postprocess import FrameDefects, postprocess
from defectd.engines.rle import encode
from defectd.engines.scoring import ScoreReport, score
from defectd.engines.selection import CHOICES, EngineConfig, open_engine
from defectd.engines.severstal import SeverstalDataset
from defectd.training.crossfit import FoldOutput, crossfit
from defectd.training.tune import ClassResult

FOLD_FIELD = "{fold}"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `crossval` subcommand."""
    parser = subparsers.add_parser(
        "crossval",
        help="score fold models on their own folds, thresholds tuned on the other folds",
        description=(
            "Cross-validation on a few labelled frames (folds from `defectd dataset folds`): "
            "the model of fold K (trained on fold-K/train, e.g. by `make model-severstal-real`) "
            "scores fold-K/test, with post-processing thresholds (presence gate, pixel "
            "threshold, minimum areas) tuned on the other folds' out-of-fold outputs, so no "
            "frame is scored by a model or a threshold it helped choose. Prints the Kaggle mean "
            "Dice beside predicting nothing and beside each model's own card thresholds, and "
            "the thresholds tuned on all folds together (for a model trained on every frame)."
        ),
    )
    parser.add_argument(
        "--folds", type=Path, required=True, help="folder written by `defectd dataset folds`"
    )
    parser.add_argument(
        "--models",
        required=True,
        metavar="PATTERN",
        help="the fold models' directories, with {fold} for the fold number, e.g. "
        "'runs/severstal-real-fold{fold}/model'; without {fold}, one model for every fold "
        "(one that trained on none of these frames, e.g. models/default)",
    )
    parser.add_argument("--out", type=Path, help="write the prediction CSVs here")
    parser.add_argument(
        "--min-recall", type=float, help="tune for image-level recall ≥ this for every class"
    )
    parser.add_argument("--backend", default="onnxruntime", choices=CHOICES)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per engine call")
    add_json_option(parser, "the scores and every fold's thresholds")
    parser.set_defaults(handler=run)


def _fold_outputs(
    args: argparse.Namespace, fold: int, test: Path
) -> tuple[ModelCard, list[FoldOutput]]:
    """Fold `fold`'s model run over its test frames: raw outputs with their truth."""
    model_dir = Path(args.models.replace(FOLD_FIELD, str(fold)))
    card = read_card(model_dir)
    engine = open_engine(
        card,
        EngineConfig(
            backend=args.backend,
            precision=args.precision,
            max_batch=args.batch_size,
            threads=args.threads,
            warmup=False,
        ),
    )
    dataset = SeverstalDataset(test, shape=card.input.shape, num_classes=card.num_classes)
    outputs = []
    for ids, frames in batches(
        dataset.images_dir, dataset.image_ids, dataset.shape, args.batch_size
    ):
        result = engine.infer(frames)
        for index, image_id in enumerate(ids):
            outputs.append(
                FoldOutput(
                    fold,
                    image_id,
                    result.probs[index].copy(),
                    result.presence[index].copy(),
                    dataset.load_masks(image_id),
                )
            )
    return card, outputs


def _table(defects: dict[str, FrameDefects], num_classes: int) -> LabelTable:
    table = LabelTable(num_classes)
    for image_id, frame in defects.items():
        for class_id in range(1, num_classes + 1):
            table.set(image_id, class_id, frame.rle(class_id))
    return table


def _row(name: str, report: ScoreReport) -> str:
    classes = "  ".join(f"{c.dice:7.3f}" for c in report.classes)
    return f"{name:<38}{report.mean_dice:9.4f}  {classes}"


def _precision(report: ScoreReport) -> str:
    parts = []
    for c in report.classes:
        flagged = c.tp + c.fp
        precision = "—" if flagged == 0 else f"{c.tp / flagged:.2f}"
        parts.append(f"class {c.class_id} {c.tp}/{flagged} flagged right ({precision})")
    return "; ".join(parts)


def _thresholds(results: list[ClassResult]) -> str:
    lines = ["class  presence  pixel  min comp  min mask"]
    for r in results:
        t = r.thresholds
        lines.append(
            f"{r.class_id:5d}  {t.presence:8.2f}  {t.pixel:5.2f}  {t.min_component_area:8d}  "
            f"{t.min_mask_area:8d}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run every fold's model on its fold, cross-fit the thresholds, score, print."""
    if args.min_recall is not None and not 0.0 < args.min_recall <= 1.0:
        raise CommandError(f"--min-recall must be in (0, 1], e.g. 0.95, got {args.min_recall}")
    folds = read_folds(args.folds)
    outputs: list[FoldOutput] = []
    card_defects: dict[str, FrameDefects] = {}
    cards = []
    for fold in folds:
        card, found = _fold_outputs(args, fold.number, args.folds / f"fold-{fold.number}" / "test")
        cards.append(card)
        outputs += found
        for output in found:
            card_defects[output.image_id] = postprocess(
                output.probs, output.presence, card.thresholds
            )
    num_classes, head = cards[0].num_classes, cards[0].head
    if any((c.num_classes, c.head) != (num_classes, head) for c in cards):
        raise InvalidInput("the fold models differ in their classes or head; train them alike")
    fit = crossfit(outputs, num_classes, head, min_recall=args.min_recall)
    shape = cards[0].input.shape
    truth = LabelTable(num_classes)
    for output in outputs:
        for class_id in range(1, num_classes + 1):
            plane = output.truth[class_id - 1]
            truth.set(output.image_id, class_id, encode(plane) if plane.any() else "")
    crossfitted = score(truth, _table(fit.defects, num_classes), shape=shape)
    with_cards = score(truth, _table(card_defects, num_classes), shape=shape)
    nothing = score(truth, LabelTable(num_classes), shape=shape)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_labels(args.out / "crossfit.csv", _table(fit.defects, num_classes))
        write_labels(args.out / "card-thresholds.csv", _table(card_defects, num_classes))
    if not to_stdout(args):
        header = "  ".join(f"class {c}" for c in range(1, num_classes + 1))
        models = (
            "fold models"
            if FOLD_FIELD in args.models
            else f"one model, {args.models}, for every fold (it must not have trained on them)"
        )
        print(
            f"{len(outputs)} frames in {len(folds)} folds of {args.folds}, {models}: every "
            "frame scored with thresholds tuned on the other folds only"
        )
        print(f"{'Kaggle mean Dice':<38}{'all':>9}  {header}")
        print(_row("predict nothing", nothing))
        print(_row("each fold model's card thresholds", with_cards))
        print(_row("thresholds tuned on the other folds", crossfitted))
        print(f"tuned on the other folds: {_precision(crossfitted)}")
        verdict = "above" if crossfitted.mean_dice > nothing.mean_dice else "NOT above"
        print(f"{verdict} predicting nothing by {crossfitted.mean_dice - nothing.mean_dice:+.4f}")
        print("thresholds tuned on every fold together (for a model trained on all frames):")
        print(_thresholds(fit.overall))
    emit_json(
        args,
        {
            "folds": str(args.folds),
            "models": args.models,
            "frames": len(outputs),
            "predict_nothing": nothing.to_dict(),
            "card_thresholds": with_cards.to_dict(),
            "crossfit": crossfitted.to_dict(),
            "thresholds": fit.to_dict(),
        },
    )
    return 0
