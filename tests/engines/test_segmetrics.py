"""Segmentation metrics against hand-computed label maps, and against Kaggle scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.labels import LabelTable
from defectd.engines.rle import encode
from defectd.engines.scoring import score
from defectd.engines.segmetrics import SegmentationMetrics, format_report

# 2×3 label maps, 2 defect classes. Confusion (rows truth, columns prediction):
#   bg [2 0 0]   class 1 [0 2 0]   class 2 [1 0 1]
# IoU: background 2/3, class 1 2/2, class 2 1/2.
TRUTH = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
PRED = np.array([[0, 1, 1], [2, 0, 0]], np.uint8)


def test_hand_computed_label_maps() -> None:
    metrics = SegmentationMetrics(2, exclusive=True)
    metrics.add(TRUTH, PRED)
    report = metrics.report()
    assert report.confusion == ((2, 0, 0), (0, 2, 0), (1, 0, 1))
    assert report.background is not None
    assert report.background.iou == pytest.approx(2 / 3)
    assert [m.iou for m in report.classes] == pytest.approx([1.0, 0.5])
    assert [m.dice for m in report.classes] == pytest.approx([1.0, 2 / 3])
    assert (report.classes[1].tp, report.classes[1].fp, report.classes[1].fn) == (1, 0, 1)
    assert report.miou_with_background == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert report.miou_without_background == pytest.approx(0.75)
    assert report.mean_dice == pytest.approx((1 + 2 / 3) / 2)
    assert report.pixel_accuracy == pytest.approx(5 / 6)
    assert report.images == 1 and report.pixels == 6
    assert report.undefined_classes == () and report.kaggle_mean_dice is None

    text = format_report(report, ["pits", "crazing"])
    assert "mIoU (with background, 3 classes): 0.7222" in text
    assert "mIoU (defect classes only, 2 classes): 0.7500" in text
    assert "crazing" in text and "background" in text


def test_class_absent_from_truth_and_prediction_is_undefined_not_zero() -> None:
    metrics = SegmentationMetrics(4, exclusive=True)
    metrics.add(TRUTH, PRED)
    # Class 3 appears only in the truth: a real miss, IoU 0, part of the means.
    metrics.add(np.array([[3, 0]], np.uint8), np.array([[0, 0]], np.uint8))
    report = metrics.report()
    ious = [m.iou for m in report.classes]
    assert ious[:3] == pytest.approx([1.0, 0.5, 0.0]) and ious[3] is None
    assert report.classes[3].dice is None
    assert report.undefined_classes == (4,)
    assert report.miou_without_background == pytest.approx(1.5 / 3)
    assert any("4" in note and "undefined" in note for note in report.notes)
    sheets = report.classes[3].sheets
    assert sheets is not None and sheets.precision is None and sheets.recall is None
    text = format_report(report, ["pits", "crazing", "scratches", "patches"])
    # Background IoU 3/5 (one class-2 and one class-3 pixel predicted as background).
    assert "mIoU (with background, 4 of 5 classes): 0.5250" in text
    assert "mIoU (defect classes only, 3 of 4 classes): 0.5000" in text
    assert "4 (patches)" in text and "n/a" in text


def test_image_level_presence_counts_sheets() -> None:
    metrics = SegmentationMetrics(2, exclusive=True)
    blank = np.zeros((2, 2), np.uint8)
    one = np.array([[1, 0], [0, 0]], np.uint8)
    metrics.add(one, one)  # class 1: TP
    metrics.add(one, blank)  # class 1: FN
    metrics.add(blank, one)  # class 1: FP
    metrics.add(blank, blank)  # TN for both
    report = metrics.report()
    first, second = (m.sheets for m in report.classes)
    assert first is not None and (first.tp, first.fp, first.fn, first.tn) == (1, 1, 1, 1)
    assert first.precision == 0.5 and first.recall == 0.5
    assert second is not None and second.tn == 4
    assert report.images == 4


def test_mixed_image_sizes_sum_pixels_over_the_set() -> None:
    rng = np.random.default_rng(5)
    shapes = [(2, 3), (7, 4), (1, 9)]
    truths = [rng.integers(0, 4, s, dtype=np.uint8) for s in shapes]
    preds = [rng.integers(0, 4, s, dtype=np.uint8) for s in shapes]
    metrics = SegmentationMetrics(3, exclusive=True)
    for truth, pred in zip(truths, preds, strict=True):
        metrics.add(truth, pred)
    report = metrics.report()
    t = np.concatenate([a.ravel() for a in truths])
    p = np.concatenate([a.ravel() for a in preds])
    for m in report.classes:
        c = m.class_id
        inter, union = np.sum((t == c) & (p == c)), np.sum((t == c) | (p == c))
        assert m.iou == pytest.approx(inter / union)
    assert report.pixels == t.size
    assert report.pixel_accuracy == pytest.approx(np.mean(t == p))
    assert sum(map(sum, report.confusion or ())) == t.size


def test_independent_masks_agree_with_kaggle_scoring() -> None:
    rng = np.random.default_rng(11)
    shape, classes = (6, 7), 3
    truth_table, pred_table = LabelTable(num_classes=classes), LabelTable(num_classes=classes)
    metrics = SegmentationMetrics(classes, exclusive=False)
    ids = [f"img{i}" for i in range(6)]
    for index, image in enumerate(ids):
        truth = (rng.random((classes, *shape)) < 0.3).astype(np.uint8)
        pred = (rng.random((classes, *shape)) < 0.3).astype(np.uint8)
        truth[index % classes] = 0  # empty truths: some empty/empty pairs, some false alarms
        pred[(index + index // 3) % classes] = 0
        metrics.add(truth, pred)
        for k in range(classes):
            truth_table.set(image, k + 1, encode(truth[k]))
            pred_table.set(image, k + 1, encode(pred[k]))
    report = metrics.report()
    kaggle = score(truth_table, pred_table, extra_truth_images=ids, shape=shape)
    assert report.kaggle_mean_dice == pytest.approx(kaggle.mean_dice)
    for ours, theirs in zip(report.classes, kaggle.classes, strict=True):
        assert ours.kaggle_dice == pytest.approx(theirs.dice)
        assert ours.sheets is not None
        assert (ours.sheets.tp, ours.sheets.fp, ours.sheets.fn, ours.sheets.tn) == (
            theirs.tp,
            theirs.fp,
            theirs.fn,
            theirs.tn,
        )


def test_independent_masks_have_no_background_miou() -> None:
    truth = np.zeros((2, 2, 3), np.uint8)
    pred = np.zeros((2, 2, 3), np.uint8)
    truth[0, 0, :2] = 1  # class 1: two pixels, one found
    pred[0, 0, 1] = 1
    truth[1, 1, 1] = pred[1, 1, 1] = 1  # class 2: one pixel, found
    truth[1, 0, 0] = 1  # and a pixel carrying both classes
    pred[0, 1, 2] = 1  # class 1: one false pixel
    metrics = SegmentationMetrics(2, exclusive=False)
    metrics.add(truth, pred)
    report = metrics.report()
    assert report.background is None and report.confusion is None
    assert report.miou_with_background is None
    assert [m.iou for m in report.classes] == pytest.approx([1 / 3, 1 / 2])
    assert report.miou_without_background == pytest.approx(5 / 12)
    # 12 (pixel, class) decisions, 3 wrong.
    assert report.pixel_accuracy == pytest.approx(9 / 12)
    assert report.kaggle_mean_dice == pytest.approx((0.5 + 2 / 3) / 2)
    assert any("no background" in note for note in report.notes)
    text = format_report(report)
    assert "mIoU (with background): n/a" in text and "Kaggle mean Dice" in text
    assert "class 1" in text


def test_shape_dtype_and_value_errors_name_the_problem() -> None:
    metrics = SegmentationMetrics(2, exclusive=True)
    with pytest.raises(InvalidInput, match=r"\(2, 3\).*\(3, 2\)"):
        metrics.add(TRUTH, PRED.T)
    with pytest.raises(InvalidInput, match="exclusive=False"):
        metrics.add(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(InvalidInput, match="value 3"):
        metrics.add(TRUTH, PRED + 1)
    with pytest.raises(InvalidInput, match="float"):
        metrics.add(TRUTH.astype(np.float32), PRED.astype(np.float32))
    masks = SegmentationMetrics(2, exclusive=False)
    with pytest.raises(InvalidInput, match="2×H×W"):
        masks.add(np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(InvalidInput, match="0/1"):
        masks.add(np.full((2, 4, 4), 255, np.uint8), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(InvalidInput, match="no images"):
        masks.report()
    with pytest.raises(InvalidSetting, match="num_classes"):
        SegmentationMetrics(0, exclusive=True)


def test_batches_json_and_the_undefined_background() -> None:
    truths = np.stack([TRUTH, np.ones((2, 3), np.uint8)])
    preds = np.stack([PRED, np.ones((2, 3), np.uint8)])
    batched, single = SegmentationMetrics(2, True), SegmentationMetrics(2, True)
    batched.add_batch(truths, preds)
    for truth, pred in zip(truths, preds, strict=True):
        single.add(truth, pred)
    assert batched.report() == single.report()

    # Every pixel a defect in truth and prediction: the background IoU is undefined too.
    only_defects = SegmentationMetrics(2, True)
    only_defects.add(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    report = only_defects.report()
    assert report.undefined_classes == (0, 2)
    assert report.miou_with_background == 1.0 and report.miou_without_background == 1.0
    data = json.loads(json.dumps(report.to_dict()))
    assert data["miou_with_background"] == 1.0 and data["undefined_classes"] == [0, 2]
    assert data["classes"][0]["sheets"]["recall"] == 1.0 and data["background"]["iou"] is None
    assert "0 (background)" in format_report(report)
