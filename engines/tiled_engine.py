"""Frames of one size through an engine of another: cut every frame into the engine's tiles,
run the tiles in engine batches, stitch each frame back (`engines.tiler`).

`TiledFrames` is what the daemon's inference stage runs when its cameras' frames are not the
model's size: one tile grid for all frames (a daemon's cameras share one frame size), tiles
of several frames pooled into engine calls of up to ``engine.info.max_batch``, and one
`EngineOutput` per batch of frames in frame pixels — probabilities N×C×H×W averaged where
tiles overlap, presence and peak the maximum over each frame's tiles. Engine shapes never
change, so a TensorRT profile built for the model's input stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineOutput
from defectd.engines.tiler import TileGrid, cut, frame_maximum, plan_tiles

# px shared by neighbouring tiles. 0: where a frame is a whole number of tiles they abut, and
# each tile sees exactly what a frame of the model's size would (a mosaic of model-sized
# frames gives their defects back); a defect across a seam is still one region, because the
# components are found on the stitched frame map. Where the frame is not a whole number of
# tiles, the tiles spread evenly and overlap by what it takes.
DEFAULT_OVERLAP = 0


@dataclass(frozen=True)
class TilePlan:
    """How frames of `frame` (H, W) are cut for an engine of input `tile` (H, W)."""

    grid: TileGrid
    frames_per_call: int  # whole frames whose tiles fit one engine batch (at least 1)

    @property
    def tiles(self) -> int:
        return len(self.grid)

    @property
    def whole(self) -> bool:
        return self.grid.whole


def plan_frames(
    frame: tuple[int, int], tile: tuple[int, int], max_batch: int, overlap: int = DEFAULT_OVERLAP
) -> TilePlan:
    """The tile grid of `frame` and how many frames go to the engine at a time."""
    grid = plan_tiles(frame, tile, overlap)
    return TilePlan(grid, max(1, max_batch // len(grid)))


class TiledFrames:
    """Run N×H×W frames of the plan's size through `engine` (see the module docstring).

    Each engine call's tile outputs are added straight into the frames' probability maps
    (no concatenation, no second copy), and pixels covered by more than one tile are divided
    by their count once at the end: stitching costs one pass over the frame's pixels.
    """

    def __init__(self, engine: Engine, plan: TilePlan, fill: int) -> None:
        self.engine = engine
        self.plan = plan
        self.fill = fill
        grid = plan.grid
        coverage = np.zeros(grid.frame, np.float32)
        for top, left in grid.origins:
            coverage[top : top + grid.tile[0], left : left + grid.tile[1]] += 1.0
        # None where every pixel lies in exactly one tile (abutting tiles): nothing to divide.
        self._share = None if coverage.max() == 1.0 else (1.0 / coverage)[None]

    def infer(self, frames: npt.NDArray[np.uint8]) -> EngineOutput:
        """Frames in, frame-sized outputs out; the frames' tiles in engine batches."""
        if self.plan.whole:
            return self.engine.infer(frames)
        grid, limit = self.plan.grid, self.engine.info.max_batch
        per_frame = len(grid)
        (height, width), (tile_h, tile_w) = grid.frame, grid.tile
        tiles = np.concatenate([cut(frame, grid, self.fill) for frame in frames])
        probs: npt.NDArray[np.float32] | None = None
        presence, peak = [], []
        for start in range(0, len(tiles), limit):
            out = self.engine.infer(tiles[start : start + limit])
            if probs is None:
                probs = np.zeros((len(frames), out.probs.shape[1], height, width), np.float32)
            for offset, tile in enumerate(out.probs):
                frame, index = divmod(start + offset, per_frame)
                top, left = grid.origins[index]
                h, w = min(tile_h, height - top), min(tile_w, width - left)
                probs[frame, :, top : top + h, left : left + w] += tile[:, :h, :w]
            presence.append(out.presence)
            peak.append(out.peak)
        assert probs is not None  # at least one frame, so at least one engine call
        if self._share is not None:
            probs *= self._share
        counts = [per_frame] * len(frames)
        return EngineOutput(
            probs,
            frame_maximum(np.concatenate(presence), counts),
            frame_maximum(np.concatenate(peak), counts),
        )
