"""Augmentations keep pixels and labels together; blackout erases a defect and its label."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectd.engines.synth import SynthConfig, SyntheticLine
from defectd.training.augment import (
    AugmentConfig,
    augment,
    brightness_contrast,
    defect_blackout,
    random_crop,
)


def frame_with_class(class_id: int) -> tuple[np.ndarray, np.ndarray]:
    line = SyntheticLine(seed=4, config=SynthConfig(defect_free_share=0.0, mark_rate=0.0))
    for frame in line.frames(200):
        if class_id in frame.classes:
            return frame.image, frame.masks
    raise AssertionError(f"no frame with class {class_id}")


def test_crop_moves_labels_with_pixels() -> None:
    rng = np.random.default_rng(0)
    image = np.arange(16 * 40, dtype=np.int64).reshape(16, 40).astype(np.uint8)
    masks = np.zeros((4, 16, 40), np.uint8)
    masks[2, 5, 7] = 1
    image[5, 7] = 255
    for _ in range(20):
        crop, crop_masks = random_crop(image, masks, (16, 10), rng)
        assert crop.shape == (16, 10) and crop_masks.shape == (4, 16, 10)
        if crop_masks.any():
            assert crop[crop_masks[2] > 0].tolist() == [255]
    with pytest.raises(ValueError, match="larger than the frame"):
        random_crop(image, masks, (17, 10), rng)


def test_crop_around_a_pixel_always_contains_it() -> None:
    rng = np.random.default_rng(2)
    image = np.zeros((16, 40), np.uint8)
    image[3, 37] = 255
    masks = np.zeros((4, 16, 40), np.uint8)
    for _ in range(30):
        crop, _ = random_crop(image, masks, (8, 10), rng, around=(3, 37))
        assert crop.max() == 255


def test_defect_crops_find_small_defects() -> None:
    image, masks = frame_with_class(1)
    aimed = AugmentConfig(crop=(128, 128), defect_crop=1.0, blackout=0.0)
    uniform = AugmentConfig(crop=(128, 128), defect_crop=0.0, blackout=0.0)
    rng = np.random.default_rng(3)
    hits = [bool(augment(image, masks, aimed, rng)[1].any()) for _ in range(40)]
    assert all(hits)
    share = np.mean([bool(augment(image, masks, uniform, rng)[1].any()) for _ in range(40)])
    assert share < 1.0


def test_augment_flips_keep_alignment() -> None:
    image, masks = frame_with_class(3)
    marked = image.copy()
    marked[masks[2] > 0] = 0  # make label pixels recognisable after any geometry change
    marked[masks[2] == 0] = np.maximum(marked[masks[2] == 0], 1)
    config = AugmentConfig(crop=(256, 800), brightness=0.0, contrast=0.0, blackout=0.0)
    rng = np.random.default_rng(1)
    for _ in range(10):
        out, out_masks = augment(marked, masks, config, rng)
        assert out.shape == (256, 800) and out.flags.c_contiguous
        np.testing.assert_array_equal(out == 0, out_masks[2] > 0)


def test_brightness_contrast_saturates() -> None:
    image = np.array([[0, 128, 255]], np.uint8)
    out = brightness_contrast(image, np.random.default_rng(0), 0.5, 0.5)
    assert out.dtype == np.uint8 and out.min() >= 0 and out.max() <= 255


def test_blackout_erases_the_defect_and_its_label() -> None:
    image, masks = frame_with_class(4)  # dark patches: easy to see whether they are gone
    region = masks[3] > 0
    ring = cv2.dilate(masks[3], np.ones((31, 31), np.uint8)) > 0
    ring &= masks.max(axis=0) == 0  # bare strip right around the defect
    out, cleared = defect_blackout(image, masks, 3, np.random.default_rng(2))
    assert cleared[3].sum() == 0
    np.testing.assert_array_equal(cleared[[0, 1, 2]], masks[[0, 1, 2]])
    np.testing.assert_array_equal(out[~region], image[~region])  # only the defect changed
    gap_before = abs(float(image[region].mean()) - float(image[ring].mean()))
    gap_after = abs(float(out[region].mean()) - float(image[ring].mean()))
    assert gap_before > 20, "the fixture should be a clearly dark patch"
    assert gap_after < 0.25 * gap_before


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(hflip=1.5)
    with pytest.raises(ValueError, match="crop must be positive"):
        AugmentConfig(crop=(0, 10))
