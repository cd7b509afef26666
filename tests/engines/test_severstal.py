"""The Severstal folder reader on tiny hand-made folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.engines.labels import LabelError
from defectd.engines.severstal import DatasetError, SeverstalDataset

SHAPE = (8, 12)


def make_folder(tmp_path: Path, csv_text: str, images: dict[str, tuple[int, int]]) -> Path:
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train.csv").write_text(csv_text)
    for name, (height, width) in images.items():
        image = np.full((height, width), 100, np.uint8)
        assert cv2.imwrite(str(tmp_path / "train_images" / name), image)
    return tmp_path


def test_images_without_rows_are_defect_free(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path,
        "ImageId,ClassId,EncodedPixels\na.png,2,1 3\ngone.png,1,1 1\n",
        {"a.png": SHAPE, "clean.png": SHAPE},
    )
    dataset = SeverstalDataset(root, shape=SHAPE)
    assert dataset.image_ids == ["a.png", "clean.png"]
    assert dataset.missing_images == ["gone.png"]
    a, clean = dataset[0], dataset[1]
    assert a.classes == (2,)
    assert a.masks[1, :3, 0].tolist() == [1, 1, 1] and a.masks.sum() == 3
    assert clean.classes == () and clean.masks.sum() == 0
    assert dataset.classes("a.png") == (2,)


def test_wrong_size_is_reported_by_file(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path, "ImageId,ClassId,EncodedPixels\n", {"ok.png": SHAPE, "bad.png": (8, 11)}
    )
    dataset = SeverstalDataset(root, shape=SHAPE)
    with pytest.raises(DatasetError, match=r"bad.png: image is 11×8, expected 12×8"):
        dataset.load_image("bad.png")
    problems = dataset.check_images()
    assert len(problems) == 1 and "bad.png" in problems[0]


def test_unreadable_image(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "ImageId,ClassId,EncodedPixels\n", {})
    (root / "train_images" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"broken\.jpg: cannot be read"):
        SeverstalDataset(root, shape=SHAPE)[0]


def test_bad_rows_carry_line_numbers(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "ImageId,ClassId,EncodedPixels\na.png,9,1 1\n", {})
    with pytest.raises(LabelError, match=r"train.csv:2: a.png: class 9"):
        SeverstalDataset(root, shape=SHAPE)


def test_not_a_dataset_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="defectd synth --out"):
        SeverstalDataset(tmp_path)
