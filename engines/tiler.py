"""Frames of any size through an engine of one fixed input size: cut into tiles, stitch back.

An engine takes frames of exactly its card's input (H, W) (fixed shapes keep a TensorRT
profile and the ONNX graph unchanged). A frame of another size is cut into tiles of that
size (`plan_tiles`):

- along an axis shorter than the tile, one tile, the frame padded at the bottom / right with
  the model's grey mean (what the graph normalises to 0, so padding looks like nothing);
- along a longer axis, tiles spread evenly from the first pixel to the last with at least
  `overlap` pixels shared between neighbours, so a defect on a seam is seen whole by one tile.

`stitch` puts the tiles' probabilities back into the frame, averaging where tiles overlap
and dropping the padding; presence and peak are the maximum over the frame's tiles (a class
present in one tile is present in the frame). A frame of exactly the input size is one tile
and passes through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidInput, InvalidSetting

Image = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]


def axis_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start of each tile along one axis of `length` pixels (one tile when it fits)."""
    if length < 1 or tile < 1:
        raise InvalidSetting(f"lengths must be positive, got frame {length}, tile {tile}")
    if not 0 <= overlap < tile:
        raise InvalidSetting(f"tile overlap must be in [0, {tile}), got {overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    count = -(-(length - tile) // step) + 1
    span = length - tile
    # Evenly spread: every seam overlaps by at least `overlap`, the last tile ends on the edge.
    return [round(index * span / (count - 1)) for index in range(count)]


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one H×W frame lie: (top, left) of each, row by row."""

    frame: tuple[int, int]
    tile: tuple[int, int]
    origins: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.origins)

    @property
    def whole(self) -> bool:
        """True when the frame is exactly one tile (nothing to cut or stitch)."""
        return self.frame == self.tile


def plan_tiles(frame: tuple[int, int], tile: tuple[int, int], overlap: int = 0) -> TileGrid:
    """The tiles covering a `frame` (H, W) with tiles of `tile` (H, W) sharing `overlap` px."""
    rows = axis_origins(frame[0], tile[0], min(overlap, tile[0] - 1))
    cols = axis_origins(frame[1], tile[1], min(overlap, tile[1] - 1))
    return TileGrid(frame, tile, tuple((top, left) for top in rows for left in cols))


def cut(image: Image, grid: TileGrid, fill: int) -> Image:
    """The N×th×tw tiles of grey H×W `image` (padded with `fill` where the frame ends)."""
    if image.shape != grid.frame:
        raise InvalidInput(f"image is {image.shape}, the grid was planned for {grid.frame}")
    if grid.whole:
        return image[None]
    tile_h, tile_w = grid.tile
    tiles = np.full((len(grid), tile_h, tile_w), fill, dtype=np.uint8)
    for index, (top, left) in enumerate(grid.origins):
        part = image[top : top + tile_h, left : left + tile_w]
        tiles[index, : part.shape[0], : part.shape[1]] = part
    return tiles


def stitch(probs: npt.NDArray[np.floating], grid: TileGrid) -> Floats:
    """C×H×W frame probabilities from N×C×th×tw tile probabilities (mean over overlaps)."""
    if probs.ndim != 4 or len(probs) != len(grid):
        raise InvalidInput(f"expected {len(grid)} tiles of C×H×W, got shape {probs.shape}")
    if grid.whole:
        return np.asarray(probs[0], dtype=np.float32)
    height, width = grid.frame
    total = np.zeros((probs.shape[1], height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    for tile, (top, left) in zip(probs, grid.origins, strict=True):
        h = min(grid.tile[0], height - top)
        w = min(grid.tile[1], width - left)
        total[:, top : top + h, left : left + w] += tile[:, :h, :w]
        weight[top : top + h, left : left + w] += 1.0
    stitched: Floats = total / weight  # every pixel is covered at least once
    return stitched


def frame_maximum(values: npt.NDArray[np.floating], tiles: Sequence[int]) -> Floats:
    """Per-frame maximum of N×C per-tile scores (presence, peak) for frames of `tiles` tiles."""
    out = np.zeros((len(tiles), values.shape[1]), np.float32)
    start = 0
    for index, count in enumerate(tiles):
        out[index] = values[start : start + count].max(axis=0)
        start += count
    return out
