"""Post-processing: gate, pixel threshold, small components, small masks — in that order."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.postprocess import ClassThresholds, PostprocessConfig, components, postprocess
from defectd.engines.rle import decode


def frame_probs() -> np.ndarray:
    """Class 1: a 20×30 block at p=0.8 and a 3×3 speck at p=0.9; class 3: a 10×10 at 0.6."""
    probs = np.zeros((4, 64, 128), np.float32)
    probs[0, 10:30, 20:50] = 0.8
    probs[0, 50:53, 100:103] = 0.9
    probs[2, 40:50, 60:70] = 0.6
    return probs


def config(**class1: float | int) -> PostprocessConfig:
    return PostprocessConfig((ClassThresholds(**class1), *(ClassThresholds() for _ in range(3))))


def test_defaults_keep_every_component_above_half() -> None:
    result = postprocess(frame_probs(), [0.9, 0.1, 0.9, 0.1], PostprocessConfig())
    assert result.classes == (1, 3)
    assert result.area(1) == 20 * 30 + 9
    assert result.area(3) == 100
    big = max((c for c in result.components if c.class_id == 1), key=lambda c: c.area)
    assert big.bbox == (20, 10, 30, 20)
    assert big.score == pytest.approx(0.8) and big.mean_score == pytest.approx(0.8)
    assert big.centroid == pytest.approx((34.5, 19.5))
    speck = min((c for c in result.components if c.class_id == 1), key=lambda c: c.area)
    assert speck.score == pytest.approx(0.9)


def test_presence_gate_drops_the_class() -> None:
    result = postprocess(frame_probs(), [0.3, 0.1, 0.9, 0.1], config(presence=0.5))
    assert result.classes == (3,)
    assert not result.masks[0].any()
    assert result.presence[0] == pytest.approx(0.3)


def test_pixel_threshold() -> None:
    result = postprocess(frame_probs(), [1, 1, 1, 1], config(pixel=0.85))
    assert result.area(1) == 9  # only the speck is above 0.85


def test_small_components_removed_before_the_mask_area_check() -> None:
    result = postprocess(frame_probs(), [1, 1, 1, 1], config(min_component_area=10))
    assert result.area(1) == 600
    # 600 px left: a 601 px minimum drops the class even though 609 px passed the threshold.
    dropped = postprocess(
        frame_probs(), [1, 1, 1, 1], config(min_component_area=10, min_mask_area=601)
    )
    assert 1 not in dropped.classes


def test_rle_round_trips_the_kept_mask() -> None:
    result = postprocess(frame_probs(), [1, 1, 1, 1], PostprocessConfig())
    assert np.array_equal(decode(result.rle(3), (64, 128)), result.masks[2])
    assert result.rle(2) == ""


def test_components_are_eight_connected() -> None:
    binary = np.zeros((5, 5), np.uint8)
    binary[0, 0] = binary[1, 1] = binary[2, 2] = 1  # a diagonal line
    binary[4, 4] = 1
    labels, stats, _ = components(binary, 0)
    assert len(stats) == 2
    labels, stats, _ = components(binary, 2)
    assert len(stats) == 1 and labels[4, 4] == 0 and labels[1, 1] == 1


def test_bad_shapes_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"expects 4×H×W probabilities, got 3×8×8"):
        postprocess(np.zeros((3, 8, 8)), [0, 0, 0], PostprocessConfig())
    with pytest.raises(ValueError, match="expected 4 presence scores, got 2"):
        postprocess(np.zeros((4, 8, 8)), [0, 0], PostprocessConfig())


def test_config_round_trip_and_validation() -> None:
    original = config(presence=0.7, pixel=0.55, min_component_area=150, min_mask_area=600)
    assert PostprocessConfig.from_list(original.to_list()) == original
    with pytest.raises(ValueError, match="class 1: threshold pixel must be in"):
        PostprocessConfig.from_list([{"pixel": 1.5}])
    with pytest.raises(ValueError, match="unknown keys"):
        PostprocessConfig.from_list([{"pixle": 0.5}])
    with pytest.raises(ValueError, match="whole number of pixels"):
        ClassThresholds(min_mask_area=-1)


def test_peak_fast_path_gives_the_same_defects() -> None:
    probs = frame_probs()
    presence = [0.9, 0.9, 0.9, 0.9]
    settings = config(min_component_area=20)
    slow = postprocess(probs, presence, settings)
    fast = postprocess(probs, presence, settings, peak=probs.max(axis=(1, 2)))
    assert fast.components == slow.components
    assert np.array_equal(fast.masks, slow.masks)
    assert fast.classes == (1, 3)


def test_a_clean_frame_keeps_no_mask() -> None:
    probs = np.full((4, 64, 128), 0.2, np.float32)
    result = postprocess(probs, [0.9] * 4, PostprocessConfig(), peak=[0.2] * 4)
    assert result.planes == {} and result.components == () and result.classes == ()
    assert result.masks.shape == (4, 64, 128) and not result.masks.any()
    assert result.mask(1) is None and result.rle(1) == ""


def test_peak_needs_one_score_per_class() -> None:
    with pytest.raises(ValueError, match="expected 4 peak scores, got 2"):
        postprocess(frame_probs(), [0.9] * 4, PostprocessConfig(), peak=[0.1, 0.2])


def test_exclusive_head_gives_each_pixel_one_class_by_argmax() -> None:
    probs = np.zeros((2, 8, 8), np.float32)
    probs[:, 2:6, 2:6] = 0.35  # background 0.3: both classes pass 0.3, only one may win
    probs[1, 6:8, 6:8] = 0.6
    thresholds = tuple(ClassThresholds(pixel=0.3) for _ in range(2))
    exclusive = postprocess(probs, [0.9, 0.9], PostprocessConfig(thresholds, head="softmax"))
    assert int(exclusive.masks.sum(axis=0).max()) == 1
    assert exclusive.area(1) == 16 and exclusive.area(2) == 4
    independent = postprocess(probs, [0.9, 0.9], PostprocessConfig(thresholds))
    assert int(independent.masks.sum(axis=0).max()) == 2  # the sigmoid rule: both


def test_exclusive_background_wins_over_a_class_below_it() -> None:
    probs = np.full((2, 4, 4), 0.2, np.float32)  # background 0.6
    config = PostprocessConfig(tuple(ClassThresholds(pixel=0.1) for _ in range(2)), "softmax")
    assert postprocess(probs, [1.0, 1.0], config).classes == ()


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="softmax"):
        PostprocessConfig(head="tanh")
