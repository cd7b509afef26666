"""Topics: general to specific, and no id can inject a segment or another topic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defectd.daemon.topics import (
    MAX_SEGMENT,
    check_segment,
    defect_topic,
    frame_topic,
    is_clean_segment,
    kind_of,
    prefix,
    sanitise_segment,
    status_topic,
)


def test_topics_narrow_from_kind_to_class() -> None:
    assert defect_topic("line1", "cam0", "scratches") == "defect.line1.cam0.scratches"
    assert frame_topic("line1", "cam0") == "frame.line1.cam0"
    assert status_topic() == "status"
    assert kind_of("defect.line1.cam0.pits") == "defect" and kind_of("status") == "status"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cam0", "cam0"),
        ("Cam_0-top", "Cam_0-top"),
        ("cam.1", "cam_1"),  # a separator would split one segment in two
        ("cam\x00", "cam_"),  # NUL: C subscribers would cut the topic here
        ("defect.", "defect_"),
        ("line1.cam0.pits", "line1_cam0_pits"),  # posing as a whole topic tail
        ("cam 0/\n*", "cam_0___"),
        ("cämera", "c_mera"),  # one `_` per code point, not per UTF-8 byte
        ("😀", "_"),
        ("\ud800", "_"),  # a lone surrogate from a bad decoder
        ("", "_"),
        ("x" * 1000, "x" * MAX_SEGMENT),
    ],
)
def test_sanitise_segment(text: str, expected: str) -> None:
    assert sanitise_segment(text) == expected


@pytest.mark.parametrize(
    "camera", ["cam0.pits", "cam0\x00.pits", ".", "..", "defect.line2.cam9", "a" * 500 + ".b"]
)
def test_a_hostile_camera_id_stays_one_segment(camera: str) -> None:
    segments = defect_topic("line1", camera, "pits").split(".")
    assert len(segments) == 4
    assert segments[0] == "defect" and segments[1] == "line1" and segments[3] == "pits"
    assert is_clean_segment(segments[2])
    # ... so a subscriber to another camera's prefix never receives it.
    assert not defect_topic("line1", camera, "pits").startswith(prefix("defect", "line2", "cam9"))


@given(st.text())
def test_sanitised_segments_are_clean_bounded_and_stable(text: str) -> None:
    cleaned = sanitise_segment(text)
    assert is_clean_segment(cleaned)
    assert 1 <= len(cleaned) <= MAX_SEGMENT
    assert cleaned.isascii() and "." not in cleaned
    assert sanitise_segment(cleaned) == cleaned
    if is_clean_segment(text):
        assert cleaned == text


def test_prefix_ends_with_the_separator() -> None:
    cam0 = prefix("defect", "line1", "cam0")
    assert cam0 == "defect.line1.cam0."
    assert defect_topic("line1", "cam0", "pits").startswith(cam0)
    assert not defect_topic("line1", "cam01", "pits").startswith(cam0)
    assert prefix("defect") == "defect."
    assert not frame_topic("line1", "cam0").startswith(prefix("defect"))
    with pytest.raises(ValueError, match="choose from"):
        prefix("defects", "line1")


def test_check_segment_names_the_id_and_a_valid_spelling() -> None:
    assert check_segment("cam0", "camera id") == "cam0"
    with pytest.raises(ValueError, match=r"camera id 'cam\.0'.*'cam_0'"):
        check_segment("cam.0", "camera id")
    with pytest.raises(ValueError, match="1 to 64 characters"):
        check_segment("", "line name")
    with pytest.raises(ValueError):
        check_segment("x" * (MAX_SEGMENT + 1), "class name")
