"""Scratches that run on from frame to frame: the simulator's defects longer than a frame.

The synthetic line draws every frame on its own, so none of its defects continues into the
next frame; a real scratch from a roll runs for metres. `LongScratches` adds such scratches
over a camera's consecutive frames: a scratch starts in a frame with probability `rate`,
runs for 2 to 8 frames of that camera (its first frame from a random row down to the bottom,
then whole frames, its last frame from the top to a random row), drifting slowly across.
Every frame's scratch pixels follow from (seed, camera, frame) alone, so frames can be made
in any order, and the scratch is added to the frame's class-3 (scratches) truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

SCRATCH_CLASS = 3  # 1-based: the synthetic line's scratches
MAX_FRAMES = 8  # longest run, in frames
_STREAM = 0x5C7A  # keeps these draws apart from the line's own


@dataclass(frozen=True)
class _Run:
    start: int  # the camera's frame it starts in
    frames: int
    x0: float  # px across at its start
    drift: float  # px across per row
    first_row: float  # where it starts in its first frame
    last_row: float  # where it ends in its last frame
    width: int  # px


class LongScratches:
    """Scratches over consecutive frames of each camera (module docstring)."""

    def __init__(self, seed: int, rate: float, shape: tuple[int, int]) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"long scratch rate must be within 0…1, got {rate:g}")
        self.seed = seed
        self.rate = rate
        self.shape = shape

    def _run(self, camera: int, start: int) -> _Run | None:
        rng = np.random.default_rng([self.seed, camera, start, _STREAM])
        if rng.random() >= self.rate:
            return None
        height, width = self.shape
        return _Run(
            start=start,
            frames=int(rng.integers(2, MAX_FRAMES + 1)),
            x0=float(rng.uniform(0.05, 0.95) * width),
            drift=float(rng.uniform(-0.03, 0.03)),
            first_row=float(rng.uniform(0.1, 0.8) * height),
            last_row=float(rng.uniform(0.2, 0.9) * height),
            width=int(rng.integers(3, 7)),
        )

    def mask(self, camera: int, frame: int) -> npt.NDArray[np.uint8]:
        """The scratch pixels (1) in frame `frame` of camera `camera` (its own count)."""
        height, width = self.shape
        out = np.zeros(self.shape, np.uint8)
        if self.rate == 0.0:
            return out
        for start in range(max(0, frame - MAX_FRAMES + 1), frame + 1):
            run = self._run(camera, start)
            if run is None or frame >= start + run.frames:
                continue
            offset = frame - start  # frames into the run
            top = run.first_row if offset == 0 else 0.0
            bottom = run.last_row if offset == run.frames - 1 else float(height)
            rows_before = (height - run.first_row) + (offset - 1) * height if offset else 0.0
            y = np.arange(int(top), int(np.ceil(bottom)))
            x = run.x0 + run.drift * (rows_before + (y - top))
            points = np.stack([np.clip(x, 0, width - 1), y], axis=1).astype(np.int32)
            if len(points) > 1:
                cv2.polylines(out, [points], False, 1, thickness=run.width)
        return out

    def paint(
        self, image: npt.NDArray[np.uint8], camera: int, frame: int
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """`image` with the frame's scratches darkened in (a copy when there are any), and
        their mask."""
        mask = self.mask(camera, frame)
        if mask.any():
            dark = (image.astype(np.float32) * 0.35).astype(np.uint8)
            image = np.where(mask.astype(bool), dark, image).astype(np.uint8)
        return image, mask
