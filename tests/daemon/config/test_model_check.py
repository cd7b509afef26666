"""What needs the model: threshold overrides over the card, and check_model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from defectd.daemon.config import ConfigError, ThresholdOverride, check_model, effective_thresholds
from defectd.engines.model_card import default_model_dir, read_card
from tests.daemon.config.helpers import camera, config, parse


@pytest.fixture(scope="module")
def card() -> Any:
    return read_card(default_model_dir())  # classes pits, crazing, scratches, patches


def overrides(table: dict[Any, Any]) -> tuple[ThresholdOverride, ...]:
    return parse(config(model={"thresholds": table})).model.thresholds


def test_overrides_by_name_and_id_merge_over_the_card(card: Any) -> None:
    merged = effective_thresholds(
        card, overrides({"scratches": {"pixel": 0.6}, 1: {"min_mask_area": 200}})
    )
    assert merged.classes[2].pixel == 0.6
    assert merged.classes[2].presence == card.thresholds.classes[2].presence
    assert merged.classes[0].min_mask_area == 200
    assert merged.classes[1] == card.thresholds.classes[1]
    assert effective_thresholds(card, ()) == card.thresholds


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"scratch": {"pixel": 0.6}},
            "model.thresholds.scratch: model defectd-default has no "
            "class 'scratch'; did you mean 'scratches'? its classes are 1 pits, 2 crazing, "
            "3 scratches, 4 patches",
        ),
        ({7: {"pixel": 0.6}}, "model.thresholds.7: model defectd-default has no class 7;"),
        (
            {3: {"pixel": 0.6}, "scratches": {"presence": 0.1}},
            "model.thresholds.scratches: class 3 (scratches) is already set by model.thresholds.3",
        ),
    ],
)
def test_overrides_naming_classes_the_model_lacks(
    card: Any, table: dict[Any, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        effective_thresholds(card, overrides(table), "f.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith(f"f.yaml: {expected}")


def test_check_model_with_the_bundled_model() -> None:
    loaded = parse(config(model={"thresholds": {"scratches": {"pixel": 0.6}}}))
    checked = check_model(loaded)
    assert checked.card.name == "defectd-default"
    assert checked.thresholds.classes[2].pixel == 0.6


def test_check_model_problems(tmp_path: Path) -> None:
    small = parse(
        config(cameras=[camera(width=800)], model={"thresholds": {"scratch": {"pixel": 0.6}}})
    )
    with pytest.raises(ConfigError) as caught:
        check_model(small, verify=False)
    # A camera of another size than the model is fine (its frames are tiled); a typo is not.
    assert [p.split(": ")[1] for p in caught.value.problems] == ["model.thresholds.scratch"]
    wide = parse(config(cameras=[camera(width=3200, height=512)], batching={"tile_overlap": 300}))
    with pytest.raises(ConfigError, match=r"batching.tile_overlap: 300 px is not less than"):
        check_model(wide, verify=False)
    assert check_model(parse(config(cameras=[camera(width=3200, height=512)])), verify=False)
    missing = parse(config(model={"dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"test.yaml: model.dir: .* is not a model directory"):
        check_model(missing)
