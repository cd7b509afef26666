"""Kaggle Severstal scoring, plus the business view of the same predictions.

- The competition metric: mean Dice over every (image, class) pair, where an empty prediction
  of an empty truth scores 1 and anything against an empty counterpart scores 0.
- The line's view: per class, is a sheet that has the defect flagged with it? Image-level
  precision, recall and F1 (recall first: a defective sheet must not pass unflagged).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from defectd.engines.errors import UserError
from defectd.engines.labels import LabelTable
from defectd.engines.rle import SEVERSTAL_SHAPE, decode_runs

MAX_NAMED = 10


class ScoreError(UserError, ValueError):
    """Predictions that cannot be scored against the truth (e.g. images the truth lacks)."""


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class ClassScore:
    """Pixel Dice and image-level detection counts for one class."""

    class_id: int
    dice: float
    true_images: int
    predicted_images: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None when the class was never predicted."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); None when the class never occurs in the truth."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """2·TP / (2·TP + FP + FN); None when the class is neither present nor predicted."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


@dataclass(frozen=True)
class ScoreReport:
    """The result of scoring one prediction set against one truth set."""

    images: int
    mean_dice: float
    classes: list[ClassScore]
    missing_predictions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, derived metrics included."""
        out: dict[str, Any] = {
            "images": self.images,
            "pairs": self.images * len(self.classes),
            "mean_dice": self.mean_dice,
            "missing_predictions": len(self.missing_predictions),
            "missing_prediction_ids": self.missing_predictions,
            "classes": [],
        }
        for score in self.classes:
            entry = asdict(score)
            entry.update(precision=score.precision, recall=score.recall, f1=score.f1)
            out["classes"].append(entry)
        return out


def intersection_area(
    a_starts: np.ndarray, a_lengths: np.ndarray, b_starts: np.ndarray, b_lengths: np.ndarray
) -> int:
    """Pixels shared by two run lists (each sorted and non-overlapping), without decoding."""
    positions = np.concatenate((a_starts, a_starts + a_lengths, b_starts, b_starts + b_lengths))
    steps = np.concatenate(
        (
            np.ones(a_starts.size, np.int8),
            -np.ones(a_starts.size, np.int8),
            np.ones(b_starts.size, np.int8),
            -np.ones(b_starts.size, np.int8),
        )
    )
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    coverage = np.cumsum(steps[order])
    # Between consecutive edges the coverage is constant; 2 means both masks cover it.
    segments = np.diff(positions)
    return int(segments[coverage[:-1] == 2].sum())


def dice(truth_rle: str, pred_rle: str, shape: tuple[int, int] = SEVERSTAL_SHAPE) -> float:
    """Kaggle Dice of two RLE masks: 1.0 when both are empty, 0.0 when exactly one is."""
    if not truth_rle and not pred_rle:
        return 1.0
    if not truth_rle or not pred_rle:
        return 0.0
    size = shape[0] * shape[1]
    t_starts, t_lengths = decode_runs(truth_rle, size)
    p_starts, p_lengths = decode_runs(pred_rle, size)
    shared = intersection_area(t_starts, t_lengths, p_starts, p_lengths)
    return 2.0 * shared / float(t_lengths.sum() + p_lengths.sum())


def mask_dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Kaggle Dice of two H×W 0/1 masks: 1.0 when both are empty, 0.0 when exactly one is."""
    truth_area, pred_area = int(np.count_nonzero(truth)), int(np.count_nonzero(pred))
    if truth_area == 0 and pred_area == 0:
        return 1.0
    shared = int(np.count_nonzero(np.logical_and(truth, pred)))
    return 2.0 * shared / float(truth_area + pred_area)


def _name_some(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (f" ... and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def score(
    truth: LabelTable,
    pred: LabelTable,
    extra_truth_images: Iterable[str] = (),
    shape: tuple[int, int] = SEVERSTAL_SHAPE,
) -> ScoreReport:
    """Score `pred` against `truth`.

    The images scored are those the truth names plus `extra_truth_images` (the defect-free
    images of a Kaggle-style train.csv appear only in train_images/). Images missing from the
    prediction count as empty predictions and are listed in the report; predicted images the
    truth does not know raise ScoreError naming them.
    """
    if truth.num_classes != pred.num_classes:
        raise ScoreError(f"truth has {truth.num_classes} classes, prediction {pred.num_classes}")
    images = sorted(set(truth.masks).union(extra_truth_images))
    if not images:
        raise ScoreError("the truth names no images: nothing to score")
    known = set(images)
    unknown = sorted(image for image in pred.masks if image not in known)
    if unknown:
        raise ScoreError(
            f"{len(unknown)} predicted image(s) are not in the truth: {_name_some(unknown)} "
            "(pass --images DIR if the truth's defect-free images live only in a folder)"
        )
    missing = [image for image in images if image not in pred.masks]

    classes = []
    total = 0.0
    for class_id in range(1, truth.num_classes + 1):
        class_dice = 0.0
        tp = fp = fn = 0
        for image in images:
            t_rle, p_rle = truth.rle(image, class_id), pred.rle(image, class_id)
            class_dice += dice(t_rle, p_rle, shape)
            tp += bool(t_rle) and bool(p_rle)
            fp += not t_rle and bool(p_rle)
            fn += bool(t_rle) and not p_rle
        total += class_dice
        classes.append(
            ClassScore(
                class_id=class_id,
                dice=class_dice / len(images),
                true_images=tp + fn,
                predicted_images=tp + fp,
                tp=tp,
                fp=fp,
                fn=fn,
                tn=len(images) - tp - fp - fn,
            )
        )
    return ScoreReport(
        images=len(images),
        mean_dice=total / (len(images) * truth.num_classes),
        classes=classes,
        missing_predictions=missing,
    )


def class_confusion(truth: LabelTable, pred: LabelTable, images: Iterable[str]) -> list[list[int]]:
    """Image-level confusion of classes, (C+1)×(C+1): rows truth, columns prediction.

    Entry [t][p] counts images whose truth has class t and whose prediction has class p
    (1-based; index 0 is "none": no class at all). Classes co-occur, so an image can count
    in several cells; the diagonal is the per-class TP and row t, column 0 the sheets of
    class t that were flagged with nothing.
    """
    size = truth.num_classes + 1
    matrix = [[0] * size for _ in range(size)]
    for image in images:
        t_classes = truth.classes(image) or (0,)
        p_classes = pred.classes(image) or (0,)
        for t in t_classes:
            for p in p_classes:
                matrix[t][p] += 1
    return matrix
