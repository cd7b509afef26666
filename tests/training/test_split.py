"""Stratified split: proportions per combination, determinism, no leakage."""

from __future__ import annotations

import pytest

from defectd.training.split import stratified_split


def make_classes() -> dict[str, tuple[int, ...]]:
    classes: dict[str, tuple[int, ...]] = {}
    for i in range(100):
        classes[f"clean{i}"] = ()
    for i in range(40):
        classes[f"c3_{i}"] = (3,)
    for i in range(3):
        classes[f"c2_{i}"] = (2,)
    classes["c34_0"] = (4, 3)
    classes["c34_1"] = (3, 4)
    classes["only"] = (1,)
    return classes


def test_each_combination_is_split_in_proportion() -> None:
    classes = make_classes()
    train, val = stratified_split(classes, 0.2, seed=5)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(classes)
    val_set = set(val)
    assert sum(i.startswith("clean") for i in val_set) == 20
    assert sum(i.startswith("c3_") for i in val_set) == 8
    # Rare combinations keep a member on each side; (4, 3) and (3, 4) are one combination.
    assert sum(i.startswith("c2_") for i in val_set) == 1
    assert sum(i.startswith("c34_") for i in val_set) == 1
    assert "only" in train  # a single image cannot be on both sides: it trains


def test_deterministic_by_seed() -> None:
    classes = make_classes()
    assert stratified_split(classes, 0.15, 1) == stratified_split(
        dict(reversed(classes.items())), 0.15, 1
    )
    assert stratified_split(classes, 0.15, 1) != stratified_split(classes, 0.15, 2)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        stratified_split({"a": ()}, fraction, 0)
