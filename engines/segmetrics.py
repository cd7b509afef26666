"""Segmentation metrics for any labelled data set, accumulated one image at a time.

Two kinds of labels, one accumulator:

- exclusive classes (NEU-Seg, magnetic tile): each image is an H×W label map, 0 = background
  and 1..C the defect classes, one class per pixel. A (C+1)×(C+1) pixel confusion matrix
  (rows truth, columns prediction, index 0 background) holds everything pixel-level.
- independent classes (Severstal): each image is a C×H×W stack of 0/1 masks; a pixel may
  carry several classes or none. There is no background class, so there is no background IoU
  and no mIoU with background; the report says so instead of inventing a number.

Pixel IoU and Dice are over the whole set (counts summed over images, then divided), the
usual definition for NEU-Seg-style benchmarks. A class absent from both truth and prediction
in the whole set has no IoU or Dice (0/0): it is None, left out of the means, and listed in
`SegmentationReport.undefined_classes`. Image-level detection ("is a sheet with the defect
flagged with it?") and the Kaggle per-(image, class) Dice follow engines/scoring.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.classes import MAX_CLASSES, class_name
from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.scoring import mask_dice

Counts = npt.NDArray[np.int64]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


@dataclass(frozen=True)
class SheetCounts:
    """Image-level detection of one class: sheets with it in the truth vs. in the prediction."""

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
        """TP / (TP + FN); None when no sheet has the class in the truth."""
        return _ratio(self.tp, self.tp + self.fn)


@dataclass(frozen=True)
class ClassMetrics:
    """Pixel-level counts and scores of one class over the whole set.

    `iou` and `dice` are None when the class is in neither truth nor prediction. `sheets` is
    None for the background; `kaggle_dice` (mean over images, empty/empty = 1) only exists for
    independent classes.
    """

    class_id: int
    tp: int
    fp: int
    fn: int
    iou: float | None
    dice: float | None
    sheets: SheetCounts | None
    kaggle_dice: float | None = None

    @property
    def truth_pixels(self) -> int:
        """Pixels of this class in the truth."""
        return self.tp + self.fn

    @property
    def predicted_pixels(self) -> int:
        """Pixels of this class in the prediction."""
        return self.tp + self.fp


@dataclass(frozen=True)
class SegmentationReport:
    """Everything `SegmentationMetrics.report` knows; `to_dict` gives it as JSON.

    The means skip the classes in `undefined_classes`. `miou_with_background` averages the
    background and the defect classes (exclusive classes only, else None and a note says why);
    `miou_without_background` and `mean_dice` average the defect classes only. For exclusive
    classes `pixel_accuracy` is the share of pixels given their true label; for independent
    classes it is the share of (pixel, class) decisions that are right.
    """

    num_classes: int
    exclusive: bool
    images: int
    pixels: int
    classes: tuple[ClassMetrics, ...]
    background: ClassMetrics | None
    miou_with_background: float | None
    miou_without_background: float | None
    mean_dice: float | None
    pixel_accuracy: float
    confusion: tuple[tuple[int, ...], ...] | None
    kaggle_mean_dice: float | None
    undefined_classes: tuple[int, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, image precision and recall included."""

        def entry(metrics: ClassMetrics) -> dict[str, Any]:
            out = asdict(metrics)
            if metrics.sheets is not None:
                out["sheets"].update(
                    precision=metrics.sheets.precision, recall=metrics.sheets.recall
                )
            return out

        out = asdict(self)
        out["classes"] = [entry(m) for m in self.classes]
        out["background"] = None if self.background is None else entry(self.background)
        out["confusion"] = None if self.confusion is None else [list(r) for r in self.confusion]
        out["undefined_classes"] = list(self.undefined_classes)
        out["notes"] = list(self.notes)
        return out


def _check_pair(truth: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth), np.asarray(pred)
    if t.shape != p.shape:
        raise InvalidInput(f"truth shape {t.shape} and prediction shape {p.shape} differ")
    for what, array in (("truth", t), ("prediction", p)):
        if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)):
            raise InvalidInput(
                f"{what} has dtype {array.dtype}; labels must be integers (uint8) — "
                "threshold or argmax probabilities first"
            )
    if t.size == 0:
        raise InvalidInput(f"empty image: truth and prediction have shape {t.shape}")
    return t, p


