"""Target statistics of the Severstal train set, and how the synthetic line draws from them.

Two sources, named per constant:

- the full Kaggle train set (12,568 images), as recorded in DESIGN.md and measured on the
  competition's train.csv: which classes appear together in one image;
- 1,429 real label rows for 1,000 images (/work/shared/severstal/train.csv, real competition
  RLE strings, see its SOURCES.md): per-(image, class) label area, connected components per
  image, and the bounding-box shape of each component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectd.engines.errors import InvalidSetting

NUM_CLASSES = 4
REFERENCE_SHAPE: tuple[int, int] = (256, 1600)  # areas below are in pixels of this frame

# Image counts per class combination in the full train set (12,568 images, 47% clean).
CLASS_SET_COUNTS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((), 5902),
    ((1,), 769),
    ((2,), 195),
    ((3,), 4759),
    ((4,), 516),
    ((3, 4), 284),
    ((1, 3), 91),
    ((1, 2), 35),
    ((2, 3), 14),
    ((2, 4), 1),
    ((1, 2, 3), 2),
)
TRAIN_SET_IMAGES = 12_568
# Images containing each class in the full train set (follows from the table above).
TRAIN_SET_CLASS_IMAGES: dict[int, int] = {1: 897, 2: 247, 3: 5150, 4: 801}

# Quantiles of the per-(image, class) label area, measured on the 1,429 real rows.
AREA_QUANTILE_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
AREA_QUANTILES: dict[int, tuple[float, ...]] = {
    1: (163, 241, 732, 1930, 3162, 6178, 12120, 15120, 17983),
    2: (563, 580, 764, 1504, 2862, 4164, 7060, 9518, 11973),
    3: (256, 603, 1418, 4418, 10488, 24744, 77715, 183337, 368240),
    4: (1802, 2147, 4466, 13511, 24989, 44198, 87113, 121133, 134071),
}
AREA_MEAN: dict[int, float] = {1: 4274.8, 2: 3215.7, 3: 21864.8, 4: 32453.4}  # same rows
TRAIN_SET_AREA_MEAN: dict[int, float] = {1: 4300, 2: 3400, 3: 25500, 4: 34400}  # DESIGN.md

# Connected components per (image, class) on the 1,429 rows: P(1), ..., P(9), P(10 or more).
COMPONENT_COUNT_WEIGHTS: dict[int, tuple[int, ...]] = {
    1: (77, 34, 15, 13, 13, 10, 12, 7, 3, 17),
    2: (50, 15, 3, 0, 0, 0, 0, 0, 0, 0),
    3: (279, 176, 140, 81, 56, 41, 14, 8, 12, 20),
    4: (141, 107, 42, 19, 11, 8, 2, 1, 1, 1),
}


@dataclass(frozen=True)
class ComponentShape:
    """Bounding-box statistics of one class's label components (same 1,429 rows)."""

    log_aspect_mean: float  # mean of log(height / width)
    log_aspect_std: float
    fill: float  # median label area / bounding-box area
    edge_share: float  # share of components touching the top or bottom frame edge
    min_area: int  # smallest component the line paints (about the 1st area percentile)


COMPONENT_SHAPES: dict[int, ComponentShape] = {
    1: ComponentShape(0.56, 0.54, 0.78, 0.16, 150),
    2: ComponentShape(2.05, 0.42, 0.71, 0.70, 400),
    3: ComponentShape(1.08, 1.17, 0.78, 0.52, 200),
    4: ComponentShape(-0.29, 0.61, 0.65, 0.43, 1000),
}


def class_set_probabilities(
    defect_free_share: float | None = None,
    class_share: tuple[int, float] | None = None,
) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """Class combinations and their probabilities.

    `defect_free_share` overrides the clean share, keeping the mix of defective combinations.
    `class_share=(c, s)` gives the combinations containing class c a total probability of s,
    keeping the relative mix inside and outside them: more examples of a rare class for
    training, the same look per frame.
    """
    sets = tuple(classes for classes, _ in CLASS_SET_COUNTS)
    counts = np.array([count for _, count in CLASS_SET_COUNTS], dtype=np.float64)
    p = counts / counts.sum()
    if defect_free_share is not None:
        p[1:] *= (1.0 - defect_free_share) / p[1:].sum()
        p[0] = defect_free_share
    if class_share is not None:
        class_id, share = class_share
        if class_id not in range(1, NUM_CLASSES + 1) or not 0.0 <= share <= 1.0:
            raise InvalidSetting(
                f"class share {class_id}={share}: use a class in 1..{NUM_CLASSES} and a share "
                "in [0, 1], e.g. 2=0.2"
            )
        has = np.array([class_id in classes for classes in sets])
        rest = p[~has].sum()
        if share < 1.0 and rest == 0.0:
            raise InvalidSetting(f"class share {class_id}={share}: every frame already has it")
        p[has] *= share / p[has].sum()
        p[~has] *= (1.0 - share) / rest if rest else 0.0
    return sets, p


def sample_label_area(rng: np.random.Generator, class_id: int, scale: float = 1.0) -> float:
    """One per-(image, class) label area in px: log-linear between the measured quantiles."""
    levels = np.asarray(AREA_QUANTILE_LEVELS)
    log_areas = np.log(np.asarray(AREA_QUANTILES[class_id], dtype=np.float64))
    return float(np.exp(np.interp(rng.random(), levels, log_areas))) * scale


def sample_component_count(rng: np.random.Generator, class_id: int, area: float) -> int:
    """Components for one (image, class), fewer when the area cannot hold that many.

    Capping by the smallest component area reproduces the real correlation between a label's
    area and how many pieces it has.
    """
    weights = np.asarray(COMPONENT_COUNT_WEIGHTS[class_id], dtype=np.float64)
    count = int(rng.choice(weights.size, p=weights / weights.sum())) + 1
    return max(1, min(count, int(area // COMPONENT_SHAPES[class_id].min_area)))


def split_area(rng: np.random.Generator, area: float, count: int, min_area: int) -> list[float]:
    """Split `area` into `count` unequal parts (flat Dirichlet), none below `min_area`."""
    if count == 1:
        return [area]
    spare = area - count * min_area
    parts = min_area + spare * rng.dirichlet(np.ones(count))
    return [float(p) for p in sorted(parts, reverse=True)]
