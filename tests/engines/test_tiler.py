"""Frames of any size through a fixed-size engine: tile plans, cutting, stitching, Predictor."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from defectd.engines.engine import Engine, EngineInfo, EngineOutput
from defectd.engines.errors import InvalidSetting
from defectd.engines.inference import Predictor
from defectd.engines.model_card import InputSpec
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig
from defectd.engines.tiler import axis_origins, cut, frame_maximum, plan_tiles, stitch


class BrightEngine(Engine):
    """Class 1 where a pixel is above 200: a per-pixel rule, so tiling must not change it."""

    def __init__(self, height: int, width: int) -> None:
        info = EngineInfo("null", "cpu", "fp32", 4, "bright 1", ("bright",))
        super().__init__(info, InputSpec(height=height, width=width))
        self.batches: list[int] = []

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        self.batches.append(len(batch))
        probs = (batch[:, :1] > 200).astype(np.float32)
        peak = probs.max(axis=(2, 3))
        return EngineOutput(probs=probs, presence=peak, peak=peak)


def test_origins_cover_the_axis_with_the_overlap_asked_for() -> None:
    assert axis_origins(100, 100, 16) == [0]
    assert axis_origins(60, 100, 16) == [0]
    origins = axis_origins(1000, 256, 32)
    assert origins[0] == 0 and origins[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in itertools.pairwise(origins))
    with pytest.raises(InvalidSetting, match="overlap"):
        axis_origins(1000, 256, 256)


def test_cut_then_stitch_gives_the_frame_back_and_pads_small_frames() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (150, 333), dtype=np.uint8)
    grid = plan_tiles(image.shape, (64, 100), overlap=20)
    tiles = cut(image, grid, fill=7)
    assert tiles.shape == (len(grid), 64, 100)
    back = stitch(tiles[:, None].astype(np.float32), grid)
    assert np.array_equal(back[0], image.astype(np.float32))
    small = plan_tiles((30, 40), (64, 100))
    padded = cut(image[:30, :40], small, fill=7)
    assert padded.shape == (1, 64, 100) and padded[0, 40, 90] == 7
    assert stitch(padded[:, None].astype(np.float32), small).shape == (1, 30, 40)


def test_frame_maximum_takes_the_highest_score_of_each_frames_tiles() -> None:
    values = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.3]], np.float32)
    assert np.allclose(frame_maximum(values, [2, 1]), [[0.5, 0.9], [0.3, 0.3]])


def test_a_predictor_finds_the_same_defects_in_any_frame_size() -> None:
    image = np.full((300, 500), 90, np.uint8)
    image[10:30, 480:495] = 250  # in the last column of tiles
    image[140:170, 40:260] = 250  # across a seam
    engine = BrightEngine(128, 128)
    config = PostprocessConfig((ClassThresholds(presence=0.5, pixel=0.5),))
    predictor = Predictor(engine, config, fill=0, overlap=32)
    results = list(predictor.run_images([("big", image), ("small", image[:50, :60])], 4))
    big = results[0].defects
    assert big.shape == (300, 500)
    assert np.array_equal(big.masks[0], (image > 200).astype(np.uint8))
    assert sorted(c.area for c in big.components) == [300, 6600]  # the seam one is one region
    assert results[1].defects.shape == (50, 60) and not results[1].defects.classes
    assert max(engine.batches) <= 4  # tiles of both frames shared batches of at most 4
