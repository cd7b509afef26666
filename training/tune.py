"""`defectd tune`: per-class post-processing thresholds chosen on validation frames.

For every class independently (the Kaggle mean Dice is a sum over classes) it searches
presence threshold × pixel threshold × minimum component area × minimum mask area and keeps
the combination with the best Dice; with ``min_recall`` it keeps the best Dice among the
combinations whose image-level recall reaches ``min_recall`` (a defective sheet must not pass
unflagged). The search reproduces `engines.postprocess.postprocess` exactly: components are
8-connected and counted per pixel threshold, then filtered by area, then gated — so what was
tuned is what runs.

Frames are reduced to a few numbers per (class, pixel threshold) as they stream past, so
tuning on thousands of frames needs no more memory than one batch. Pure numpy + OpenCV.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidInput
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig

log = logging.getLogger(__name__)

PIXEL_GRID = tuple(round(0.10 + 0.05 * i, 2) for i in range(15))  # 0.10 … 0.80
PRESENCE_GRID = (*(round(0.05 * i, 2) for i in range(20)), 0.97, 0.99)  # 0.00 … 0.99
COMPONENT_GRID = (0, 25, 50, 100, 150, 250, 400, 600, 1000)
MASK_GRID = (0, 100, 200, 400, 600, 900, 1200, 1600, 2000, 3000, 4000)


@dataclass(frozen=True)
class Grid:
    """The values searched for each threshold."""

    pixel: tuple[float, ...] = PIXEL_GRID
    presence: tuple[float, ...] = PRESENCE_GRID
    min_component_area: tuple[int, ...] = COMPONENT_GRID
    min_mask_area: tuple[int, ...] = MASK_GRID


@dataclass
class ClassEvidence:
    """What the search needs from every frame, for one class.

    Per pixel threshold and frame: the areas of the components and how many of their pixels
    lie in the truth mask. Per frame: the truth area and the presence score.
    """

    truth_area: list[int] = field(default_factory=list)
    presence: list[float] = field(default_factory=list)
    # [threshold index][frame] → (areas, intersections), both int64 arrays
    components: list[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]] = field(
        default_factory=list
    )


@dataclass(frozen=True)
class ClassResult:
    """The chosen thresholds of one class and what they score on the tuning frames."""

    class_id: int
    thresholds: ClassThresholds
    dice: float
    recall: float | None  # image-level; None when no tuning frame has the class
    precision: float | None
    positives: int  # tuning frames with the class
    met_min_recall: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thresholds"] = asdict(self.thresholds)
        return out


class Tuner:
    """Collect evidence frame by frame (`add`), then `solve`."""

    def __init__(self, num_classes: int, grid: Grid = Grid()) -> None:
        self.grid = grid
        self.num_classes = num_classes
        self.evidence = [
            ClassEvidence(components=[[] for _ in grid.pixel]) for _ in range(num_classes)
        ]
        self.frames = 0

    def add(
        self,
        probs: npt.NDArray[np.floating[Any]],
        presence: Sequence[float] | npt.NDArray[np.floating[Any]],
        truth: npt.NDArray[np.uint8],
    ) -> None:
        """One frame: C×H×W probabilities, C presence scores, C×H×W 0/1 truth masks."""
        if probs.shape != truth.shape or probs.shape[0] != self.num_classes:
            raise InvalidInput(
                f"probabilities {probs.shape} and truth {truth.shape} must both be "
                f"{self.num_classes}×H×W"
            )
        empty = np.zeros(0, np.int64)
        for c in range(self.num_classes):
            evidence = self.evidence[c]
            plane = probs[c]
            truth_plane = truth[c] > 0
            evidence.truth_area.append(int(truth_plane.sum()))
            evidence.presence.append(float(presence[c]))
            peak = float(plane.max())
            for t, threshold in enumerate(self.grid.pixel):
                if peak < threshold:
                    evidence.components[t].append((empty, empty))
                    continue
                binary = (plane >= threshold).astype(np.uint8)
                count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
                areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
                inter = np.bincount(labels[truth_plane], minlength=count)[1:].astype(np.int64)
                evidence.components[t].append((areas, inter))
        self.frames += 1

    def solve(self, min_recall: float | None = None) -> list[ClassResult]:
        """The best thresholds per class (see the module docstring)."""
        if self.frames == 0:
            raise InvalidInput("no frames to tune on")
        return [self._solve_class(c, min_recall) for c in range(self.num_classes)]

    def _solve_class(self, c: int, min_recall: float | None) -> ClassResult:
        grid = self.grid
        evidence = self.evidence[c]
        truth = np.asarray(evidence.truth_area, np.int64)  # (n,)
        presence = np.asarray(evidence.presence, np.float64)
        has_truth = truth > 0
        positives = int(has_truth.sum())
        comp_grid = np.asarray(grid.min_component_area, np.int64)
        mask_grid = np.maximum(np.asarray(grid.min_mask_area, np.int64), 1)
        gate = presence[:, None] >= np.asarray(grid.presence)[None, :]  # (n, P)

        best: tuple[tuple[float, float], ClassResult] | None = None
        for t, threshold in enumerate(grid.pixel):
            # Kept area and intersection per frame and minimum component area: (n, A).
            area = np.zeros((len(truth), comp_grid.size), np.int64)
            inter = np.zeros_like(area)
            for i, (areas, shared) in enumerate(evidence.components[t]):
                if areas.size:
                    keep = areas[None, :] >= comp_grid[:, None]  # (A, k)
                    area[i] = keep @ areas
                    inter[i] = keep @ shared
            # Predicted non-empty: (n, A, M, P).
            flagged = (area[:, :, None] >= mask_grid[None, None, :])[..., None] & gate[
                :, None, None, :
            ]
            overlap = np.where(
                area + truth[:, None] > 0, 2.0 * inter / np.maximum(area + truth[:, None], 1), 0.0
            )
            dice = np.where(
                flagged,
                np.where(has_truth[:, None, None, None], overlap[:, :, None, None], 0.0),
                np.where(has_truth, 0.0, 1.0)[:, None, None, None],
            ).mean(axis=0)  # (A, M, P)
            tp = (flagged & has_truth[:, None, None, None]).sum(axis=0)
            predicted = flagged.sum(axis=0)
            recall = tp / positives if positives else np.ones_like(dice)
            if min_recall is not None:
                ok = recall >= min_recall - 1e-12
                # Constraint first, then Dice; if nothing reaches it, the highest recall.
                key = np.where(ok, 1.0 + dice, recall * 1e-3)
            else:
                key = dice
            a, m, p = np.unravel_index(int(np.argmax(key)), key.shape)
            score = (float(key[a, m, p]), float(dice[a, m, p]))
            if best is None or score > best[0]:
                met = min_recall is None or bool(recall[a, m, p] >= min_recall - 1e-12)
                result = ClassResult(
                    class_id=c + 1,
                    thresholds=ClassThresholds(
                        presence=float(grid.presence[p]),
                        pixel=float(threshold),
                        min_component_area=int(grid.min_component_area[a]),
                        min_mask_area=int(grid.min_mask_area[m]),
                    ),
                    dice=float(dice[a, m, p]),
                    recall=float(recall[a, m, p]) if positives else None,
                    precision=float(tp[a, m, p] / predicted[a, m, p])
                    if predicted[a, m, p]
                    else None,
                    positives=positives,
                    met_min_recall=met,
                )
                best = (score, result)
        assert best is not None
        return best[1]


def to_config(results: Iterable[ClassResult]) -> PostprocessConfig:
    """The chosen thresholds as the post-processing config."""
    return PostprocessConfig(tuple(r.thresholds for r in results))
