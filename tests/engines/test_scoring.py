"""Kaggle Dice and the image-level view, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.labels import LabelTable
from defectd.engines.rle import decode, encode
from defectd.engines.scoring import ScoreError, dice, score

SHAPE = (4, 5)


def table(rows: dict[tuple[str, int], str]) -> LabelTable:
    out = LabelTable()
    for (image, class_id), rle in rows.items():
        out.set(image, class_id, rle)
    return out


def test_dice_conventions() -> None:
    assert dice("", "", SHAPE) == 1.0
    assert dice("1 1", "", SHAPE) == 0.0
    assert dice("", "1 1", SHAPE) == 0.0  # one stray pixel on an empty truth scores 0
    assert dice("1 4", "3 4", SHAPE) == pytest.approx(2 * 2 / 8)


def test_dice_matches_pixel_computation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = rng.random((16, 12)) < 0.3
        b = rng.random((16, 12)) < 0.3
        expected = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice(encode(a), encode(b), (16, 12)) == pytest.approx(expected)
        np.testing.assert_array_equal(decode(encode(a), (16, 12)), a)


def test_score_mean_over_pairs_and_image_level_counts() -> None:
    truth = table({("a", 1): "1 4", ("b", 3): "2 2", ("c", 1): ""})
    pred = table({("a", 1): "3 4", ("b", 1): "5 1", ("c", 4): "1 1"})
    report = score(truth, pred, shape=SHAPE)
    # 3 images × 4 classes = 12 pairs. Non-1 pairs: a1=0.5, b1=0 (FP), b3=0 (FN), c4=0 (FP).
    assert report.images == 3
    assert report.mean_dice == pytest.approx((8 + 0.5) / 12)
    c1, _, c3, c4 = report.classes
    assert (c1.tp, c1.fp, c1.fn, c1.tn) == (1, 1, 0, 1)
    assert c1.precision == pytest.approx(0.5) and c1.recall == 1.0
    assert c1.f1 == pytest.approx(2 / 3)
    assert (c3.tp, c3.fn) == (0, 1) and c3.recall == 0.0 and c3.precision is None
    assert c4.fp == 1 and c4.recall is None
    assert report.missing_predictions == []


def test_missing_predictions_count_as_empty_and_are_listed() -> None:
    truth = table({("a", 1): "1 4", ("b", 2): ""})
    report = score(truth, table({("a", 1): "1 4"}), shape=SHAPE)
    assert report.missing_predictions == ["b"]
    assert report.mean_dice == 1.0


def test_extra_truth_images_are_defect_free() -> None:
    truth = table({("a", 1): "1 4"})
    pred = table({("a", 1): "1 4", ("clean", 2): "1 1"})
    with pytest.raises(ScoreError, match="not in the truth: clean"):
        score(truth, pred, shape=SHAPE)
    report = score(truth, pred, ["clean"], shape=SHAPE)
    assert report.images == 2
    assert report.classes[1].fp == 1
    assert report.mean_dice == pytest.approx(7 / 8)


def test_empty_truth_is_an_error() -> None:
    with pytest.raises(ScoreError, match="no images"):
        score(LabelTable(), LabelTable())


def test_to_dict_has_derived_metrics() -> None:
    report = score(table({("a", 1): "1 4"}), table({("a", 1): "1 4"}), shape=SHAPE)
    data = report.to_dict()
    assert data["pairs"] == 4
    assert data["classes"][0]["recall"] == 1.0
    assert data["classes"][1]["precision"] is None


def test_mask_dice_matches_the_kaggle_rules() -> None:
    from defectd.engines.scoring import mask_dice

    empty = np.zeros((4, 4), np.uint8)
    full = np.ones((4, 4), np.uint8)
    half = empty.copy()
    half[:2] = 1
    assert mask_dice(empty, empty) == 1.0
    assert mask_dice(empty, full) == 0.0
    assert mask_dice(full, half) == pytest.approx(2 * 8 / (16 + 8))


def test_class_confusion_counts_images() -> None:
    from defectd.engines.labels import LabelTable
    from defectd.engines.scoring import class_confusion

    truth, pred = LabelTable(), LabelTable()
    truth.set("a", 3, "1 5")
    pred.set("a", 3, "1 4")
    truth.set("b", 1, "1 5")  # missed
    pred.set("c", 4, "9 2")  # false alarm on a clean sheet
    matrix = class_confusion(truth, pred, ["a", "b", "c", "d"])
    assert matrix[3][3] == 1
    assert matrix[1][0] == 1
    assert matrix[0][4] == 1
    assert matrix[0][0] == 1  # d: clean and predicted clean
    assert sum(map(sum, matrix)) == 4
