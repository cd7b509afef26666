"""The line's statistics against the real Severstal numbers (fixed seed: deterministic)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from defectd.engines.synth import SyntheticLine
from defectd.engines.synth.stats import AREA_QUANTILES, CLASS_SET_COUNTS, TRAIN_SET_IMAGES

FRAMES = 600


@dataclass
class Tally:
    frames: int = 0
    clean: int = 0
    presence: np.ndarray = field(default_factory=lambda: np.zeros(4, int))
    areas: dict[int, list[int]] = field(default_factory=lambda: {c: [] for c in range(1, 5)})
    components: dict[int, list[int]] = field(default_factory=lambda: {c: [] for c in range(1, 5)})
    combos: set[tuple[int, ...]] = field(default_factory=set)


@pytest.fixture(scope="module")
def tally() -> Tally:
    t = Tally()
    for frame in SyntheticLine(seed=2024).frames(FRAMES):
        t.frames += 1
        t.combos.add(frame.classes)
        t.clean += not frame.classes
        for c in frame.classes:
            mask = frame.masks[c - 1]
            t.presence[c - 1] += 1
            t.areas[c].append(int(mask.sum()))
            t.components[c].append(cv2.connectedComponents(mask)[0] - 1)
    return t


def test_defect_free_share_is_near_the_real_47_percent(tally: Tally) -> None:
    assert abs(tally.clean / tally.frames - 5902 / TRAIN_SET_IMAGES) < 0.06


def test_class_presence_follows_the_train_set(tally: Tally) -> None:
    share = tally.presence / tally.frames
    real = np.array([897, 247, 5150, 801]) / TRAIN_SET_IMAGES
    assert share.argmax() == 2, "class 3 must be the most common"
    assert np.all(np.abs(share - real) < np.maximum(0.5 * real, 0.015)), (share, real)
    assert tally.presence[1] > 0, "class 2 is rare but must appear in 600 frames"


def test_only_real_class_combinations_appear(tally: Tally) -> None:
    real = {classes for classes, _ in CLASS_SET_COUNTS}
    assert tally.combos <= real


@pytest.mark.parametrize("class_id", [1, 2, 3, 4])
def test_median_label_area_matches_the_real_median(tally: Tally, class_id: int) -> None:
    median = float(np.median(tally.areas[class_id]))
    real = AREA_QUANTILES[class_id][4]
    factor = 2.0 if len(tally.areas[class_id]) < 30 else 1.35
    assert real / factor < median < real * factor, (median, real)


def test_area_spread_is_real_not_constant(tally: Tally) -> None:
    q25, q75 = np.percentile(tally.areas[3], [25, 75])
    real = AREA_QUANTILES[3]
    assert q75 / q25 > 0.5 * real[5] / real[3]


@pytest.mark.parametrize(("class_id", "low", "high"), [(1, 1, 4), (3, 1, 3), (4, 1, 3)])
def test_components_per_label(tally: Tally, class_id: int, low: int, high: int) -> None:
    assert low <= np.median(tally.components[class_id]) <= high
