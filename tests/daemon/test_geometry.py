"""Defects on the strip: frame pixels to mm across and m along, in the events and the config."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from defectd.daemon.config.schema import CameraSettings
from defectd.daemon.events import defect_events
from defectd.daemon.geometry import StripGeometry
from tests.daemon.config.helpers import camera, config, problems
from tests.daemon.events.helpers import CLASSES, MODEL, Frame, defective_frame, round_trip

SCHEMA = jsonschema.Draft202012Validator(
    json.loads(
        (Path(__file__).resolve().parents[2] / "docs/schemas/defect-event.schema.json").read_text()
    )
)


def _camera(**changes: object) -> CameraSettings:
    values: dict[str, object] = {"id": "top-0", "endpoint": "tcp://127.0.0.1:5555"}
    return CameraSettings(width=128, height=64, **{**values, **changes})  # type: ignore[arg-type]


def test_a_region_is_placed_across_in_mm_and_along_in_m() -> None:
    geometry = StripGeometry.of(_camera(across_mm_per_px=0.5, left_mm=1000.0))
    assert geometry is not None and geometry.along_mm_per_px == 0.5  # square pixels
    place = geometry.place((20, 10, 30, 20), 600, seq=7, height=64, position_m=123.5)
    assert place.across_mm == (1010.0, 1025.0)
    assert place.along_m == pytest.approx((123.505, 123.515))
    assert (place.width_mm, place.length_mm, place.area_mm2) == (15.0, 10.0, 150.0)
    # No encoder: the frame number says where the frame starts (seq × height × mm per px).
    counted = StripGeometry.of(
        _camera(across_mm_per_px=0.5, along_mm_per_px=2.0, along_from="frames")
    )
    assert counted is not None
    where = counted.place((0, 0, 1, 1), 1, seq=100, height=64, position_m=999.0)
    assert where.along_m == pytest.approx((12.8, 12.802))
    assert where.length_mm == 2.0 and where.area_mm2 == 1.0
    # An encoder camera's frame without a position: across only.
    assert geometry.place((0, 0, 4, 4), 16, seq=1, height=64, position_m=None).along_m is None
    assert StripGeometry.of(_camera()) is None


def test_defect_events_carry_their_place_on_the_strip_within_the_schema() -> None:
    geometry = StripGeometry.of(_camera(across_mm_per_px=0.25, left_mm=-40.0))
    frame = Frame(coil_id="C-0042", position_m=10.0)
    events = defect_events(
        frame, defective_frame(), CLASSES, line="line1", model=MODEL, geometry=geometry
    )
    pits = events[0]
    assert pits.area_mm2 == pytest.approx(609 * 0.0625)
    strip = pits.regions[0].strip
    assert strip is not None and strip.across_mm == (-35.0, -27.5)  # bbox x 20, width 30
    for event in events:
        payload = round_trip(event)
        SCHEMA.validate(payload)
        assert "strip" in payload["regions"][0] and "area_mm2" in payload
    plain = round_trip(defect_events(frame, defective_frame(), CLASSES, line="l", model=MODEL)[0])
    SCHEMA.validate(plain)
    assert "strip" not in plain["regions"][0] and "area_mm2" not in plain


def test_impossible_geometry_is_refused_naming_the_key() -> None:
    found = problems(config(cameras=[camera(across_mm_per_px=0)]))
    assert any("cameras[0].across_mm_per_px: must be more than 0" in p for p in found)
    found = problems(config(cameras=[camera(left_mm=500.0, along_from="frames")]))
    assert any(
        "cameras[0].left_mm: left_mm, along_from without across_mm_per_px" in p for p in found
    )
    found = problems(config(cameras=[camera(across_mm_per_px=0.5, along_from="encoder")]))
    assert any("'encoder' is not one of position_m, frames" in p for p in found)
