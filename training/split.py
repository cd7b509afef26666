"""Train/validation split stratified by class combination.

Severstal's classes are very unequal (class 2 is in 2% of frames) and co-occur in fixed
patterns; splitting each combination separately keeps every combination, the rare ones
included, in both parts in the same proportion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from defectd.engines.errors import InvalidSetting


def stratified_split(
    classes_by_image: Mapping[str, tuple[int, ...]], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(train ids, validation ids), each sorted; deterministic for a seed.

    Every combination with at least two images puts at least one in each part.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InvalidSetting(f"val_fraction must be in (0, 1), e.g. 0.15, got {val_fraction}")
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for image_id, classes in classes_by_image.items():
        groups[tuple(sorted(classes))].append(image_id)
    rng = np.random.default_rng(seed)
    train: list[str] = []
    val: list[str] = []
    for combination in sorted(groups):
        members = sorted(groups[combination])
        order = rng.permutation(len(members))
        take = round(len(members) * val_fraction)
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        val += [members[i] for i in order[:take]]
        train += [members[i] for i in order[take:]]
    return sorted(train), sorted(val)


def grouped_split(
    classes_by_image: Mapping[str, tuple[int, ...]],
    groups: Mapping[str, str],
    val_fraction: float,
    seed: int,
) -> tuple[list[str], list[str]]:
    """`stratified_split` over groups of images (`DatasetReport.split_groups()`: image id →
    its group's id), so exact duplicates land on one side; each group is stratified by the
    classes of all its images."""
    members: dict[str, list[str]] = defaultdict(list)
    for image_id in classes_by_image:
        members[groups.get(image_id, image_id)].append(image_id)
    group_classes = {
        group: tuple(sorted({c for i in ids for c in classes_by_image[i]}))
        for group, ids in members.items()
    }
    train_groups, val_groups = stratified_split(group_classes, val_fraction, seed)
    train = sorted(i for g in train_groups for i in members[g])
    val = sorted(i for g in val_groups for i in members[g])
    return train, val
