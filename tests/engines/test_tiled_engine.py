"""Frames of one size through an engine of another: the daemon's tiled inference."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.model_card import default_model_dir, read_card
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig, postprocess
from defectd.engines.selection import EngineConfig, open_engine
from defectd.engines.synth import SyntheticLine
from defectd.engines.tiled_engine import TiledFrames, plan_frames
from tests.engines.test_tiler import BrightEngine


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def test_a_mosaic_of_frames_gives_the_defects_of_its_parts() -> None:
    card = read_card(default_model_dir())
    line = SyntheticLine(11)
    parts = [f for f in (line.frame(i) for i in range(40)) if f.classes][:4]
    assert len(parts) == 4
    mosaic = np.block([[parts[0].image, parts[1].image], [parts[2].image, parts[3].image]])
    assert mosaic.shape == (512, 3200)
    plan = plan_frames(mosaic.shape, card.input.shape, max_batch=4)  # the default overlap
    assert (plan.tiles, plan.frames_per_call) == (4, 1)
    config = EngineConfig(backend="onnxruntime", max_batch=4, threads=2, warmup=False)
    fill = round(card.normalisation["mean"] * 255)
    with open_engine(card, config) as engine:
        out = TiledFrames(engine, plan, fill).infer(mosaic[None])
        assert out.probs.shape == (1, 4, 512, 3200)
        tiled = postprocess(out.probs[0], out.presence[0], card.thresholds, out.peak[0]).masks
        alone = np.zeros_like(tiled)
        corners = [(0, 0), (0, 1600), (256, 0), (256, 1600)]
        for part, (top, left) in zip(parts, corners, strict=True):
            single = engine.infer(part.image[None])
            kept = postprocess(single.probs[0], single.presence[0], card.thresholds, single.peak[0])
            alone[:, top : top + 256, left : left + 1600] = kept.masks
    assert alone.any()
    assert _dice(tiled > 0, alone > 0) >= 0.99
    # Tiles spread to overlap instead (32 px asked for: three tiles across, the middle one
    # seeing the parts' seam) average other context in: close, not the same.
    spread = plan_frames(mosaic.shape, card.input.shape, max_batch=4, overlap=32)
    assert spread.tiles == 9


@pytest.mark.parametrize(
    ("width", "overlap", "origins", "batches"),
    [(1024, 0, [0, 512], [4]), (1000, 32, [0, 244, 488], [4, 2])],
)
def test_a_defect_across_a_seam_is_one_region(
    width: int, overlap: int, origins: list[int], batches: list[int]
) -> None:
    engine = BrightEngine(256, 512)
    frames = np.zeros((2, 256, width), np.uint8)
    frames[:, 100:140, 380:640] = 255  # across the seams: at 512 (abutting), 244 and 488
    plan = plan_frames((256, width), (256, 512), engine.info.max_batch, overlap=overlap)
    assert [left for _, left in plan.grid.origins] == origins
    out = TiledFrames(engine, plan, fill=0).infer(frames)
    assert engine.batches == batches  # the tiles of 2 frames, in batches of at most 4
    thresholds = PostprocessConfig((ClassThresholds(presence=0.5, pixel=0.5),))
    for index in range(2):
        found = postprocess(out.probs[index], out.presence[index], thresholds, out.peak[index])
        assert len(found.components) == 1
        assert found.components[0].bbox == (380, 100, 260, 40)


@pytest.mark.parametrize("shape", [(200, 300), (256, 512)])
def test_smaller_and_exact_frames_go_through_as_one_tile(shape: tuple[int, int]) -> None:
    engine = BrightEngine(256, 512)
    frames = np.full((3, *shape), 255, np.uint8)
    plan = plan_frames(shape, (256, 512), engine.info.max_batch)
    assert plan.tiles == 1 and plan.frames_per_call == 4
    out = TiledFrames(engine, plan, fill=0).infer(frames)
    assert out.probs.shape == (3, 1, *shape) and out.probs.min() == 1.0  # padding dropped


@pytest.mark.parametrize(("width", "overlap"), [(1024, 0), (1000, 32), (1300, 100)])
def test_stitching_in_place_equals_the_tilers_stitch(width: int, overlap: int) -> None:
    from defectd.engines.tiler import cut, stitch

    engine = BrightEngine(256, 512)
    frames = np.random.default_rng(width).integers(0, 255, (3, 300, width), dtype=np.uint8)
    plan = plan_frames((300, width), (256, 512), engine.info.max_batch, overlap=overlap)
    out = TiledFrames(engine, plan, fill=7).infer(frames)
    for index, frame in enumerate(frames):
        tiles = cut(frame, plan.grid, 7)
        probs = np.concatenate(
            [engine.infer(tiles[i : i + 4]).probs for i in range(0, len(tiles), 4)]
        )
        reference = stitch(probs, plan.grid)
        np.testing.assert_allclose(out.probs[index], reference, atol=1e-6)