class SegmentationMetrics:
    """Accumulates pixel and image-level counts over a labelled set; `report()` any time.

    `exclusive=True`: `add` takes H×W label maps (0 = background, 1..num_classes).
    `exclusive=False`: `add` takes num_classes×H×W 0/1 masks. Image sizes may differ between
    images. `kaggle_dice` (independent classes only) also keeps the per-(image, class) Dice.
    """

    def __init__(self, num_classes: int, exclusive: bool, kaggle_dice: bool = True) -> None:
        if not 1 <= num_classes <= MAX_CLASSES:
            raise InvalidSetting(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes}")
        self.num_classes = num_classes
        self.exclusive = exclusive
        self.kaggle_dice = kaggle_dice and not exclusive
        size = num_classes + 1
        self.images = 0
        self.pixels = 0
        self._confusion: Counts = np.zeros((size, size), np.int64)
        # Per defect class (index c - 1): pixel TP/FP/FN, sheet TP/FP/FN/TN, Kaggle Dice sum.
        self._tp: Counts = np.zeros(num_classes, np.int64)
        self._fp: Counts = np.zeros(num_classes, np.int64)
        self._fn: Counts = np.zeros(num_classes, np.int64)
        self._sheets: Counts = np.zeros((num_classes, 4), np.int64)
        self._dice_sum = np.zeros(num_classes, np.float64)

    def add(self, truth: npt.ArrayLike, pred: npt.ArrayLike) -> None:
        """Count one image; InvalidInput for a wrong shape, dtype or label value."""
        t, p = _check_pair(truth, pred)
        if self.exclusive:
            truth_has, pred_has = self._add_label_maps(t, p)
        else:
            truth_has, pred_has = self._add_masks(t, p)
        # Columns: sheet TP, FP, FN, TN.
        self._sheets[:, 0] += truth_has & pred_has
        self._sheets[:, 1] += ~truth_has & pred_has
        self._sheets[:, 2] += truth_has & ~pred_has
        self._sheets[:, 3] += ~truth_has & ~pred_has
        self.images += 1

    def add_batch(self, truths: npt.ArrayLike, preds: npt.ArrayLike) -> None:
        """Count every image of a batch (N×H×W label maps or N×C×H×W masks)."""
        t, p = np.asarray(truths), np.asarray(preds)
        if t.shape != p.shape:
            raise InvalidInput(f"truth batch shape {t.shape} and prediction {p.shape} differ")
        for truth, pred in zip(t, p, strict=True):
            self.add(truth, pred)

    def _check_values(self, array: np.ndarray, what: str, top: int, rule: str) -> None:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > top:
            bad = low if low < 0 else high
            raise InvalidInput(f"{what} holds value {bad}; {rule}")

    def _add_label_maps(self, t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.num_classes
        if t.ndim != 2:
            raise InvalidInput(
                f"exclusive classes take H×W label maps; got truth shape {t.shape} "
                "(for C×H×W 0/1 masks use exclusive=False)"
            )
        rule = f"labels are 0 = background and 1..{c}"
        self._check_values(t, "truth label map", c, rule)
        self._check_values(p, "prediction label map", c, rule)
        pairs = t.astype(np.intp) * (c + 1) + p.astype(np.intp)
        image = np.bincount(pairs.ravel(), minlength=(c + 1) ** 2).reshape(c + 1, c + 1)
        self._confusion += image
        self.pixels += t.size
        # Derive the per-class pixel counts from the confusion matrix at report time.
        return image[1:].sum(axis=1) > 0, image[:, 1:].sum(axis=0) > 0

    def _add_masks(self, t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.num_classes
        if t.ndim != 3 or t.shape[0] != c:
            raise InvalidInput(
                f"independent classes take {c}×H×W 0/1 masks; got truth shape {t.shape} "
                "(for H×W label maps use exclusive=True)"
            )
        rule = "masks must be 0/1 (threshold probabilities first)"
        self._check_values(t, "truth masks", 1, rule)
        self._check_values(p, "prediction masks", 1, rule)
        t, p = t.astype(bool), p.astype(bool)
        shared = np.count_nonzero(t & p, axis=(1, 2))
        truth_area = np.count_nonzero(t, axis=(1, 2))
        pred_area = np.count_nonzero(p, axis=(1, 2))
        self._tp += shared
        self._fp += pred_area - shared
        self._fn += truth_area - shared
        self.pixels += t[0].size
        if self.kaggle_dice:
            self._dice_sum += [mask_dice(t[k], p[k]) for k in range(c)]
        return truth_area > 0, pred_area > 0

    def _pixel_counts(self) -> tuple[Counts, Counts, Counts]:
        """TP, FP, FN per class; index 0 is the background for exclusive classes."""
        if not self.exclusive:
            return self._tp, self._fp, self._fn
        diagonal = np.diag(self._confusion)
        return (
            diagonal,
            self._confusion.sum(axis=0) - diagonal,
            self._confusion.sum(axis=1) - diagonal,
        )

    def report(self) -> SegmentationReport:
        """The metrics so far; InvalidInput when no image was added."""
        if self.images == 0:
            raise InvalidInput("no images were added: nothing to report")
        tp, fp, fn = self._pixel_counts()
        offset = 1 if self.exclusive else 0

        def metrics(index: int, class_id: int, defect: bool) -> ClassMetrics:
            t, f_p, f_n = int(tp[index]), int(fp[index]), int(fn[index])
            sheets = SheetCounts(*map(int, self._sheets[class_id - 1])) if defect else None
            kaggle = (
                self._dice_sum[class_id - 1] / self.images if defect and self.kaggle_dice else None
            )
            return ClassMetrics(
                class_id=class_id,
                tp=t,
                fp=f_p,
                fn=f_n,
                iou=_ratio(t, t + f_p + f_n),
                dice=_ratio(2 * t, 2 * t + f_p + f_n),
                sheets=sheets,
                kaggle_dice=None if kaggle is None else float(kaggle),
            )

        classes = tuple(metrics(c - 1 + offset, c, True) for c in range(1, self.num_classes + 1))
        background = metrics(0, 0, False) if self.exclusive else None
        everything = ((background,) if background is not None else ()) + classes
        undefined = tuple(m.class_id for m in everything if m.iou is None)
        notes = []
        if background is None:
            notes.append(
                "independent classes: no background class, so no background IoU and no mIoU "
                "with background"
            )
        if undefined:
            notes.append(
                f"class(es) {', '.join(map(str, undefined))} are in neither truth nor "
                "prediction: IoU and Dice undefined, left out of the means"
            )
        if self.exclusive:
            accuracy = float(np.trace(self._confusion)) / self.pixels
            confusion = tuple(tuple(int(v) for v in row) for row in self._confusion)
        else:
            decisions = self.pixels * self.num_classes
            accuracy = (decisions - int(fp.sum()) - int(fn.sum())) / decisions
            confusion = None
        kaggle_mean = float(self._dice_sum.mean()) / self.images if self.kaggle_dice else None
        return SegmentationReport(
            num_classes=self.num_classes,
            exclusive=self.exclusive,
            images=self.images,
            pixels=self.pixels,
            classes=classes,
            background=background,
            miou_with_background=_mean([m.iou for m in everything])
            if background is not None
            else None,
            miou_without_background=_mean([m.iou for m in classes]),
            mean_dice=_mean([m.dice for m in classes]),
            pixel_accuracy=accuracy,
            confusion=confusion,
            kaggle_mean_dice=kaggle_mean,
            undefined_classes=undefined,
            notes=tuple(notes),
        )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _counted(label: str, value: float | None, scored: int, of: int) -> str:
    classes = f"{scored} classes" if scored == of else f"{scored} of {of} classes"
    return f"{label}, {classes}): {_number(value)}"


def format_report(report: SegmentationReport, names: Sequence[str] = ()) -> str:
    """A text table (class, name, IoU, Dice, image precision and recall, sheet counts), then
    both mIoUs, mean Dice and pixel accuracy, each named; `names` are the classes 1..C."""
    header = f"{'class':>5}  {'name':<16} {'IoU':>7} {'Dice':>7} {'img prec':>8} {'img rec':>8}"
    header += f"  {'sheets TP/FP/FN':>15}"
    if report.kaggle_mean_dice is not None:
        header += f" {'Kaggle Dice':>11}"
    lines = [header, "-" * len(header)]
    rows = ((report.background,) if report.background is not None else ()) + report.classes
    for m in rows:
        name = "background" if m.class_id == 0 else class_name(names, m.class_id)
        line = f"{m.class_id:>5}  {name[:16]:<16} {_number(m.iou):>7} {_number(m.dice):>7}"
        if m.sheets is None:
            line += f" {'':>8} {'':>8}  {'':>15}"
        else:
            s = m.sheets
            counts = f"{s.tp}/{s.fp}/{s.fn}"
            line += f" {_number(s.precision):>8} {_number(s.recall):>8}  {counts:>15}"
        if m.kaggle_dice is not None:
            line += f" {_number(m.kaggle_dice):>11}"
        lines.append(line.rstrip())
    lines.append("")
    defect = sum(m.iou is not None for m in report.classes)
    if report.background is None:
        lines.append("mIoU (with background): n/a — independent classes have no background")
    else:
        scored = defect + (report.background.iou is not None)
        total = report.num_classes + 1
        lines.append(_counted("mIoU (with background", report.miou_with_background, scored, total))
    c = report.num_classes
    lines.append(_counted("mIoU (defect classes only", report.miou_without_background, defect, c))
    lines.append(_counted("mean Dice (defect classes only", report.mean_dice, defect, c))
    what = "pixels" if report.exclusive else "pixel × class decisions"
    lines.append(f"pixel accuracy (share of {what} right): {report.pixel_accuracy:.4f}")
    if report.kaggle_mean_dice is not None:
        pairs = report.images * report.num_classes
        lines.append(
            f"Kaggle mean Dice ({pairs} image × class pairs): {report.kaggle_mean_dice:.4f}"
        )
    if report.undefined_classes:
        absent = ", ".join(
            "0 (background)" if i == 0 else f"{i} ({class_name(names, i)})"
            for i in report.undefined_classes
        )
        lines.append(f"in neither truth nor prediction (IoU undefined, not in the means): {absent}")
    lines.append(f"images: {report.images}, pixels: {report.pixels:,}")
    return "\n".join(lines)
