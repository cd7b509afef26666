"""How closely a run of the synthetic line follows the real Severstal statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from defectd.engines.errors import InvalidSetting
from defectd.engines.synth.line import SyntheticLine
from defectd.engines.synth.stats import (
    AREA_QUANTILE_LEVELS,
    AREA_QUANTILES,
    NUM_CLASSES,
    TRAIN_SET_CLASS_IMAGES,
    TRAIN_SET_IMAGES,
    class_set_probabilities,
)


@dataclass(frozen=True)
class LineStatistics:
    """Measured over `frames` generated frames: shares and per-class label areas (px)."""

    frames: int
    defect_free: int
    class_frames: tuple[int, ...]
    area_medians: tuple[float | None, ...]  # None: class never drawn
    area_means: tuple[float | None, ...]
    overlapping_pixels: int

    def describe(self) -> str:
        """A small table: generated vs real, for people."""
        _, probabilities = class_set_probabilities()
        real_median = AREA_QUANTILES
        median_at = AREA_QUANTILE_LEVELS.index(0.5)
        lines = [
            f"{self.frames} frames: defect-free {self.defect_free / self.frames:.3f} "
            f"(real {probabilities[0]:.3f}); pixels in two classes: {self.overlapping_pixels}",
            "class  frames share (real)   label area median (real)   mean",
        ]
        for c in range(NUM_CLASSES):
            share = self.class_frames[c] / self.frames
            real_share = TRAIN_SET_CLASS_IMAGES[c + 1] / TRAIN_SET_IMAGES
            median, mean = self.area_medians[c], self.area_means[c]
            area = "—" if median is None else f"{median:8.0f}"
            lines.append(
                f"{c + 1:5d}  {share:6.3f} ({real_share:.3f})   {area:>8} "
                f"({real_median[c + 1][median_at]:8.0f})   "
                f"{'—' if mean is None else f'{mean:8.0f}'}"
            )
        return "\n".join(lines)


def measure_line(
    line: SyntheticLine, count: int, progress: Callable[[int], None] | None = None
) -> LineStatistics:
    """Generate frames 0..count-1 of `line` and measure them (nothing is written)."""
    if count < 1:
        raise InvalidSetting(f"count must be at least 1, got {count}")
    class_frames = [0] * NUM_CLASSES
    areas: list[list[int]] = [[] for _ in range(NUM_CLASSES)]
    defect_free = overlapping = 0
    for done, frame in enumerate(line.frames(count), start=1):
        classes = frame.classes
        defect_free += not classes
        for c in classes:
            class_frames[c - 1] += 1
            areas[c - 1].append(int(np.count_nonzero(frame.masks[c - 1])))
        overlapping += int(np.count_nonzero(frame.masks.sum(axis=0, dtype=np.uint8) > 1))
        if progress is not None:
            progress(done)
    return LineStatistics(
        frames=count,
        defect_free=defect_free,
        class_frames=tuple(class_frames),
        area_medians=tuple(float(np.median(a)) if a else None for a in areas),
        area_means=tuple(float(np.mean(a)) if a else None for a in areas),
        overlapping_pixels=overlapping,
    )
