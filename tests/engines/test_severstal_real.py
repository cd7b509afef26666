"""Checks against the real competition slice in ../shared/severstal (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectd.engines.labels import read_labels
from defectd.engines.rle import decode, encode
from defectd.engines.severstal import SeverstalDataset

REFERENCE_IMAGE = "6fa9e1d65.jpg"


def test_every_real_row_decodes_and_re_encodes_identically(severstal_dir: Path) -> None:
    table = read_labels(severstal_dir / "train.csv")  # validates every row
    assert len(table.masks) == 1000
    rows = 0
    for image_id, per_class in table.masks.items():
        union = np.zeros((256, 1600), np.uint8)
        for class_id, rle in enumerate(per_class, start=1):
            if not rle:
                continue
            mask = decode(rle)
            assert mask.any(), f"{image_id} class {class_id}: empty mask from a real row"
            assert encode(mask) == rle, f"{image_id} class {class_id}: re-encoding differs"
            assert not (union & mask).any(), f"{image_id}: class {class_id} overlaps another"
            union |= mask
            rows += 1
    assert rows == 1429


def test_reference_mask_is_reproduced(severstal_dir: Path) -> None:
    table = read_labels(severstal_dir / "train.csv")
    assert table.classes(REFERENCE_IMAGE) == (3, 4)
    union = np.zeros((256, 1600), np.uint8)
    for class_id in table.classes(REFERENCE_IMAGE):
        union |= decode(table.rle(REFERENCE_IMAGE, class_id))
    picture = cv2.imread(
        str(severstal_dir / "reference" / "6fa9e1d65_gt_mask.jpg"), cv2.IMREAD_GRAYSCALE
    )
    assert picture is not None and picture.shape == (256, 1600)
    reference = picture > 127
    dice = 2 * (reference & (union > 0)).sum() / (reference.sum() + union.sum())
    assert dice >= 0.99


def test_reader_loads_the_real_folder(severstal_dir: Path) -> None:
    dataset = SeverstalDataset(severstal_dir)
    assert dataset.image_ids == [REFERENCE_IMAGE]
    assert len(dataset) == 1
    # 999 labelled images have no file in this slice: listed, not silently dropped.
    assert len(dataset.missing_images) == 999
    sample = dataset[0]
    assert sample.image.shape == (256, 1600) and sample.image.dtype == np.uint8
    assert sample.masks.shape == (4, 256, 1600)
    assert sample.classes == (3, 4)
    assert dataset.check_images() == []
