"""Tuning recovers thresholds that a constructed case makes the only good answer."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.postprocess import postprocess
from defectd.engines.scoring import mask_dice
from defectd.training.tune import Grid, Tuner, to_config

H, W = 64, 128


def constructed_frames(count: int, seed: int) -> list[tuple[np.ndarray, list[float], np.ndarray]]:
    """Class 1 defects at p=0.7 with presence 0.8; decoys a good tuning must reject:

    - faint haze at p=0.45 around every defect (rejected by a pixel threshold in (0.45, 0.7]);
    - specks of 30 px at p=0.95 on clean frames (rejected by min component area in (30, …]);
    - clean frames have presence 0.3 (rejected by a presence threshold in (0.3, 0.8]).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        probs = np.zeros((4, H, W), np.float32)
        truth = np.zeros((4, H, W), np.uint8)
        presence = [0.3, 0.0, 0.0, 0.0]
        if index % 2 == 0:
            top, left = int(rng.integers(5, 30)), int(rng.integers(5, 80))
            probs[0, top - 4 : top + 24, left - 4 : left + 34] = 0.45
            probs[0, top : top + 20, left : left + 30] = 0.7
            truth[0, top : top + 20, left : left + 30] = 1
            presence[0] = 0.8
        else:
            top, left = int(rng.integers(0, 58)), int(rng.integers(0, 120))
            probs[0, top : top + 5, left : left + 6] = 0.95  # 30 px speck
            if index % 4 == 1:
                presence[0] = 0.9  # the gate alone cannot stop these
        frames.append((probs, presence, truth))
    return frames


def test_recovers_the_separating_thresholds() -> None:
    tuner = Tuner(4, Grid(min_mask_area=(0, 100)))
    for probs, presence, truth in constructed_frames(24, seed=1):
        tuner.add(probs, presence, truth)
    results = tuner.solve()
    chosen = results[0]
    assert chosen.dice == pytest.approx(1.0)
    assert 0.45 < chosen.thresholds.pixel <= 0.7
    assert chosen.thresholds.min_component_area > 30 or chosen.thresholds.min_mask_area > 30
    assert chosen.recall == 1.0 and chosen.precision == 1.0
    # Classes 2-4 never occur and are never predicted.
    assert all(r.dice == 1.0 and r.positives == 0 for r in results[1:])

    # What was tuned is what post-processing runs: fresh frames score the same.
    config = to_config(results)
    for probs, presence, truth in constructed_frames(12, seed=2):
        kept = postprocess(probs, presence, config).masks
        assert mask_dice(truth[0], kept[0]) == 1.0


def test_min_recall_trades_dice_for_recall() -> None:
    # Half of the defective frames are faint (p=0.4): the best-Dice choice misses them
    # when faint false alarms are numerous; --min-recall 1.0 must still catch every one.
    tuner = Tuner(4, Grid(min_component_area=(0,), min_mask_area=(0,), presence=(0.0,)))
    for index in range(40):
        probs = np.zeros((4, H, W), np.float32)
        truth = np.zeros((4, H, W), np.uint8)
        if index < 4:
            truth[0, 10:20, 10:20] = 1
            probs[0, 10:20, 10:20] = 0.75 if index < 2 else 0.4
        else:
            probs[0, 40:44, 40:44] = 0.4  # faint noise on clean frames
        tuner.add(probs, [1.0, 0.0, 0.0, 0.0], truth)
    best = tuner.solve()[0]
    assert best.thresholds.pixel > 0.4 and best.recall == 0.5
    safe = tuner.solve(min_recall=1.0)[0]
    assert safe.thresholds.pixel <= 0.4 and safe.recall == 1.0 and safe.met_min_recall
    assert safe.dice < best.dice


def test_unreachable_recall_is_reported() -> None:
    tuner = Tuner(
        4, Grid(pixel=(0.5,), presence=(0.5,), min_component_area=(0,), min_mask_area=(0,))
    )
    probs = np.zeros((4, H, W), np.float32)
    truth = np.zeros((4, H, W), np.uint8)
    truth[0, :5, :5] = 1  # a defect the model does not see at all
    tuner.add(probs, [0.0] * 4, truth)
    result = tuner.solve(min_recall=0.9)[0]
    assert not result.met_min_recall and result.recall == 0.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="must both be 4×H×W"):
        Tuner(4).add(np.zeros((4, 8, 8)), [0] * 4, np.zeros((4, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        Tuner(4).solve()
