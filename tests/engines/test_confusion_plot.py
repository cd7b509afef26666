"""The confusion picture: written as a PNG, shaded by share of the truth row, errors named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.engines.confusion_plot import (
    ConfusionPicture,
    draw_confusion,
    share_colour,
    write_confusion_png,
)
from defectd.engines.errors import InvalidInput
from defectd.engines.segmetrics import SegmentationMetrics

NAMES = ["inclusion", "patches", "scratches"]


def fill(image: np.ndarray, picture: ConfusionPicture, row: int, col: int) -> np.ndarray:
    """A cell's fill colour, read just inside its top-left corner (clear of the text)."""
    x, y, _, _ = picture.cell_box(row, col)
    return image[y + 4, x + 4].astype(int)


def test_perfect_prediction_png_has_the_darkest_diagonal(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "confusion.png"
    picture = write_confusion_png(np.diag([900, 40, 25, 7]), NAMES, path, "perfect")
    image = cv2.imread(str(path))
    assert image is not None
    # Read back as rows × columns × BGR, exactly what was drawn.
    assert image.shape == picture.image.shape and image.shape[2] == 3
    x, y, w, h = picture.cell_box(3, 3)
    assert x + w <= image.shape[1] and y + h <= image.shape[0]
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    for row in range(4):
        for col in range(4):
            if row == col:
                continue
            ax, ay, _, _ = picture.cell_box(row, row)
            bx, by, _, _ = picture.cell_box(row, col)
            assert fill(image, picture, row, row).sum() < fill(image, picture, row, col).sum()
            assert saturation[ay + 4, ax + 4] > saturation[by + 4, bx + 4]


def test_cells_are_shaded_by_share_of_the_truth_row() -> None:
    # Row 0: 90/10; row 1: 50/50 although its counts are far larger.
    picture = draw_confusion(np.array([[90, 10], [5000, 5000]]), ["pits"], "rows")
    image = picture.image
    assert (fill(image, picture, 1, 0) == fill(image, picture, 1, 1)).all()
    assert fill(image, picture, 0, 0).sum() < fill(image, picture, 1, 1).sum()
    assert fill(image, picture, 1, 1).sum() < fill(image, picture, 0, 1).sum()
    assert tuple(fill(image, picture, 0, 0)) == share_colour(0.9)
    brightness = [sum(share_colour(s / 10)) for s in range(11)]
    assert brightness == sorted(brightness, reverse=True) and len(set(brightness)) == 11


def test_a_row_without_truth_is_grey_and_the_picture_grows_with_classes() -> None:
    matrix = np.array([[8, 1, 0], [2, 3, 0], [0, 0, 0]])
    small = draw_confusion(matrix, ["pits", "crazing"], "absent class 2")
    b, g, r = fill(small.image, small, 2, 2)
    assert b == g == r and 150 < b < 250  # neutral grey, not the white of a 0 % share
    large = draw_confusion(np.eye(6, dtype=np.int64), ["rolled-in scale", "pitted surface"], "6")
    assert large.image.shape[0] > small.image.shape[0]
    assert large.image.shape[1] > small.image.shape[1]


def test_metrics_confusion_draws_and_names_fall_back(tmp_path: Path) -> None:
    metrics = SegmentationMetrics(2, exclusive=True)
    metrics.add(np.array([[0, 1, 1], [2, 2, 0]], np.uint8), np.array([[0, 1, 1], [2, 0, 0]]))
    report = metrics.report()
    assert report.confusion is not None
    path = tmp_path / "neu.png"
    # Fewer names than classes and a non-ASCII name: labels fall back, nothing breaks.
    write_confusion_png(report.confusion, ["Einschlüsse"], path, "NEU-Seg, model v1")
    assert cv2.imread(str(path)) is not None


def test_bad_matrices_and_paths_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"square.*\(2, 3\)"):
        draw_confusion(np.zeros((2, 3), np.int64), [], "x")
    with pytest.raises(InvalidInput, match="non-negative"):
        draw_confusion(np.array([[1, -1], [0, 1]]), [], "x")
    with pytest.raises(InvalidInput, match="non-negative"):
        draw_confusion(np.array([[0.5, 0.5], [0.0, 1.0]]), [], "x")
    with pytest.raises(InvalidInput, match=r"\.png"):
        write_confusion_png(np.eye(2, dtype=np.int64), [], tmp_path / "c.jpg", "x")
    with pytest.raises(IndexError):
        draw_confusion(np.eye(2, dtype=np.int64), [], "x").cell_box(2, 0)
